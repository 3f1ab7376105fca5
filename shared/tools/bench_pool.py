"""The pool benchmark: a hundred requests at once, do the threads and the connections deadlock?
Numbers for the READMEs of lessons 17 on, never tests.

    make bench-pool                                   every lesson from 17 on
    make bench-pool LESSON=22                         one lesson
    make bench-pool LESSON=22 POOL_ARGS="--at-once 50 --kinds chat,stream"

FastAPI runs each `def` dependency, each `def` endpoint and the check of its answer in a worker
thread (40 of them); SQLAlchemy's pool lends 15 connections. A request that holds a connection
while it waits for a thread deadlocks a crowd: every thread waits for a connection, every
connection is held by a request that waits for a thread, until the pool gives up after 30 s
(a 500, or a 503 from lesson 24 on). Lesson 17's tests check the rule one request at a time;
this bench sends the crowd.

It starts its own throwaway database (aic_bench_pool), the offline coach, and the lesson's app in
one uvicorn process as `make run` serves it, all on free ports of 127.0.0.1. Then, for each kind
of request the lesson has, --at-once (100) of them at once, each from a user of its own (copied
in SQL, tokens signed with the JWT secret the bench gave the app; signups are left out: 100
bcrypt hashes are two minutes of CPU whatever the pool does):

  me       GET /api/me               (17 on)
  put      PUT /api/me, a new name   (17 on)
  chat     POST /api/chat            (18 on)
  history  GET /api/chat/history     (19 on)
  stream   POST /api/chat/stream     (20 on), read to its `done` event

and prints the wall time until the last answer, the slowest answer, and the answers that were not
a success. With no deadlock, each row takes seconds; with one, 30 s or more and failures.
"""

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx2
import jwt

from shared.ground import devdb
from shared.ground.manifest import Lesson, all_lessons, find
from shared.ground.paths import BUILD, ROOT
from shared.services.database import NotReady, bench_users
from shared.services.processes import Server, ServerFailed, coach_argv, uvicorn_argv

DATABASE = "aic_bench_pool"
TIMEOUT = 120  # seconds: no answer may take longer (a deadlock ends after the pool's 30 s)
FIRST = "17"  # get_db and get_current_user as dependencies: where the pool can be starved
SINCE = {"me": "17", "put": "17", "chat": "18", "history": "19", "stream": "20"}
# Lesson 24's budgets a crowd of new users from one address would meet; later lessons ignore them.
BENCH_SETTINGS = {"SIGNUPS_PER_ADDRESS": "100000", "LOGIN_FAILURES_PER_ADDRESS": "100000"}


def start(lesson: Lesson, coach: Server, users: int) -> tuple[Server, list[str]]:
    """Fresh database, migrations, the app on a free port, `users` users with their tokens."""
    db_env = devdb.create_test_database(DATABASE)
    secret = secrets.token_hex(32)
    env = {**os.environ, **db_env, **BENCH_SETTINGS, "JWT_SECRET": secret, "OPENAI_API_KEY": "bench-no-key",
           "OPENAI_BASE_URL": f"{coach.url}/v1"}
    if (lesson.path / "alembic").is_dir():
        subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=lesson.path, env=env,
                       check=True, capture_output=True)
    api = Server(uvicorn_argv(lesson, "--no-access-log", *lesson.server_options), lesson.path, env,
                 f"the app of {lesson.folder}")
    try:
        ids = bench_users(api.url, db_env, users)
    except NotReady as error:
        api.stop()
        raise SystemExit(f"{lesson.folder}: {error}") from None
    # The claims every lesson from 17 on accepts: iat and a lifetime within EXPIRY_MINUTES (16 on),
    # jti and ver (24 on; earlier lessons ignore them).
    now = datetime.now(UTC)
    claims = {"iat": now, "exp": now + timedelta(minutes=10), "ver": 0}
    return api, [jwt.encode({**claims, "sub": str(i), "jti": uuid.uuid4().hex}, secret, algorithm="HS256")
                 for i in ids]


async def one(http: httpx2.AsyncClient, url: str, kind: str, token: str) -> tuple[str, float]:
    """One request of a kind: ("ok" or what went wrong, seconds)."""
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    try:
        if kind == "stream":
            async with http.stream("POST", f"{url}/api/chat/stream", json={"message": "Hello"},
                                   headers=headers) as r:
                body = await r.aread()
                outcome = "ok" if r.status_code == 200 and b"event: done" in body else (
                    str(r.status_code) if r.status_code != 200 else "no done event")
        else:
            method, path, body = {"me": ("GET", "/api/me", None),
                                  "put": ("PUT", "/api/me", {"name": "Renamed"}),
                                  "chat": ("POST", "/api/chat", {"message": "Hello"}),
                                  "history": ("GET", "/api/chat/history", None)}[kind]
            r = await http.request(method, f"{url}{path}", json=body, headers=headers)
            outcome = "ok" if r.status_code == 200 else str(r.status_code)
    except httpx2.HTTPError as error:
        outcome = type(error).__name__
    return outcome, time.perf_counter() - started


async def crowd(url: str, kinds: list[str], tokens: list[str], at_once: int) -> dict:
    fresh = iter(tokens)
    limits = httpx2.Limits(max_connections=at_once + 10, max_keepalive_connections=at_once + 10)
    results = {}
    async with httpx2.AsyncClient(limits=limits, timeout=TIMEOUT) as http:
        await one(http, url, "me", next(fresh))  # warm up: imports, the pool's first connection
        for kind in kinds:
            started = time.perf_counter()
            answers = await asyncio.gather(*(one(http, url, kind, next(fresh)) for _ in range(at_once)))
            failed = Counter(outcome for outcome, _ in answers if outcome != "ok")
            results[kind] = {"wall_s": round(time.perf_counter() - started, 2),
                             "slowest_s": round(max(seconds for _, seconds in answers), 2),
                             "failed": dict(failed)}
    return results


def table(results: dict, at_once: int) -> str:
    rows = [("lesson", "kind", f"{at_once} at once: wall (s)", "slowest (s)", "not a success")]
    for folder, kinds in results.items():
        for kind, r in kinds.items():
            failed = ", ".join(f"{n} x {outcome}" for outcome, n in r["failed"].items()) or "none"
            rows.append((folder, kind, f"{r['wall_s']:.1f}", f"{r['slowest_s']:.1f}", failed))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="make bench-pool", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--lesson", default="", help=f"one lesson (default: every lesson from {FIRST} on)")
    parser.add_argument("--at-once", type=int, default=100, help="requests of a kind sent at once (100)")
    parser.add_argument("--kinds", default=",".join(SINCE), help=f"which kinds ({','.join(SINCE)})")
    args = parser.parse_args(argv)
    lessons = [find(args.lesson)] if args.lesson else [x for x in all_lessons() if x.number >= FIRST]
    wanted = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    if unknown := set(wanted) - set(SINCE):
        raise SystemExit(f"make bench-pool: no kind {', '.join(sorted(unknown))} (kinds: {', '.join(SINCE)})")
    try:
        coach = Server(coach_argv(), ROOT, dict(os.environ), "the offline coach")
    except ServerFailed as error:
        raise SystemExit(str(error)) from None
    results = {}
    try:
        for lesson in lessons:
            kinds = [kind for kind in wanted if lesson.number >= SINCE[kind]]
            if not kinds:
                print(f"{lesson.folder}: none of {', '.join(wanted)} yet", flush=True)
                continue
            try:
                api, tokens = start(lesson, coach, 1 + args.at_once * len(kinds) + 1)
            except ServerFailed as error:
                raise SystemExit(str(error)) from None
            try:
                print(f"{lesson.folder}: {', '.join(kinds)} ...", flush=True)
                results[lesson.folder] = asyncio.run(crowd(api.url, kinds, tokens, args.at_once))
            finally:
                api.stop()
    finally:
        coach.stop()
        devdb.drop_database(DATABASE)
    print(table(results, args.at_once))
    out = BUILD / "bench.json"
    out.parent.mkdir(exist_ok=True)
    data = json.loads(out.read_text()) if out.exists() else {}
    data["pool"] = {"at_once": args.at_once, "cores": os.cpu_count(),
                    "measured_at": datetime.now(UTC).isoformat(timespec="seconds"), **results}
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
