"""The shipping benchmark: lesson 25 as it runs in production, on this machine; numbers for its
README ("When one machine is not enough"), never tests.

    make bench-ship                                      the table below, and build/bench.json
    make bench-ship SHIP_ARGS="--chats 50 --sockets 100"

It starts its own throwaway database (aic_bench_ship), the offline coach at 20 ms per token, and
lesson 25's app behind nginx as `make run` runs it (shared/services/proxy.py): two uvicorn workers
for the API and two for the streamed answers and the sockets, all on free ports of 127.0.0.1; for
comparison, the same app in one worker with no proxy. Then:

  N open sockets          stream workers' memory with N logged-in chat sockets open, less before, / N
  1 chat, N chats         SSE through nginx: wall time until the last answer is done, and the
                          ratio of the two                                        (goal <= 1.5)
  GET /api/me p99         while the N chats stream: 5 clients in a process of their own, each
                          asking again 0.1 s after its last answer                (goal <= 50 ms)
                          and its median; then split: the requests asked while the chats start
                          (until the last has its first token) and those asked after
  memory per stream       stream workers' memory at the peak of the N chats, less idle, / N
  database connections    the most the app held at once during the N chats; each worker's pool
                          limit (SQLAlchemy's 5 + 10 overflow) and Postgres' max_connections
  CPU per token           stream workers' and nginx's CPU time over one more round of N chats, / tokens
  GET /api/me per second  20 clients for 5 s: the two API workers behind nginx, then one worker
                          direct, with the CPU time each request cost (workers + nginx, or the worker)
  peak memory per worker  the largest RSS any stream worker reached

CPU time per token or request is the steadiest number here: wall times stretch when other
programs share the cores, CPU time much less. Capacity follows from it: a core gives
1,000,000 µs per second.

The load comes from this process, on the same cores as the servers: the numbers are what one
small machine does with everything on it, not what the app would do alone. It reads the streams
straight off the socket (ChatStream), the cheapest way it has, to leave the cores to the servers.
Users are inserted in SQL and their tokens signed with the secret given to the app (no bcrypt
logins); every chat is some user's first, so every answer is the same length.
"""

import argparse
import asyncio
import json
import multiprocessing
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
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import jwt
import psycopg2
from websockets.asyncio.client import connect

from shared.ground import devdb
from shared.ground.manifest import find
from shared.ground.paths import COACH, ROOT, free_port, listens_on
from shared.services import proxy

MESSAGE = "How do I answer 'tell me about yourself' in an interview?"
DATABASE = "aic_bench_ship"
TIMEOUT = 120  # seconds: no chat in this bench may take longer
POOL_PER_WORKER = 15  # app/db.py: pool_size=15, max_overflow=0 (the default limit, 5 + 10, all kept open)


def wait_port(port: int, proc: subprocess.Popen, what: str, log) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0 and listens_on(proc.pid, port):  # not another program
                return
        time.sleep(0.05)
    log.seek(0)
    raise SystemExit(f"{what} did not start on port {port}:\n{log.read()[-3000:]}")


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    return int(next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")), 0)) / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time these processes have used so far, in seconds (/proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return total / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


class App:
    """Lesson 25's app in uvicorn: `workers` worker processes (1: the server process itself)."""

    def __init__(self, folder: Path, env: dict, workers: int):
        self.port, self.workers_wanted = free_port(), workers
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers)],
            cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, self.proc, f"uvicorn with {workers} workers", self.log)
            deadline = time.monotonic() + 60
            while len(self.worker_pids()) < workers and time.monotonic() < deadline:
                time.sleep(0.1)
        except BaseException:  # it never started, or the bench is being stopped: no orphan left
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        if self.workers_wanted == 1:
            return [self.proc.pid]
        return [p for p in children(self.proc.pid)
                if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]

    def rss(self) -> dict[int, float]:
        return {pid: rss_mb(pid) for pid in self.worker_pids()}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Sampler:
    """Every 50 ms while active: each worker's RSS (the peak of each, and of their sum) and the
    number of the app's connections to the database."""

    def __init__(self, app: App, db_env: dict):
        self.app, self.db_env = app, db_env
        self.peak_each: dict[int, float] = {}
        self.peak_sum, self.peak_connections, self.task = 0.0, 0, None

    async def _sample(self):
        conn = psycopg2.connect(host=self.db_env["DB_HOST"], port=self.db_env["DB_PORT"], dbname="postgres",
                                user=self.db_env["DB_USER"], password=self.db_env["DB_PASSWORD"])
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while True:
                    self.take()
                    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (DATABASE,))
                    self.peak_connections = max(self.peak_connections, cur.fetchone()[0])
                    await asyncio.sleep(0.05)
        finally:
            conn.close()

    def take(self):
        now = self.app.rss()
        for pid, mb in now.items():
            self.peak_each[pid] = max(self.peak_each.get(pid, 0.0), mb)
        self.peak_sum = max(self.peak_sum, sum(now.values()))

    async def __aenter__(self):
        self.task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc):
        self.task.cancel()
        self.take()


# --- the clients -----------------------------------------------------------------------------

class ChatStream(asyncio.Protocol):
    """One chat over SSE, read straight off the socket: counts the `data: {"token"` events until
    the done event. Hand-made on purpose: this process plays 100 users on the same two cores as
    the servers, and httpx2's line-by-line reading cost about 140 µs of CPU per token, more than
    nginx and the coach together; this costs about a tenth of it, so the cores go to the app."""

    TOKEN, DONE, ERROR = b'data: {"token"', b"event: done", b"event: error"

    def __init__(self, request: bytes, finished: asyncio.Future):
        self.request, self.finished = request, finished
        self.head, self.rest, self.count = None, b"", 0
        self.first_token_at = None  # time.time() of the first token event

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes):
        data = self.rest + data
        if self.head is None:  # the status line and headers, then the events
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.rest = data
                return
            self.head, data = data[:end], data[end + 4:]
            status = self.head.split(b"\r\n", 1)[0].decode()
            if not status.startswith("HTTP/1.1 200 "):
                return self.end(RuntimeError(f"SSE answer {status}"))
        self.count += data.count(self.TOKEN)
        if self.count and self.first_token_at is None:
            self.first_token_at = time.time()
        if self.ERROR in data:
            return self.end(RuntimeError(f"SSE error event: {data[data.index(self.ERROR):][:120]!r}"))
        if self.DONE in data:
            return self.end(None)
        # What may be the start of a marker cut in two by the network: read again with the next
        # piece (too short to hold a whole one, so nothing is counted twice).
        self.rest = data[-(len(self.TOKEN) - 1):]

    def end(self, error: Exception | None):
        if not self.finished.done():
            self.finished.set_exception(error) if error else self.finished.set_result(
                (self.count, self.first_token_at))
        self.transport.close()

    def connection_lost(self, exc):
        if not self.finished.done():
            self.finished.set_exception(RuntimeError("SSE stream ended without a done event"))


async def chat_sse(url: str, token: str) -> tuple[int, float]:
    """One chat over SSE through `url` (http://host:port), until its done event; returns the
    number of tokens and when the first came (time.time())."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    body = json.dumps({"message": MESSAGE}).encode()
    request = (f"POST /api/chat/stream HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    transport, _ = await loop.create_connection(
        lambda: ChatStream(request.encode() + body, finished), host, int(port))
    try:
        return await finished
    finally:
        transport.close()


# What went wrong during the bench, by kind ("chat: HTTPStatusError 500", ...): counted and
# shown under the table, not hidden and not fatal (one failure must not cost the other numbers).
FAILURES: Counter = Counter()


@dataclass
class Round:
    seconds: float        # until the last of the chats, all started at once, was done
    tokens: int           # received, all chats together
    all_streaming: float  # time.time() when the last of them got its first token


async def chats_at_once(url: str, tokens: list[str]) -> Round:
    started = time.perf_counter()
    results = await asyncio.wait_for(
        asyncio.gather(*(chat_sse(url, t) for t in tokens), return_exceptions=True), TIMEOUT)
    done = [r for r in results if not isinstance(r, BaseException)]
    FAILURES.update(f"chat: {failure_name(r)}" for r in results if isinstance(r, BaseException))
    counts = [count for count, _ in done]
    if len(set(counts)) > 1 or not counts or counts[0] < 10:
        raise RuntimeError(f"chats got different or too few tokens: {sorted(set(counts))}")
    return Round(time.perf_counter() - started, sum(counts), max(first for _, first in done))


def failure_name(error: BaseException) -> str:
    status = getattr(getattr(error, "response", None), "status_code", None)
    return f"{type(error).__name__} {status}" if status else f"{type(error).__name__}: {str(error)[:80]}"


async def open_socket(url: str, token: str):
    ws = await connect(url.replace("http://", "ws://") + "/ws/chat", open_timeout=30, max_queue=None)
    await ws.send(json.dumps({"token": token}))
    ready = json.loads(await ws.recv())
    if ready != {"type": "ready"}:
        raise RuntimeError(f"socket: expected ready, got {ready}")
    return ws


async def me_loop(http, url: str, token: str, stop: asyncio.Event, latencies: list[tuple[float, float]],
                  pause: float = 0.0) -> None:
    """GET /api/me, again and again (`pause` seconds after each answer), until `stop` is set;
    each answer adds (when it was asked, time.time(); seconds it took) to `latencies`."""
    while not stop.is_set():
        asked, started = time.time(), time.perf_counter()
        try:
            r = await http.get(f"{url}/api/me", headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()
        except httpx2.HTTPError as error:
            FAILURES[f"GET /api/me: {failure_name(error)}"] += 1
            continue
        latencies.append((asked, time.perf_counter() - started))
        await asyncio.sleep(pause)


async def me_per_second(http, url: str, token: str, pids: list[int], clients: int = 20,
                        seconds: float = 5.0) -> tuple[float, float]:
    """(GET /api/me answered per second, CPU milliseconds the processes `pids` spent per request)."""
    stop, latencies = asyncio.Event(), []
    loops = [asyncio.create_task(me_loop(http, url, token, stop, latencies)) for _ in range(clients)]
    await asyncio.sleep(1.0)  # warm: connections open, pools filled
    before, started, cpu = len(latencies), time.perf_counter(), cpu_seconds(pids)
    await asyncio.sleep(seconds)
    done, elapsed = len(latencies) - before, time.perf_counter() - started
    cpu = cpu_seconds(pids) - cpu
    stop.set()
    await asyncio.gather(*loops)
    return done / elapsed, cpu * 1000 / done


PROBES, PROBE_PAUSE = 5, 0.1  # GET /api/me while chats stream: 5 clients, each 0.1 s after its last answer


def probe_process(url: str, token: str, ready, stop, out) -> None:
    """The GET /api/me clients, in a process of their own: a latency measured in the process
    that also reads 100 streams would count the time its own event loop was busy with them.
    Paced (at most 50 requests a second), so that they measure the wait and do not become the
    load themselves. Sends back the latencies and the failures once `stop` is set."""
    async def run() -> list[tuple[float, float]]:
        latencies, done = [], asyncio.Event()
        async with client(PROBES) as http:
            loops = [asyncio.create_task(me_loop(http, url, token, done, latencies, PROBE_PAUSE))
                     for _ in range(PROBES)]
            while not latencies:  # connections open, the first answers in
                await asyncio.sleep(0.01)
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.01)
            done.set()
            await asyncio.gather(*loops)
        return latencies

    out.send((asyncio.run(run()), dict(FAILURES)))


async def probing(url: str, token: str):
    """Starts probe_process; returns a coroutine function that stops it and returns its latencies."""
    spawn = multiprocessing.get_context("spawn")
    ready, stop = spawn.Event(), spawn.Event()
    receiving, sending = spawn.Pipe(duplex=False)
    process = spawn.Process(target=probe_process, args=(url, token, ready, stop, sending))
    process.start()
    await asyncio.to_thread(ready.wait, 60)

    async def finish() -> list[tuple[float, float]]:
        stop.set()
        latencies, failures = await asyncio.to_thread(receiving.recv)
        await asyncio.to_thread(process.join)
        FAILURES.update(failures)
        return latencies

    return finish


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


def client(connections: int) -> httpx2.AsyncClient:
    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx2.AsyncClient(limits=limits, timeout=TIMEOUT)


# --- the phases --------------------------------------------------------------------------------

async def sockets_phase(url: str, app: App, nginx: proxy.Nginx, tokens: list[str], n: int) -> dict:
    """Memory per open, logged-in, idle chat socket, in the workers and in nginx."""
    nginx_pids = [nginx.proc.pid, *children(nginx.proc.pid)]
    warm = [await open_socket(url, t) for t in tokens[:4]]
    for ws in warm:
        await ws.close()
    await asyncio.sleep(0.5)
    before, nginx_before = sum(app.rss().values()), sum(rss_mb(p) for p in nginx_pids)
    sockets = []
    for start in range(0, n, 50):  # 50 at a time: a storm of logins is another bench
        sockets += await asyncio.gather(*(open_socket(url, t) for t in tokens[start:start + 50]))
    await asyncio.sleep(0.5)
    after, nginx_after = sum(app.rss().values()), sum(rss_mb(p) for p in nginx_pids)
    await asyncio.gather(*(ws.close() for ws in sockets))
    return {"sockets": n, "kb_per_socket_workers": round((after - before) * 1024 / n, 1),
            "kb_per_socket_nginx": round((nginx_after - nginx_before) * 1024 / n, 1)}


async def streams_phase(url: str, app: App, nginx: proxy.Nginx, coach: int, db_env: dict, tokens: list[str],
                        n: int, rounds: int) -> dict:
    fresh = iter(tokens)
    await chats_at_once(url, [next(fresh) for _ in range(2)])  # warm up
    one = statistics.median([(await chats_at_once(url, [next(fresh)])).seconds for _ in range(rounds)])
    await asyncio.sleep(0.5)
    idle = sum(app.rss().values())
    # GET /api/me's times, all of them, and split: those asked before every chat had its first
    # token (while they start: each start is a few short transactions, 100 at once) and after.
    walls, latencies, starting, streaming = [], [], [], []
    async with Sampler(app, db_env) as sampler:
        for _ in range(rounds):
            finish = await probing(url, tokens[0])
            done = await chats_at_once(url, [next(fresh) for _ in range(n)])
            walls.append(done.seconds)
            for asked, seconds in await finish():
                latencies.append(seconds)
                (starting if asked < done.all_streaming else streaming).append(seconds)
    # The CPU one streamed token costs, in the workers, in nginx, in the coach and in this
    # process (the load): one more round, alone, with the wall time it took.
    workers, proxies = app.worker_pids(), [nginx.proc.pid, *children(nginx.proc.pid)]
    before = cpu_seconds(workers), cpu_seconds(proxies), cpu_seconds([coach]), time.process_time()
    last = await chats_at_once(url, [next(fresh) for _ in range(n)])
    last_wall, streamed = last.seconds, last.tokens
    after = cpu_seconds(workers), cpu_seconds(proxies), cpu_seconds([coach]), time.process_time()
    used = [(a - b) * 1e6 / streamed for a, b in zip(after, before, strict=True)]
    many = statistics.median(walls)
    return {"one_chat_s": round(one, 3), "many_chats_s": round(many, 3), "ratio": round(many / one, 2),
            "tokens_per_chat": streamed // n,
            "cpu_us_per_token_workers": round(used[0]), "cpu_us_per_token_nginx": round(used[1]),
            "cpu_us_per_token_coach": round(used[2]), "cpu_us_per_token_load": round(used[3]),
            "cpu_busy_share": round(sum(used) * streamed / 1e6 / (os.cpu_count() * last_wall), 2),
            "me_p99_ms_while_streaming": round(p99(latencies) * 1000, 1),
            "me_p50_ms_while_streaming": round(statistics.median(latencies) * 1000, 1),
            "me_requests_while_streaming": len(latencies),
            "me_p99_ms_while_starting": round(p99(starting) * 1000, 1) if starting else None,
            "me_requests_while_starting": len(starting),
            "me_p99_ms_once_all_stream": round(p99(streaming) * 1000, 1) if streaming else None,
            "me_requests_once_all_stream": len(streaming),
            "kb_per_stream": round((sampler.peak_sum - idle) * 1024 / n, 1),
            "peak_db_connections": sampler.peak_connections,
            "peak_rss_mb_each_worker": sorted(round(mb, 1) for mb in sampler.peak_each.values())}


async def throughput_phase(url: str, token: str, pids: list[int]) -> tuple[float, float]:
    async with client(40) as http:
        rate, cpu_ms = await me_per_second(http, url, token, pids)
    return round(rate), round(cpu_ms, 2)


# --- setting up --------------------------------------------------------------------------------

def prepare(folder: Path, coach_url: str, users: int) -> tuple[dict, dict, list[str]]:
    """Fresh database, migrations, `users` users; (app environment, DB settings, their tokens)."""
    db_env = devdb.create_test_database(DATABASE)
    secret = secrets.token_urlsafe(32)
    env = {**os.environ, **db_env, "JWT_SECRET": secret, "OPENAI_API_KEY": "bench-no-key",
           "OPENAI_BASE_URL": f"{coach_url}/v1"}
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=folder, env=env,
                   check=True, capture_output=True)
    conn = psycopg2.connect(host=db_env["DB_HOST"], port=db_env["DB_PORT"], dbname=db_env["DB_NAME"],
                            user=db_env["DB_USER"], password=db_env["DB_PASSWORD"])
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users (name, email) SELECT 'Bench', 'bench' || i || '@example.com' "
                    "FROM generate_series(1, %s) AS i RETURNING id", (users,))
        ids = [row[0] for row in cur.fetchall()]
        cur.execute("SHOW max_connections")
        db_env["max_connections"] = int(cur.fetchone()[0])
    conn.close()
    now = datetime.now(UTC)
    # As the app signs them: lesson 24 also wants a token id (jti) and the user's token version (ver).
    claims = {"iat": now, "exp": now + timedelta(minutes=60), "ver": 0}
    tokens = [jwt.encode({**claims, "sub": str(i), "jti": uuid.uuid4().hex}, secret, algorithm="HS256")
              for i in ids]
    return env, db_env, tokens


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}"


def table(r: dict, args) -> str:
    s = r["streams"]
    rows = [
        ("measure", "result", "goal"),
        ("1 SSE chat through nginx, wall (s)", f"{s['one_chat_s']:.2f}", ""),
        (f"{args.chats} SSE chats at once through nginx, wall (s)", f"{s['many_chats_s']:.2f}", ""),
        (f"{args.chats} at once / 1 alone", f"{s['ratio']:.2f}", "<= 1.5"),
        (f"GET /api/me p99 while {args.chats} chats stream (ms)", f"{s['me_p99_ms_while_streaming']:.0f}",
         "<= 50"),
        ("  its median (ms)", f"{s['me_p50_ms_while_streaming']:.0f}", ""),
        ("  p99 while they start, until each has a token (ms)",
         f"{s['me_p99_ms_while_starting'] or 0:.0f} ({s['me_requests_while_starting']} requests)", ""),
        ("  p99 once every chat has its first token (ms)",
         f"{s['me_p99_ms_once_all_stream'] or 0:.0f} ({s['me_requests_once_all_stream']} requests)", ""),
        ("GET /api/me per second: 2 API workers behind nginx", f"{r['me_rps_nginx_2_workers']:.0f}", ""),
        ("GET /api/me per second: 1 worker, no proxy", f"{r['me_rps_direct_1_worker']:.0f}", ""),
        ("CPU per GET /api/me, workers + nginx (ms)", f"{r['me_cpu_ms_nginx_2_workers']:.2f}", ""),
        ("CPU per GET /api/me, 1 worker direct (ms)", f"{r['me_cpu_ms_direct_1_worker']:.2f}", ""),
        ("CPU per streamed token, stream workers (µs)", f"{s['cpu_us_per_token_workers']}", ""),
        ("CPU per streamed token, nginx (µs)", f"{s['cpu_us_per_token_nginx']}", ""),
        ("CPU per streamed token, the coach / the load (µs)",
         f"{s['cpu_us_per_token_coach']} / {s['cpu_us_per_token_load']}", ""),
        (f"cores busy during {args.chats} chats, all of it / all cores", f"{s['cpu_busy_share']:.0%}", ""),
        ("peak RSS per stream worker (MB)", " / ".join(f"{mb:.0f}" for mb in r["peak_rss_mb_each_worker"]),
         ""),
        ("memory per streaming chat, stream workers (KB)", f"{s['kb_per_stream']:.0f}", ""),
        ("memory per open socket, stream workers (KB)", f"{r['sockets']['kb_per_socket_workers']:.0f}", ""),
        ("memory per open socket, nginx (KB)", f"{r['sockets']['kb_per_socket_nginx']:.0f}", ""),
        (f"database connections at most, during {args.chats} chats", str(s["peak_db_connections"]), ""),
        ("pool limit per worker / Postgres max_connections", f"{POOL_PER_WORKER} / {r['max_connections']}",
         ""),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    note = (f"coach: {args.token_delay * 1000:.0f} ms per token; {args.sockets} sockets; "
            f"median of {args.rounds} rounds; machine: {machine()}")
    failed = [f"  {count} x {what}" for what, count in FAILURES.most_common()]
    if failed:
        failed.insert(0, "failures (not in the numbers above):")
    return "\n".join([*lines, "", note, *failed])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="make bench-ship", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--token-delay", type=float, default=0.02, help="coach's seconds per token (0.02)")
    parser.add_argument("--chats", type=int, default=100, help="SSE chats at once (100)")
    parser.add_argument("--sockets", type=int, default=200, help="open sockets for the memory measure (200)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per measurement; the median counts (3)")
    parser.add_argument("--dir", type=Path, default=None, help="folder to bench (lesson 25's)")
    args = parser.parse_args(argv)
    folder = (args.dir or find("25").path).resolve()
    if proxy.binary() is None:
        raise SystemExit("nginx is not installed (apt-get install nginx): this bench runs the app behind it")

    coach_log = tempfile.TemporaryFile(mode="w+")
    coach_port = free_port()
    coach = subprocess.Popen([sys.executable, str(COACH), "--port", str(coach_port),
                              "--token-delay", str(args.token_delay)],
                             stdout=coach_log, stderr=subprocess.STDOUT)
    apps = []
    try:
        wait_port(coach_port, coach, "the offline coach", coach_log)
        users = args.sockets + 10 + (args.rounds + 1) * (args.chats + 1)
        env, db_env, tokens = prepare(folder, f"http://127.0.0.1:{coach_port}", users)
        result = {"max_connections": db_env["max_connections"]}
        # Each phase on fresh workers: memory one phase freed is not reused by the next.
        for phase in ("sockets", "streams"):
            api, streams = App(folder, env, workers=2), App(folder, env, workers=2)
            apps += [api, streams]
            nginx = proxy.Nginx(folder / "nginx.conf", free_port(), f"127.0.0.1:{api.port}",
                                f"127.0.0.1:{streams.port}").start()
            try:
                print(f"{phase} ...", flush=True)
                if phase == "sockets":
                    result["sockets"] = asyncio.run(
                        sockets_phase(nginx.url, streams, nginx, tokens, args.sockets))
                else:
                    result["streams"] = asyncio.run(streams_phase(
                        nginx.url, streams, nginx, coach.pid, db_env, tokens[args.sockets:], args.chats,
                        args.rounds))
                    print("requests per second ...", flush=True)
                    pids = [*api.worker_pids(), nginx.proc.pid, *children(nginx.proc.pid)]
                    result["me_rps_nginx_2_workers"], result["me_cpu_ms_nginx_2_workers"] = asyncio.run(
                        throughput_phase(nginx.url, tokens[0], pids))
            finally:
                nginx.stop()
                api.stop()
                streams.stop()
        single = App(folder, env, workers=1)
        apps.append(single)
        try:
            result["me_rps_direct_1_worker"], result["me_cpu_ms_direct_1_worker"] = asyncio.run(
                throughput_phase(single.url, tokens[0], single.worker_pids()))
        finally:
            single.stop()
        result["peak_rss_mb_each_worker"] = result["streams"].pop("peak_rss_mb_each_worker")
    except Exception:
        for app in apps:
            app.log.seek(0)
            print(f"--- end of a uvicorn log:\n{app.log.read()[-2000:]}", file=sys.stderr)
        raise
    finally:
        coach.terminate()
        coach.wait()
    print(table(result, args))
    out = ROOT / "build" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    data = json.loads(out.read_text()) if out.exists() else {}
    data["ship"] = {"machine": machine(), "token_delay_s": args.token_delay, "chats": args.chats,
                    "failures": dict(FAILURES),
                    "measured_at": datetime.now(UTC).isoformat(timespec="seconds"), **result}
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
