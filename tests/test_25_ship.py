"""Lesson 25: the app shipped: several workers behind nginx, health checks, request ids, a clean stop.

Lesson 24's tests run here unchanged (the import below: with them 21's and the 22's that 24
keeps, and the folder's own suite), but three this lesson changes, adapted here: the paths in
/docs (now with /healthz and /readyz), the log lines of two workers (now JSON) and the folder's
own suite (now with a test that asks /healthz or /readyz).
Then the lesson's own. Most run the production shape on this machine, as `make run LESSON=25`
does: uvicorn with two workers, and in front of them a real nginx with the lesson's nginx.conf
(shared/services/proxy.py fills it in and starts nginx). The Dockerfile and the compose file cannot run
here (no Docker engine): they are read and checked as files, and CI builds and runs them.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
import yaml
from fastapi.testclient import TestClient
from websockets.sync.client import connect

import test_24_protect
from helpers import IN_CI, bearer, children, free_port, tables_held, user_with_token, wait_for
from shared.services import proxy
from test_24_protect import *  # noqa: F403  (lesson 24's tests, and 21's and 22's it keeps: still valid here)
from test_24_protect import locked_in_one_process, twenty_wrong_passwords
from webclient import web

WORKERS = 2
GRACE = 10  # --timeout-graceful-shutdown of the workers here, in seconds
TOKEN_DELAY = 0.03  # seconds per token of the coach, for the tests that time tokens
QUESTION = "How do I answer 'tell me about yourself'?"
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
SCHEMA_BEHIND = "Database schema is not at the latest migration: run alembic upgrade head"
DB_DOWN = "Database unavailable, try again later"
SIGNUPS = 10  # lesson 24's SIGNUPS_PER_ADDRESS


class Workers:
    """One group of workers: uvicorn with WORKERS worker processes, its output in a file."""

    def __init__(self, lesson, log: Path):
        self.log = log
        self.port = free_port()
        with open(log, "a") as out:
            self.uvicorn = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", lesson.app, "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", str(WORKERS),
                 "--timeout-graceful-shutdown", str(GRACE)],
                # Quick signups, and lesson 24's budget of signups per address (the inherited
                # tests set a huge one in the environment). The workers trust X-Forwarded-For from
                # any address, as in compose (FORWARDED_ALLOW_IPS): uvicorn then takes the header's
                # first address, so only an nginx that sets it, not one that appends to the
                # client's, keeps a made-up address out.
                cwd=lesson.path, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "BCRYPT_ROUNDS": "4", "SIGNUPS_PER_ADDRESS": str(SIGNUPS),
                     "FORWARDED_ALLOW_IPS": "*"})

    def ready(self) -> bool:
        """WORKERS workers running, each past its startup (its "Application startup complete")."""
        assert self.uvicorn.poll() is None, self.log.read_text()[-3000:]
        started = {line["pid"] for line in json_lines(self.log.read_text())
                   if line["message"] == "Application startup complete."}
        workers = self.pids()
        return len(workers) == WORKERS and workers <= started

    def pids(self) -> set[int]:
        """The worker processes the uvicorn supervisor runs now (multiprocessing's spawn_main;
        its other child is multiprocessing's resource tracker)."""
        return {pid for pid in children(self.uvicorn.pid)
                if alive(pid) and b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()}

    def stop(self):
        self.uvicorn.terminate()
        try:
            self.uvicorn.wait(timeout=GRACE + 5)
        except subprocess.TimeoutExpired:
            self.uvicorn.kill()
            self.uvicorn.wait()


class Stack:
    """As `make run LESSON=25`: nginx in front of two groups of workers, the API's (.api) and
    those of the streamed answers and the chat sockets (.streams)."""

    def __init__(self, lesson, folder: Path):
        self.api = Workers(lesson, folder / "api.log")
        self.streams = Workers(lesson, folder / "streams.log")
        self.nginx = proxy.Nginx(lesson.path / "nginx.conf", free_port(), f"127.0.0.1:{self.api.port}",
                                 f"127.0.0.1:{self.streams.port}")

    def start(self) -> "Stack":
        wait_for(lambda: self.workers_ready(), f"{WORKERS} workers in each group started, each with its "
                 'JSON log line "Application startup complete." (uvicorn\'s own logger, through app/logs.py)',
                 seconds=60)  # four new interpreters import the app, beside another job's tests in CI
        self.nginx.start()
        self.url = self.nginx.url
        return self

    def workers_ready(self) -> bool:
        return self.api.ready() and self.streams.ready()

    def log_text(self) -> str:
        """What both groups have written so far."""
        return self.api.log.read_text() + self.streams.log.read_text()

    def log_lines(self) -> list[dict]:
        """The workers' log lines (the supervisors' own are plain text)."""
        return json_lines(self.log_text())

    def lines_of(self, request_id: str) -> list[dict]:
        return [line for line in self.log_lines() if line.get("request_id") == request_id]

    def stop(self):
        self.nginx.stop()
        for group in (self.api, self.streams):
            group.uvicorn.terminate()  # both stop at once: each may wait GRACE for its answers
        self.api.stop()
        self.streams.stop()


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its parent to collect it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.fixture(scope="module")
def stack(lesson, app, coach_server, tmp_path_factory):
    """The lesson's app in two groups of WORKERS uvicorn workers behind nginx, started once for
    the module."""
    if proxy.binary() is None:
        message = "nginx is not installed (apt-get install nginx): the proxy tests need it"
        if IN_CI:
            pytest.fail(message + ", and must run in CI")
        pytest.skip(message)
    if not (lesson.path / "nginx.conf").is_file():
        pytest.fail(f"no nginx.conf in {lesson.path.name}/")
    running = Stack(lesson, tmp_path_factory.mktemp("stack"))
    try:
        yield running.start()
    finally:
        running.stop()


def new_id() -> str:
    return uuid.uuid4().hex


def open_stream(url: str, user: dict, request_id: str | None = None):
    headers = bearer(user["token"]) | ({"X-Request-ID": request_id} if request_id else {})
    return web.stream("POST", f"{url}/api/chat/stream", json={"message": QUESTION},
                      headers=headers, timeout=30)


def timed_events(response):
    """Yields (seconds since the request, event name, data) as each event arrives."""
    start, name = time.monotonic(), "message"
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield time.monotonic() - start, name, json.loads(line.removeprefix("data: "))
        elif line == "":
            name = "message"


# --- lesson 24's tests whose contract this lesson changes, adapted ------------------------------

def json_lines(text: str) -> list[dict]:
    """The lines of a server's output that are JSON objects (the workers' log lines)."""
    found = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


def test_five_failed_logins_are_counted_across_two_workers(app, two_workers, db):
    """Five failed logins per account in 15 minutes, counted where every worker sees them: the rest get 429.
    Twenty wrong passwords for one account, sent at once to one uvicorn with two workers, get
    five 401s in total, not five per worker. (Lesson 24's test, reading the log as JSON lines.)"""
    locked_in_one_process(app)
    assert twenty_wrong_passwords(two_workers, db) == {401: 5, 429: 15}
    pids = {line.get("pid") for line in json_lines(two_workers.log())
            if str(line.get("logger")).startswith("app.")
            and re.match("login failed|rate limit", str(line.get("message")))}
    assert pids, ('no JSON log line {"pid": ..., "logger": "app.<name>", "message": "login failed ..." or '
                  '"rate limit ..."}: check the log format')
    assert len(pids) == 2, f"one worker answered them all: {pids}"


def test_the_docs_list_every_endpoint_grouped_by_router_tags(app):
    """/docs lists the paths of lesson 24 and /healthz, /readyz (tag health)."""
    paths = app.openapi()["paths"]
    tags = {(path, method): op.get("tags") for path, ops in paths.items() for method, op in ops.items()}
    assert set(paths) == {"/api/time", "/api/test-db", "/api/users", "/api/me", "/api/login", "/api/logout",
                          "/api/logout-all", "/api/chat", "/api/chat/stream", "/api/chat/history",
                          "/healthz", "/readyz"}
    assert tags[("/healthz", "get")] == tags[("/readyz", "get")] == ["health"]
    assert all(tags.values()), tags


def test_the_folders_own_tests_pass(lesson, db_env):
    """The folder's own tests (tests/, from lesson 23) pass, grown with tests of this lesson.
    They run as you run them, `pytest` in the folder, on a test database of their own; one of
    them at least asks /healthz or /readyz. (Lesson 24's test, with that added.)"""
    suite = " ".join(path.read_text() for path in (lesson.path / "tests").glob("test_*.py"))
    assert "/healthz" in suite or "/readyz" in suite, "no test in tests/ asks /healthz or /readyz"
    test_24_protect.test_the_folders_own_tests_pass(lesson, db_env)


# --- health ------------------------------------------------------------------------------------

def test_healthz_answers_200_status_ok_through_the_proxy(stack):
    """GET /healthz answers 200 {"status": "ok"} through nginx."""
    r = web.get(f"{stack.url}/healthz", timeout=5)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok"}


def test_readyz_answers_200_when_the_database_answers_and_is_migrated(stack):
    """GET /readyz answers 200 when the database answers and its schema is at Alembic's head."""
    r = web.get(f"{stack.url}/readyz", timeout=5)
    assert r.status_code == 200, r.text


def test_readyz_logs_its_access_line_only(stack):
    """GET /readyz logs nothing but its access line: a probe asks it every few seconds."""
    given = new_id()
    r = web.get(f"{stack.url}/readyz", headers={"X-Request-ID": given}, timeout=5)
    assert r.status_code == 200, r.text
    # The access line comes after the answer, so once it is there every line of the request is.
    wait_for(lambda: any(line["logger"] == "uvicorn.access" for line in stack.lines_of(given)),
             "the access line of /readyz")
    lines = stack.lines_of(given)
    assert [line["logger"] for line in lines] == ["uvicorn.access"], [line["message"] for line in lines]


def test_readyz_answers_503_while_the_schema_is_behind_the_migrations(client, db):
    """GET /readyz answers 503 with a detail while the schema is not at the latest migration."""
    with db.cursor() as cur:
        cur.execute("SELECT version_num FROM alembic_version")
        head = cur.fetchone()[0]
        cur.execute("UPDATE alembic_version SET version_num = '0001'")
        try:
            r = client.get("/readyz")
        finally:
            cur.execute("UPDATE alembic_version SET version_num = %s", (head,))
    assert r.status_code == 503, r.text
    assert r.json() == {"detail": SCHEMA_BEHIND}
    assert client.get("/readyz").status_code == 200


def test_readyz_answers_503_within_seconds_while_the_database_keeps_it_waiting(client, db_env):
    """GET /readyz answers 503 within seconds while the database keeps it waiting (a migration's lock).
    Hint: a probe that hangs tells nobody anything: let the database give up on the read
    (SET LOCAL statement_timeout), and stop waiting for a thread that does not come back
    (anyio.fail_after around anyio.to_thread.run_sync(..., abandon_on_cancel=True))."""
    with tables_held(db_env, "alembic_version") as held:
        letting_go = threading.Timer(15, held.release)  # the old way answers only once it ends
        letting_go.start()
        started = time.monotonic()
        try:
            r = client.get("/readyz")
        finally:
            letting_go.cancel()
        took = time.monotonic() - started
    why = ("give up on the read within a few seconds" if took >= 1 else
           "it answered without waiting: does it read alembic_version, the table the test holds?")
    assert r.status_code == 503, (f"{r.status_code} {r.text} after {took:.1f} s (the test let go of the"
                                  f" lock after 15 s): {why}")
    assert r.json() == {"detail": DB_DOWN}
    assert client.get("/readyz").status_code == 200


class Forwarder:
    """A TCP forwarder from a local port to Postgres that a test can cut and restore, as if the
    database stopped and came back, without stopping the database the other tests use."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.sockets: list[socket.socket] = []
        self.listener = None

    def start(self):
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def stop(self):
        """New connections are refused, and every open one is cut. Stopped already: nothing to do
        (a test that failed between a stop and a start stops it again on its way out)."""
        if self.listener is None:
            return
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in _accept
        self.listener.close()
        self.listener = None
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.sockets.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_readyz_turns_503_when_the_database_stops_and_200_when_it_is_back(fresh_app, db_env):
    """GET /readyz turns 503 with a detail when the database stops, and 200 again when it is back."""
    from fastapi.testclient import TestClient

    forwarder = Forwarder(int(db_env["DB_PORT"]))
    forwarder.start()
    try:
        with TestClient(fresh_app(DB_PORT=str(forwarder.port))) as client:
            assert client.get("/readyz").status_code == 200
            forwarder.stop()
            r = client.get("/readyz")
            assert r.status_code == 503, r.text
            assert r.json() == {"detail": DB_DOWN}
            assert client.get("/healthz").status_code == 200  # alive all the same: no restart
            forwarder.start()
            r = client.get("/readyz")
            assert r.status_code == 200, r.text
    finally:
        forwarder.stop()


# --- request ids and logs ----------------------------------------------------------------------

def test_the_app_echoes_an_x_request_id_or_makes_one(client):
    """Every answer carries X-Request-ID: the one the request came with, or a new one.
    A request id is 32 hex digits or a UUID in its dashed form; anything else is replaced by a new
    one. Hint: asgi-correlation-id's default validator takes whatever uuid.UUID() reads (any number
    of dashes, braces, urn:uuid:): give it one of your own."""
    given = new_id()
    assert client.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given
    made = client.get("/healthz").headers["X-Request-ID"]
    assert REQUEST_ID.fullmatch(made), made
    assert client.get("/healthz").headers["X-Request-ID"] != made  # a new one for each request
    dashed = str(uuid.uuid4())
    assert client.get("/healthz", headers={"X-Request-ID": dashed}).headers["X-Request-ID"] == dashed
    # uuid.UUID() reads the last two: 100,000 dashes and an id, and an id in braces after urn:uuid:
    sent = {"not an id\r": "a text that is no id", "-" * 100_000 + given: "100,000 dashes and an id",
            "{urn:uuid:" + given + "}": "an id in braces after urn:uuid:"}
    for odd, what in sent.items():
        replaced = client.get("/api/me", headers={"X-Request-ID": odd}).headers["X-Request-ID"]
        assert REQUEST_ID.fullmatch(replaced), (
            f"sent {what}, got back an X-Request-ID of {len(replaced)} characters starting {replaced[:40]!r}:"
            " expected a new id, 32 hex digits")


def test_the_request_id_wraps_cors_and_the_body_limit_and_pages_may_read_it(fresh_app):
    """CORS lets pages read X-Request-ID, and the app's own 413 and a refused preflight carry one.
    The header is in Access-Control-Expose-Headers; the CorrelationIdMiddleware, added after
    CORS and the body limit, is outside them, so their own answers get an id too."""
    client = TestClient(fresh_app(CORS_ORIGINS="http://a.example:8001"))
    r = client.get("/healthz", headers={"Origin": "http://a.example:8001"})
    exposed = [name.strip().lower() for name in r.headers.get("Access-Control-Expose-Headers", "").split(",")]
    assert "x-request-id" in exposed, r.headers
    r = client.post("/api/users", content=b"x" * (65 * 1024), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    sent_back = r.headers.get("X-Request-ID", "")
    assert REQUEST_ID.fullmatch(sent_back), (
        f"X-Request-ID {sent_back!r} on the body limit's own 413: no id from the request id's middleware "
        "(is it added after the body limit?)")
    preflight = {"Origin": "http://b.example", "Access-Control-Request-Method": "GET"}
    r = client.options("/api/me", headers=preflight)
    assert r.status_code == 400, r.text  # the origin is not allowed: CORS answers itself
    sent_back = r.headers.get("X-Request-ID", "")
    assert REQUEST_ID.fullmatch(sent_back), (
        f"X-Request-ID {sent_back!r} on CORS's own 400: no id from the request id's middleware (is it added "
        "after CORS?)")


def test_the_request_id_goes_through_the_proxy_both_ways(stack):
    """Through nginx the client's X-Request-ID comes back, and a request without one gets one."""
    given = new_id()
    r = web.get(f"{stack.url}/api/time", headers={"X-Request-ID": given}, timeout=5)
    assert r.headers["X-Request-ID"] == given
    made = web.get(f"{stack.url}/api/time", timeout=5).headers["X-Request-ID"]
    assert REQUEST_ID.fullmatch(made), made
    assert stack.lines_of(made), "the id nginx made is not in the app's log"


def test_every_log_line_of_a_request_is_json_with_its_request_id(stack):
    """The workers log JSON lines, and every line of a request carries its request_id.
    Each line is one JSON object with time, level, logger, pid and message; the lines written
    while a request is served, uvicorn's access line and the app's own alike, carry its request_id."""
    given = new_id()
    r = web.get(f"{stack.url}/api/me", headers={**bearer("forged"), "X-Request-ID": given}, timeout=5)
    assert r.status_code == 401, r.text
    wait_for(lambda: len(stack.lines_of(given)) >= 2, "the app's line and the access line")
    lines = stack.lines_of(given)
    messages = " | ".join(line["message"] for line in lines)
    assert any("token refused" in line["message"] and line["level"] == "WARNING" for line in lines), messages
    assert any("GET /api/me" in line["message"] and "401" in line["message"] for line in lines), messages
    assert all({"time", "level", "logger", "pid", "message"} <= set(line) for line in lines), lines
    assert "forged" not in stack.log_text()  # no token in the log


# --- streaming through the proxy -------------------------------------------------------------

def test_sse_tokens_arrive_one_by_one_through_the_proxy(stack, coach, user):
    """Through nginx the SSE tokens arrive one by one as the coach writes them, not in one burst."""
    coach.mode("ok", token_delay=TOKEN_DELAY)
    with open_stream(stack.url, user) as r:
        assert r.status_code == 200, r.read()
        events = list(timed_events(r))
    tokens = [at for at, name, _ in events if name == "message"]
    assert events[-1][1:] == ("done", {}), events[-3:]
    assert len(tokens) >= 20, events
    spread = tokens[-1] - tokens[0]
    # Written over (n - 1) * TOKEN_DELAY seconds: a proxy that buffers hands them over at once.
    assert spread >= 0.5 * (len(tokens) - 1) * TOKEN_DELAY, f"{len(tokens)} tokens within {spread:.3f} s"
    distinct = len({round(at, 2) for at in tokens})
    assert distinct >= len(tokens) // 2, f"only {distinct} arrival times for {len(tokens)} tokens"


def test_the_chat_socket_works_through_the_proxy(stack, coach, user):
    """The chat socket works through nginx: ready, token frames, then done."""
    with connect(stack.url.replace("http", "ws") + "/ws/chat", open_timeout=10) as ws:
        ws.send(json.dumps({"token": user["token"]}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "ready"}
        ws.send(json.dumps({"message": QUESTION}))
        frames = []
        while (frame := json.loads(ws.recv(timeout=10)))["type"] == "token":
            frames.append(frame["content"])
    assert frame == {"type": "done"}, frame
    assert "".join(frames).startswith("You wrote:")


# --- streams on workers of their own ----------------------------------------------------------

def sockets_accepted(workers) -> int:
    """How many chat sockets this group of workers has accepted (uvicorn's own log line)."""
    return sum("/ws/chat" in line["message"] and "accepted" in line["message"]
               for line in json_lines(workers.log.read_text()))


def test_streams_and_sockets_go_to_workers_of_their_own_and_the_rest_to_the_others(stack, coach, user):
    """Streams and sockets go to workers of their own, every other request to the API's workers.
    nginx sends /api/chat/stream and /ws/ to STREAMS_ADDRESS, the rest to APP_ADDRESS."""
    assert served_by(stack, f"{stack.url}/api/me", user) in stack.api.pids(), "GET /api/me: not an API worker"
    assert served_by(stack, f"{stack.url}/healthz") in stack.api.pids(), "GET /healthz: not an API worker"
    assert stream_served_by(stack, user) in stack.streams.pids(), "the stream: not a stream worker"
    before = sockets_accepted(stack.api), sockets_accepted(stack.streams)
    with connect(stack.url.replace("http", "ws") + "/ws/chat", open_timeout=10) as ws:
        ws.send(json.dumps({"token": user["token"]}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "ready"}
    wait_for(lambda: sockets_accepted(stack.streams) > before[1], "the stream workers accepting the socket")
    assert sockets_accepted(stack.api) == before[0], "an API worker accepted the socket"


def test_with_the_stream_workers_frozen_the_api_still_answers(stack, user):
    """With every stream worker frozen, the API still answers through nginx.
    The test stops the stream workers dead (SIGSTOP: as a worker stuck relaying tokens would
    be) and asks GET /api/me and /readyz; then lets them go on (SIGCONT)."""
    frozen = stack.streams.pids()
    try:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        me = web.get(f"{stack.url}/api/me", headers=bearer(user["token"]), timeout=10)
        assert me.status_code == 200, me.text
        assert me.json()["id"] == user["id"]
        ready = web.get(f"{stack.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)


def test_a_socket_gets_the_proxys_headers_like_any_request(stack, user):
    """Through nginx a socket gets the proxy's X-Forwarded-For and X-Request-ID like any request.
    The socket is opened with a made-up X-Forwarded-For and an id: its worker logs the id and
    the address nginx saw, not the made-up one. A /ws/ location with proxy_set_header lines of
    its own gets none of the server's: the client's header would reach the app as sent."""
    given, made_up = new_id(), "203.0.113.9"
    with connect(stack.url.replace("http", "ws") + "/ws/chat", open_timeout=10,
                 additional_headers={"X-Request-ID": given, "X-Forwarded-For": made_up}) as ws:
        ws.send(json.dumps({"token": user["token"]}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "ready"}
    wait_for(lambda: stack.lines_of(given), f"a log line of the socket with request_id {given}")
    accepted = [line["message"] for line in stack.lines_of(given) if "/ws/chat" in line["message"]]
    assert accepted, [line["message"] for line in stack.lines_of(given)]
    assert not [message for message in accepted if made_up in message], accepted


def served_by(stack, url: str, user: dict | None = None) -> int:
    """GET url (200 expected; as `user` when given); the pid of the worker that answered, from its
    log line."""
    request_id = new_id()
    headers = {"X-Request-ID": request_id} | (bearer(user["token"]) if user else {})
    r = web.get(url, headers=headers, timeout=5)
    assert r.status_code == 200, r.text
    wait_for(lambda: stack.lines_of(request_id), "the request's log line")
    return stack.lines_of(request_id)[0]["pid"]


def stream_served_by(stack, user) -> int:
    """Opens a streamed answer for `user` and reads its first event; the pid of the worker."""
    request_id = new_id()
    with open_stream(stack.url, user, request_id) as r:
        assert r.status_code == 200, r.read()
        next(timed_events(r))
    wait_for(lambda: stack.lines_of(request_id), "the stream's log line")
    return stack.lines_of(request_id)[0]["pid"]


def test_a_sigterm_mid_stream_lets_the_answer_finish_while_new_requests_go_to_another_worker(
        stack, coach, user, db):
    """A SIGTERM mid-stream lets the answer finish while new requests go to another worker.
    The stream worker told to stop takes no new request, ends its stream with done, then exits
    (uvicorn's --timeout-graceful-shutdown bounds the wait); new streams go to the other stream
    worker meanwhile, and uvicorn starts another in its place."""
    coach.mode("ok", token_delay=TOKEN_DELAY)
    request_id = new_id()
    with open_stream(stack.url, user, request_id) as r:
        assert r.status_code == 200, r.read()
        events = timed_events(r)
        received = [next(events)]
        # The access line is written when the answer starts: it names the worker's pid.
        wait_for(lambda: stack.lines_of(request_id), "the stream's log line")
        worker = stack.lines_of(request_id)[0]["pid"]
        assert worker in stack.streams.pids(), "the stream was not served by a stream worker"
        os.kill(worker, signal.SIGTERM)
        # uvicorn looks at its stop flag ten times a second: from this line on it takes no more.
        wait_for(lambda: any(line["pid"] == worker and line["message"] == "Shutting down"
                             for line in stack.log_lines()), "the worker starting to shut down")
        others = {stream_served_by(stack, user_with_token(db)) for _ in range(3)}
        assert alive(worker), "the worker stopped before its stream was over"
        received += list(events)
    assert worker not in others, "a new request went to the worker that is shutting down"
    assert received[-1][1:] == ("done", {}), received[-3:]
    assert len(received) > 20
    wait_for(lambda: not alive(worker), "the stopped worker exiting after its stream", seconds=GRACE)
    # uvicorn's supervisor replaces it: the stack serves on with WORKERS workers in each group.
    wait_for(lambda: stack.workers_ready(), "a new worker in its place", seconds=30)


# --- limits across the workers ----------------------------------------------------------------

def signup_from(url: str, address: str, count: int, forwarded_for: bool = False) -> list:
    """COUNT signups at once to URL from the client address ADDRESS (127.0.0.x: all of them are
    this machine), as (response, request id); with forwarded_for, each claims another
    X-Forwarded-For."""
    transport = httpx2.HTTPTransport(local_address=address, limits=httpx2.Limits(max_connections=count))

    def one(client, i):
        headers = {"X-Request-ID": new_id()}
        if forwarded_for:
            headers["X-Forwarded-For"] = f"203.0.113.{i + 1}"  # made up, a new one each time
        body = {"name": "Ada", "email": f"{new_id()[:12]}@example.com", "password": "a-long-password"}
        return client.post("/api/users", json=body, headers=headers), headers["X-Request-ID"]

    with httpx2.Client(transport=transport, base_url=url, timeout=30) as client:
        with ThreadPoolExecutor(count) as pool:
            return list(pool.map(lambda i: one(client, i), range(count)))



def test_a_limit_holds_across_the_workers_and_counts_the_client_not_the_proxy(stack):
    """Through nginx, one client address gets 10 signups in all, whichever worker answers each.
    Three client addresses send 12 signups each at once (36 at once: more than nginx keeps
    connections open to the workers, so both workers take some): each address gets ten 201s
    and two 429s with Retry-After, even though each signup claims a made-up X-Forwarded-For;
    the answers came from both workers; a fourth address still signs up (the app sees the
    client's address, which nginx passes on, not nginx's own). The workers trust the header from
    any address, as in compose: nginx must set it to the address it saw ($remote_addr), since
    appending to the client's ($proxy_add_x_forwarded_for) lets its first address through."""
    addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    with ThreadPoolExecutor(len(addresses)) as pool:
        batches = list(pool.map(lambda a: signup_from(stack.url, a, SIGNUPS + 2, forwarded_for=True),
                                addresses))
    for address, answers in zip(addresses, batches, strict=True):
        statuses = sorted(r.status_code for r, _ in answers)
        assert statuses == [201] * SIGNUPS + [429] * 2, (address, [r.text for r, _ in answers])
        assert all(int(r.headers["Retry-After"]) > 0 for r, _ in answers if r.status_code == 429)
    workers = set()
    for _, request_id in (answer for answers in batches for answer in answers):
        wait_for(lambda rid=request_id: stack.lines_of(rid), "each signup's log line")
        workers.add(stack.lines_of(request_id)[0]["pid"])
    assert len(workers) == WORKERS, "all the signups went to one worker"
    [(other, _)] = signup_from(stack.url, "127.0.0.5", 1)
    assert other.status_code == 201, other.text


# --- nginx's own answers -----------------------------------------------------------------------

def assert_the_apps_headers(r) -> None:
    """The headers every answer of the app carries (lesson 24's and the request id), on an answer
    nginx made itself."""
    sent_back = r.headers.get("X-Request-ID", "")
    assert REQUEST_ID.fullmatch(sent_back), f"X-Request-ID {sent_back!r}: not an id nginx made ($request_id)"
    assert r.headers.get("X-Content-Type-Options") == "nosniff", r.headers
    assert r.headers.get("Referrer-Policy") == "no-referrer", r.headers
    assert r.headers.get("Content-Security-Policy") == "default-src 'none'; frame-ancestors 'none'", r.headers


def test_the_proxy_refuses_a_large_body_with_413_and_a_detail(stack):
    """nginx refuses a body over 64 KiB with 413, the app's detail and headers, before the app reads it.
    The request carries a malformed X-Request-ID: the answer's is one nginx made."""
    r = web.post(f"{stack.url}/api/users", content=b"x" * (65 * 1024), timeout=5,
                 headers={"Content-Type": "application/json", "X-Request-ID": "not-an-id" + "-" * 40})
    assert r.status_code == 413, r.text
    assert r.json() == {"detail": "The request body may have at most 65536 bytes"}
    assert_the_apps_headers(r)


def test_the_proxy_answers_502_with_a_detail_when_no_worker_answers(lesson, closed_port):
    """With no worker answering, nginx answers 502 {"detail": "The app is not answering, try again later"}."""
    if proxy.binary() is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    closed = f"127.0.0.1:{closed_port}"
    nginx = proxy.Nginx(lesson.path / "nginx.conf", free_port(), closed, closed).start()
    try:
        r = web.get(f"{nginx.url}/api/time", timeout=5)
    finally:
        nginx.stop()
    assert r.status_code == 502, r.text
    assert r.json() == {"detail": "The app is not answering, try again later"}
    assert_the_apps_headers(r)


def nginx_settings(lesson) -> dict[str, list[str]]:
    """Each directive of nginx.conf with the values it is given: {"proxy_read_timeout": ["60s", "1h"]}."""
    found = {}
    for line in (lesson.path / "nginx.conf").read_text().splitlines():
        words = line.split("#")[0].strip().rstrip(";").split()
        if len(words) >= 2:
            found.setdefault(words[0], []).append(" ".join(words[1:]))
    return found


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[unit]


def test_the_proxy_waits_longer_than_openai_timeout(lesson, app):
    """Every proxy_read_timeout in nginx.conf is longer than OPENAI_TIMEOUT's default, 30 s.
    So a slow LLM gets the app's own 504 with its detail, not nginx's."""
    from app.config import Settings

    default = Settings.model_fields["OPENAI_TIMEOUT"].default
    timeouts = nginx_settings(lesson).get("proxy_read_timeout", [])
    assert timeouts and all(seconds(t) > default for t in timeouts), timeouts


# --- the production shape as files: Dockerfile, .dockerignore, compose, CI --------------------

def dockerfile(lesson) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (lesson.path / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split()[0].upper(), line.partition(" ")[2].strip()) for line in lines]


def final_stage(instructions):
    starts = [i for i, (name, _) in enumerate(instructions) if name == "FROM"]
    return instructions[starts[-1]:]


def test_the_dockerfile_builds_in_stages_on_a_slim_image(lesson):
    """The Dockerfile builds in two stages or more, each FROM a slim Python image.
    The final stage copies what the build stage made (COPY --from=)."""
    instructions = dockerfile(lesson)
    froms = [args for name, args in instructions if name == "FROM"]
    assert len(froms) >= 2, froms
    assert all("slim" in args for args in froms), froms
    assert any(name == "COPY" and "--from=" in args for name, args in final_stage(instructions))


def test_the_image_runs_as_a_user_that_is_not_root_and_checks_its_health(lesson):
    """The image runs as a user that is not root, checks /healthz and stops gracefully.
    Its final stage sets USER (not root or 0), a HEALTHCHECK that asks /healthz without curl or
    wget (the slim image has neither: python's urllib will do), and a CMD in JSON form that runs
    uvicorn app.main:app on --host 0.0.0.0 (else nothing outside the container reaches it) with
    --timeout-graceful-shutdown."""
    stage = final_stage(dockerfile(lesson))
    users = [args for name, args in stage if name == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    checks = [args for name, args in stage if name == "HEALTHCHECK"]
    assert checks and "/healthz" in checks[-1], checks
    assert not re.search(r"\b(curl|wget)\b", checks[-1]), f"the slim image has no curl or wget: {checks[-1]}"
    command = json.loads(next(args for name, args in reversed(stage) if name == "CMD"))
    assert "uvicorn" in command[:3] and "app.main:app" in command, command
    assert "--host" in command and command[command.index("--host") + 1] == "0.0.0.0", command
    assert "--timeout-graceful-shutdown" in command, command


def test_the_image_holds_no_dev_dependencies_and_no_secrets(lesson):
    """The image installs requirements.txt only, and .dockerignore keeps secrets and caches out.
    No pytest and no dev requirements in the Dockerfile's instructions (comments may name them);
    .dockerignore lists .env, .venv, tests and __pycache__."""
    text = " ".join(f"{name} {args}" for name, args in dockerfile(lesson))
    assert "requirements.txt" in text and "requirements-dev" not in text and "pytest" not in text
    # A pattern per line; a line that starts with # is a comment.
    lines = [line.strip() for line in (lesson.path / ".dockerignore").read_text().splitlines()]
    ignored = [line for line in lines if line and not line.startswith("#")]
    assert {".env", ".venv", "tests", "__pycache__"} <= {entry.strip("/*") for entry in ignored}, ignored


def compose(lesson) -> dict:
    return yaml.safe_load((lesson.path / "docker-compose.yml").read_text())


def test_compose_runs_app_proxy_db_and_a_one_shot_migrate(lesson):
    """docker-compose.yml has the services app, proxy, db and migrate.
    migrate runs alembic upgrade head once, after db is healthy; app waits for it (condition
    service_completed_successfully) and for a healthy db (service_healthy); proxy waits for a
    healthy app."""
    services = compose(lesson)["services"]
    assert {"app", "proxy", "db", "migrate"} <= set(services), list(services)
    migrate = services["migrate"]
    command = migrate["command"] if isinstance(migrate["command"], str) else " ".join(migrate["command"])
    assert "alembic upgrade head" in command
    assert services["app"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["app"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["proxy"]["depends_on"]["app"]["condition"] == "service_healthy"


def test_compose_keeps_the_data_in_a_named_volume_and_the_api_behind_the_proxy(lesson):
    """The database keeps its data in a named volume, and only the proxy publishes the API (8000).
    app, db and migrate publish no port."""
    spec = compose(lesson)
    services = spec["services"]
    volume = services["db"]["volumes"][0].split(":")[0]
    assert volume in spec["volumes"], services["db"]["volumes"]
    assert [name for name in ("app", "db", "migrate") if services[name].get("ports")] == []
    assert any("8000" in str(port) for port in services["proxy"]["ports"])


def test_compose_runs_several_workers_with_settings_from_the_environment(lesson):
    """The app service runs two workers or more, with its settings from the environment.
    WEB_CONCURRENCY is 2 or more, DB_HOST is db and DB_PORT 5432 (for app and migrate: the
    folder's .env says 5433, the dev database's port) and FORWARDED_ALLOW_IPS is set (the proxy
    is not at 127.0.0.1 in compose; under environment:); stop_grace_period is
    longer than the Dockerfile's --timeout-graceful-shutdown; the proxy mounts nginx.conf into
    /etc/nginx/templates/ with APP_ADDRESS app:8000."""
    services = compose(lesson)["services"]
    app = services["app"]
    environment = app["environment"]
    assert int(environment["WEB_CONCURRENCY"]) >= 2, environment
    for name in ("app", "migrate"):
        found = services[name].get("environment") or {}
        assert found.get("DB_HOST") == "db" and str(found.get("DB_PORT")) == "5432", (name, found)
    assert environment.get("FORWARDED_ALLOW_IPS"), f"the app trusts no proxy's X-Forwarded-For: {environment}"
    command = json.loads(next(args for name, args in reversed(dockerfile(lesson)) if name == "CMD"))
    grace = int(command[command.index("--timeout-graceful-shutdown") + 1])
    assert seconds(app["stop_grace_period"]) > grace, app.get("stop_grace_period")
    mounts = " ".join(services["proxy"]["volumes"])
    # The image fills in only the files of templates/ whose names end in .template.
    assert re.search(r"nginx\.conf:/etc/nginx/templates/\S+\.template\b", mounts), mounts
    assert services["proxy"]["environment"]["APP_ADDRESS"] == "app:8000"


def test_compose_runs_the_streams_on_a_service_of_their_own(lesson):
    """compose runs the streams and sockets on a service of their own, streams, set up as app is.
    The same image, settings, waits and stop_grace_period as app, and no port; the proxy waits
    for it to be healthy too, with STREAMS_ADDRESS streams:8000."""
    services = compose(lesson)["services"]
    assert "streams" in services, list(services)
    waits = services["proxy"].get("depends_on") or {}
    assert "streams" in waits, f"the proxy does not wait for streams: depends_on {waits}"
    same = ("build", "image", "env_file", "environment", "depends_on", "stop_grace_period", "command")
    assert {k: services["streams"].get(k) for k in same} == {k: services["app"].get(k) for k in same}
    assert not services["streams"].get("ports"), services["streams"]["ports"]
    assert services["proxy"]["depends_on"]["streams"]["condition"] == "service_healthy"
    assert services["proxy"]["environment"]["STREAMS_ADDRESS"] == "streams:8000"
