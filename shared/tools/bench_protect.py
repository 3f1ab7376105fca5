"""The protection benchmark: does one kind of request starve the rest? Numbers for lesson 24's
README, never tests.

    make bench-protect                                   lesson 24, and build/bench-protect.json
    make bench-protect PROTECT_ARGS="--lesson 23"        the same storms against the lesson before

It starts its own throwaway database (aic_bench_protect), the offline coach, and the lesson's app
in one uvicorn process, as `make run` serves it, on free ports of 127.0.0.1. Five clients ask
GET /api/me in a loop, and its 99th percentile is measured:

  alone                    nothing else running, for 5 s
  during 50 signups        50 POST /api/users sent at once (bcrypt at its real cost, 12 rounds)
  during 50 logins         50 POST /api/login at once, right passwords, 50 accounts
  during 45 hung chats     45 POST /api/chat at once to a coach that never answers (until the
                           app's OPENAI_TIMEOUT, 30 s): the p99 over the first 8 s of the wait

Each storm runs --rounds times (3), and the round with the median p99 is shown: other programs
on the same cores make single rounds jumpy. Goal: p99 <= 100 ms in each case. Lesson 24's
budgets are raised for the bench (the storms come from one address and would otherwise meet
SIGNUPS_PER_ADDRESS); every other setting is the lesson's default. The load comes from this
process, on the same cores as the app: the numbers are what one small machine does with
everything on it.
"""

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt
import httpx2
import jwt
import psycopg2

from shared.ground import devdb
from shared.ground.manifest import find
from shared.ground.paths import COACH, ROOT, free_port

DATABASE = "aic_bench_protect"
PASSWORD = "correct-horse"
STORM = 50  # signups, logins
CHATS = 45
HUNG_SECONDS = 8.0  # how long GET /api/me is measured while the chats hang
ME_CLIENTS = 5
GOAL_MS = 100
# Only the budgets a storm from one address would meet; the rest is the lesson's own defaults.
BENCH_SETTINGS = {"SIGNUPS_PER_ADDRESS": "100000", "LOGIN_FAILURES_PER_ADDRESS": "100000"}


def start(argv: list[str], cwd: Path, env: dict, what: str) -> tuple[subprocess.Popen, int, object]:
    """Runs argv with "{port}" replaced by a free port; returns (process, port, its log) once it listens."""
    port, log = free_port(), tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([a.replace("{port}", str(port)) for a in argv], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return proc, port, log
            time.sleep(0.05)
        log.seek(0)
        raise SystemExit(f"{what} did not start on port {port}:\n{log.read()[-3000:]}")
    except BaseException:  # it never started, or the bench is being stopped: no orphan left
        stop(proc)
        raise


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def prepare(folder: Path, coach_url: str) -> tuple[dict, dict, list[int]]:
    """Fresh database, migrations, and the users the storms need: (app environment, DB settings,
    ids of users whose password is PASSWORD)."""
    db_env = devdb.create_test_database(DATABASE)
    env = {**os.environ, **db_env, **BENCH_SETTINGS, "JWT_SECRET": secrets.token_urlsafe(32),
           "OPENAI_API_KEY": "bench-no-key", "OPENAI_BASE_URL": f"{coach_url}/v1"}
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=folder, env=env,
                   check=True, capture_output=True)
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()  # as the app makes them
    conn = psycopg2.connect(host=db_env["DB_HOST"], port=db_env["DB_PORT"], dbname=db_env["DB_NAME"],
                            user=db_env["DB_USER"], password=db_env["DB_PASSWORD"])
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users (name, email, password_hash) "
                    "SELECT 'Bench', 'bench' || i || '@example.com', %s FROM generate_series(1, %s) AS i "
                    "RETURNING id", (password_hash, STORM + CHATS + 1))
        ids = [row[0] for row in cur.fetchall()]
    conn.close()
    return env, db_env, ids


def token(user_id: int, secret: str) -> str:
    """A token as lessons 16 on sign it (lesson 24 also wants jti and ver; earlier ones ignore them)."""
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "iat": now, "exp": now + timedelta(minutes=60),
              "jti": uuid.uuid4().hex, "ver": 0}
    return jwt.encode(claims, secret, algorithm="HS256")


async def me_loop(http, url: str, headers: dict, stop: asyncio.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        r = await http.get(f"{url}/api/me", headers=headers)
        r.raise_for_status()
        latencies.append(time.perf_counter() - started)


def p99_ms(values: list[float]) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def measure(url: str, me_headers: dict, storm=None, seconds: float | None = None) -> dict:
    """GET /api/me latencies from ME_CLIENTS loops, while `storm` (a coroutine) runs, or for `seconds`."""
    latencies, halt = [], asyncio.Event()
    limits = httpx2.Limits(max_connections=ME_CLIENTS, max_keepalive_connections=ME_CLIENTS)
    async with httpx2.AsyncClient(limits=limits, timeout=120) as http:
        await http.get(f"{url}/api/me", headers=me_headers)  # connections open
        loops = [asyncio.create_task(me_loop(http, url, me_headers, halt, latencies))
                 for _ in range(ME_CLIENTS)]
        started = time.perf_counter()
        outcome = await storm if storm is not None else await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - started
        halt.set()
        await asyncio.gather(*loops)
    return {"p99_ms": p99_ms(latencies), "median_ms": 1000 * statistics.median(latencies),
            "requests": len(latencies), "seconds": elapsed, "storm": outcome}


async def storm(requests: list[tuple[str, str, dict, dict | None]]) -> dict:
    """Sends every (method, url, body, headers) at once, each on a connection of its own; the
    statuses they got, counted."""
    async def one(http, method, url, body, headers):
        try:
            return (await http.request(method, url, json=body, headers=headers)).status_code
        except httpx2.HTTPError as error:
            return type(error).__name__

    limits = httpx2.Limits(max_connections=len(requests))
    async with httpx2.AsyncClient(limits=limits, timeout=120) as http:
        statuses = await asyncio.gather(*(one(http, *request) for request in requests))
    return {str(status): statuses.count(status) for status in sorted(set(statuses), key=str)}


async def hung_chats(url: str, tokens: list[str]) -> dict:
    """CHATS chats sent at once to a coach that does not answer; measured for HUNG_SECONDS, then
    the clients give up (the app's own timeout would end them later)."""
    limits = httpx2.Limits(max_connections=len(tokens))
    async with httpx2.AsyncClient(limits=limits, timeout=120) as http:
        chats = [asyncio.create_task(http.post(f"{url}/api/chat", json={"message": "Are you there?"},
                                               headers={"Authorization": f"Bearer {t}"})) for t in tokens]
        await asyncio.sleep(HUNG_SECONDS)
        answered = sum(chat.done() for chat in chats)
        for chat in chats:
            chat.cancel()
        await asyncio.gather(*chats, return_exceptions=True)
    return {"answered_meanwhile": answered}


async def run(url: str, coach_url: str, env: dict, ids: list[int], rounds: int) -> dict:
    """Each storm `rounds` times (the round with the median p99 counts), the hung chats once (their
    requests linger until the app's own timeout, and would weigh on any round after them)."""
    secret = env["JWT_SECRET"]
    me = {"Authorization": f"Bearer {token(ids[0], secret)}"}
    runs = {"alone": [], "signups": [], "logins": []}
    for n in range(rounds):
        signups = [("POST", f"{url}/api/users",
                    {"name": "Storm", "email": f"storm{n}.{i}@example.com", "password": PASSWORD}, None)
                   for i in range(STORM)]
        logins = [("POST", f"{url}/api/login", {"email": f"bench{i}@example.com", "password": PASSWORD}, None)
                  for i in range(2, STORM + 2)]
        runs["alone"].append(await measure(url, me, seconds=5))
        runs["signups"].append(await measure(url, me, storm(signups)))
        runs["logins"].append(await measure(url, me, storm(logins)))
        print(f"  round {n + 1} of {rounds}: alone, signups, logins", flush=True)
    result = {key: sorted(found, key=lambda m: m["p99_ms"])[len(found) // 2] for key, found in runs.items()}
    async with httpx2.AsyncClient() as http:
        r = await http.post(f"{coach_url}/_coach/mode", json={"mode": "slow", "seconds": 3600})
        r.raise_for_status()
    try:
        chatters = [token(i, secret) for i in ids[-CHATS:]]
        result["hung_chats"] = await measure(url, me, hung_chats(url, chatters))
    finally:
        async with httpx2.AsyncClient() as http:
            await http.post(f"{coach_url}/_coach/reset", json={})
    print("  hung chats", flush=True)
    return result


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}"


def table(lesson, r: dict) -> str:
    rows = [("GET /api/me, 5 clients in a loop", "p99 (ms)", "median (ms)", "goal", "the storm's answers")]
    for key, label in [("alone", "alone"), ("signups", f"during {STORM} signups at once"),
                       ("logins", f"during {STORM} logins at once"),
                       ("hung_chats", f"during {CHATS} chats on a hung LLM ({HUNG_SECONDS:g} s)")]:
        m = r[key]
        storm = "" if m["storm"] is None else ", ".join(f"{k}: {v}" for k, v in m["storm"].items())
        rows.append((label, f"{m['p99_ms']:.0f}", f"{m['median_ms']:.1f}", f"<= {GOAL_MS}", storm))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"lesson {lesson.number} ({lesson.folder}), one uvicorn process; {machine()}; "
             f"load average {os.getloadavg()[0]:.1f}"]
    for n, row in enumerate(rows):
        lines.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="make bench-protect", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--lesson", default="24", help="the lesson to bench (24; 23 for the lesson before)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each storm; the median p99 counts (3)")
    args = parser.parse_args(argv[1:] if argv[:1] == ["--"] else argv)  # make passes a -- first
    lesson = find(args.lesson)
    coach, coach_port, _ = start([sys.executable, str(COACH), "--port", "{port}"], ROOT, dict(os.environ),
                                 "the offline coach")
    coach_url = f"http://127.0.0.1:{coach_port}"
    try:
        env, _, ids = prepare(lesson.path, coach_url)
        app, port, log = start([sys.executable, "-m", "uvicorn", lesson.app, "--host", "127.0.0.1", "--port",
                                "{port}", "--log-level", "warning"], lesson.path, env, "the app")
        try:
            print(f"lesson {lesson.number}:", flush=True)
            result = asyncio.run(run(f"http://127.0.0.1:{port}", coach_url, env, ids, args.rounds))
        except Exception:
            log.seek(0)
            print(f"--- end of the app's log:\n{log.read()[-3000:]}", file=sys.stderr)
            raise
        finally:
            stop(app)
    finally:
        stop(coach)
    print(table(lesson, result))
    out = ROOT / "build" / "bench-protect.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"lesson": lesson.number, "machine": machine(), **result}, indent=1) + "\n")
    print(f"(written to {out.relative_to(ROOT)})")
