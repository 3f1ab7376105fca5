"""The streaming benchmark: lessons 20 (SSE) and 21 (WebSocket) under load; numbers for notes, never tests.

    make bench-stream                                  the table below, and build/bench.json
    make bench-stream STREAM_ARGS="--token-delay 0.05 --sizes 1,20"

It starts its own throwaway database (aic_bench_stream), the offline coach with a fixed delay
per token, and each lesson's API in uvicorn (one process, no reload), all on free ports of
127.0.0.1. Then, per lesson:

  N concurrent chats (N = 1, 20, 100)   wall time until the last of the N answers is complete,
                                        divided by the wall time of one chat     (goal <= 1.5 at 20)
  relay overhead                        time to the last token through the API / straight
                                        from the coach, one chat at a time        (goal <= 1.1)
  GET /api/me per second                20 clients asking in a loop, alone and while 20 chats stream
  peak memory                           largest RSS of the API process during the N = 100 runs

Every chat is a new user's first (the same question, so the same answer); users are copied in SQL from
one signup and their tokens signed with the JWT secret the bench gave the API, which skips 100
deliberately slow bcrypt logins. A WebSocket is opened and authenticated before its chat is
timed, as a page keeps one open; an SSE chat is timed from its POST.
"""

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import jwt
from websockets.asyncio.client import connect

from shared.ground import devdb
from shared.ground.manifest import Lesson, find
from shared.ground.paths import BUILD, ROOT
from shared.services.database import NotReady, bench_users
from shared.services.processes import Server, ServerFailed, coach_argv, uvicorn_argv

DATABASE = "aic_bench_stream"
MESSAGE = "How do I answer 'tell me about yourself' in an interview?"
TIMEOUT = 120  # seconds: no single chat in this bench may take longer (bounded waits everywhere)


class Peak:
    """Samples a process's RSS every 20 ms while active; .mb is the largest seen."""

    def __init__(self, server: Server):
        self.server, self.mb, self.task = server, server.rss_mb(), None

    async def _sample(self):
        while True:
            self.mb = max(self.mb, self.server.rss_mb())
            await asyncio.sleep(0.02)

    async def __aenter__(self):
        self.task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc):
        self.task.cancel()
        self.mb = max(self.mb, self.server.rss_mb())


# --- one chat, three ways: each returns (seconds to first token, seconds to last, tokens) ---

async def chat_direct(http: httpx2.AsyncClient, coach_url: str) -> tuple[float, float, int]:
    """Straight from the coach, as the API's own OpenAI client would ask it."""
    started, first, count = time.perf_counter(), None, 0
    body = {"model": "coach", "stream": True, "messages": [{"role": "user", "content": MESSAGE}]}
    async with http.stream("POST", f"{coach_url}/v1/chat/completions", json=body,
                           headers={"Authorization": "Bearer bench"}) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                count += 1
                first = first or time.perf_counter() - started
    return first, time.perf_counter() - started, count


async def chat_sse(http: httpx2.AsyncClient, api_url: str, token: str) -> tuple[float, float, int]:
    started, first, count, event = time.perf_counter(), None, 0, "message"
    async with http.stream("POST", f"{api_url}/api/chat/stream", json={"message": MESSAGE},
                           headers={"Authorization": f"Bearer {token}"}) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():  # event: <name> / data: <json> / blank line ends an event
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                if event == "done":
                    return first, time.perf_counter() - started, count
                if event == "error":
                    raise RuntimeError(f"SSE error event: {line}")
                count += 1
                first = first or time.perf_counter() - started
            elif not line:
                event = "message"
    raise RuntimeError("SSE stream ended without a done event")


async def open_socket(api_url: str, token: str):
    ws = await connect(api_url.replace("http://", "ws://") + "/ws/chat", open_timeout=30)
    await ws.send(json.dumps({"token": token}))
    ready = json.loads(await ws.recv())
    if ready != {"type": "ready"}:
        raise RuntimeError(f"WebSocket: expected ready, got {ready}")
    return ws


async def chat_ws(ws) -> tuple[float, float, int]:
    started, first, count = time.perf_counter(), None, 0
    await ws.send(json.dumps({"message": MESSAGE}))
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == "token":
            count += 1
            first = first or time.perf_counter() - started
        elif frame["type"] == "done":
            return first, time.perf_counter() - started, count
        else:
            raise RuntimeError(f"WebSocket frame: {frame}")


async def wall(chats) -> float:
    """Runs the chats at once; seconds until the last one is complete."""
    started = time.perf_counter()
    results = await asyncio.wait_for(asyncio.gather(*chats), TIMEOUT)
    if len({count for _, _, count in results}) != 1 or results[0][2] < 10:
        raise RuntimeError(f"chats got different or too few tokens: {sorted({r[2] for r in results})}")
    return time.perf_counter() - started


async def me_per_second(http: httpx2.AsyncClient, api_url: str, token: str, until: asyncio.Future | float,
                        clients: int = 20) -> float:
    """GET /api/me from `clients` loops until `until` (a task that ends, or a number of seconds)."""
    done = 0
    stop = asyncio.Event()

    async def loop():
        nonlocal done
        while not stop.is_set():
            r = await http.get(f"{api_url}/api/me", headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()
            done += 1

    started = time.perf_counter()
    loops = [asyncio.create_task(loop()) for _ in range(clients)]
    if isinstance(until, float | int):
        await asyncio.sleep(until)
    else:
        await asyncio.wait_for(until, TIMEOUT)
    stop.set()
    elapsed = time.perf_counter() - started
    await asyncio.gather(*loops)
    return done / elapsed


# --- setting up one lesson ------------------------------------------------------------------

def start_api_with_users(lesson: Lesson, folder: Path, coach: Server, users: int) -> tuple[Server, list[str]]:
    """Fresh database, migrations, the API on a free port, `users` users with their tokens."""
    db_env = devdb.create_test_database(DATABASE)
    secret = secrets.token_hex(32)
    env = {**os.environ, **db_env, "JWT_SECRET": secret, "OPENAI_API_KEY": "bench-no-key",
           "OPENAI_BASE_URL": f"{coach.url}/v1"}
    if (folder / "alembic").is_dir():
        subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=folder, env=env,
                       check=True, capture_output=True)
    api = Server(uvicorn_argv(lesson, "--no-access-log"), folder, env, f"the API of {folder.name}")
    try:
        ids = bench_users(api.url, db_env, users)
    except NotReady as error:
        raise SystemExit(f"{folder.name}: {error}") from None
    # Lessons 16 on want an iat, and a lifetime within EXPIRY_MINUTES.
    now = datetime.now(UTC)
    claims = {"iat": now, "exp": now + timedelta(minutes=10)}
    return api, [jwt.encode({**claims, "sub": str(i)}, secret, algorithm="HS256") for i in ids]


async def measure(kind: str, api: Server, coach: Server, tokens: list[str], sizes: list[int],
                  rounds: int) -> dict:
    fresh = iter(tokens)  # each chat is some user's first: the same question, the same answer
    limits = httpx2.Limits(max_connections=max(sizes) + 50, max_keepalive_connections=max(sizes) + 50)
    async with httpx2.AsyncClient(limits=limits, timeout=TIMEOUT) as http:

        async def run(n: int) -> float:
            users = [next(fresh) for _ in range(n)]
            if kind == "sse":
                return await wall(chat_sse(http, api.url, token) for token in users)
            sockets = await asyncio.gather(*(open_socket(api.url, token) for token in users))
            try:
                return await wall(chat_ws(ws) for ws in sockets)
            finally:
                await asyncio.gather(*(ws.close() for ws in sockets))

        await run(1)  # warm up: imports, connection pools, first queries
        result = {"wall_s": {}}
        for n in sizes:
            if n == max(sizes):
                async with Peak(api) as peak:
                    times = [await run(n) for _ in range(rounds)]
                result["peak_rss_mb"] = round(peak.mb, 1)
            else:
                times = [await run(n) for _ in range(rounds)]
            result["wall_s"][n] = round(statistics.median(times), 3)
        one = result["wall_s"][min(sizes)]
        result["ratio"] = {n: round(w / one, 2) for n, w in result["wall_s"].items()}

        through = [await run(1) for _ in range(rounds)]
        direct = [await wall([chat_direct(http, coach.url)]) for _ in range(rounds)]
        result["relay_overhead"] = round(statistics.median(through) / statistics.median(direct), 3)
        result["direct_s"] = round(statistics.median(direct), 3)

        result["me_rps_idle"] = round(await me_per_second(http, api.url, tokens[0], 2.0))
        streaming = asyncio.ensure_future(run(20))
        result["me_rps_streaming"] = round(await me_per_second(http, api.url, tokens[0], streaming))
    return result


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, {platform.system()}"


def table(results: dict, sizes: list[int], delay: float) -> str:
    kinds = [k for k in ("sse", "ws") if k in results]
    head = {"sse": "SSE (20)", "ws": "WebSocket (21)"}
    rows = [("measure", *(head[k] for k in kinds), "goal")]
    for n in sizes:
        rows.append((f"{n} chat{'s' if n > 1 else ''} at once: wall time (s)",
                     *(f"{results[k]['wall_s'][n]:.2f}" for k in kinds), ""))
    for n in sizes[1:]:
        rows.append((f"{n} at once / 1 alone", *(f"{results[k]['ratio'][n]:.2f}" for k in kinds),
                     "<= 1.5" if n == 20 else ""))
    rows.append(("relay overhead: via API / straight from coach",
                 *(f"{results[k]['relay_overhead']:.2f}" for k in kinds), "<= 1.1"))
    rows.append(("GET /api/me per second, 20 clients, idle",
                 *(f"{results[k]['me_rps_idle']:.0f}" for k in kinds), ""))
    rows.append(("GET /api/me per second, while 20 chats stream",
                 *(f"{results[k]['me_rps_streaming']:.0f}" for k in kinds), ""))
    rows.append((f"peak RSS of the API at {max(sizes)} chats (MB)",
                 *(f"{results[k]['peak_rss_mb']:.0f}" for k in kinds), ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    direct = results[kinds[0]]["direct_s"]
    return "\n".join([*lines, "",
                      f"coach: {delay * 1000:.0f} ms per token, one answer straight from it takes "
                      f"{direct:.2f} s; machine: {machine()}"])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="make bench-stream", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--token-delay", type=float, default=0.02, help="coach's seconds per token (0.02)")
    parser.add_argument("--sizes", default="1,20,100", help="numbers of chats at once (1,20,100)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per measurement; the median counts")
    parser.add_argument("--sse-dir", type=Path, default=None, help="folder to bench as SSE (lesson 20)")
    parser.add_argument("--ws-dir", type=Path, default=None, help="folder to bench as WebSocket (lesson 21)")
    args = parser.parse_args(argv)
    sizes = sorted({int(n) for n in args.sizes.split(",")})
    lessons = {"sse": find("20"), "ws": find("21")}
    folders = {"sse": args.sse_dir or lessons["sse"].path, "ws": args.ws_dir or lessons["ws"].path}
    try:
        coach = Server(coach_argv("--token-delay", str(args.token_delay)), ROOT, dict(os.environ),
                       "the offline coach")
    except ServerFailed as error:
        raise SystemExit(str(error)) from None
    results = {}
    try:
        for kind, folder in folders.items():
            users = 1 + args.rounds * (sum(sizes) + 1) + 20  # every chat a new user's first
            try:
                api, tokens = start_api_with_users(lessons[kind], folder.resolve(), coach, users)
            except ServerFailed as error:
                raise SystemExit(str(error)) from None
            try:
                print(f"{kind}: {folder.name} ...", flush=True)
                results[kind] = asyncio.run(measure(kind, api, coach, tokens, sizes, args.rounds))
            except Exception:
                time.sleep(1)  # let the API finish logging what went wrong
                print(f"--- end of the log of {api.what}:\n{api.tail()}", file=sys.stderr)
                raise
            finally:
                api.stop()
    finally:
        coach.stop()
        devdb.drop_database(DATABASE)
    print(table(results, sizes, args.token_delay))
    out = BUILD / "bench.json"
    out.parent.mkdir(exist_ok=True)
    data = json.loads(out.read_text()) if out.exists() else {}
    data["streaming"] = {"machine": machine(), "token_delay_s": args.token_delay,
                         "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                         **{folders[k].name: v for k, v in results.items()}}
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
