"""Plain helpers for the lessons' tests (fixtures live in conftest.py; import these, never conftest).

Helpers and what they do:
  ROOT, IN_CI        the repo folder; True when CI=true (missing Chromium then fails, not skips)
  create_user        POST /api/users, assert the status (201 from lesson 06 on), return the new id
  get_user           GET /api/users/{id}, assert 200, return the JSON
  assert_not_found   the answer is 404 {"detail": "User not found"} (lesson 07 on)
  broken_fields      the fields a 422 answer names (["body", "name"] -> "name"), after asserting 422
  insert_user        a user straight into the table (lessons 15 on: name, email, password_hash): no bcrypt
  JWT_SECRET         the secret conftest gives every lesson's app (16 on refuse to start without one)
  token_for          a token as lessons 16 on issue it (HS256, sub, iat, exp; jti, ver from 24), for a user id
  bearer             the Authorization header that carries a token
  user_with_token    insert_user + token_for: {"id", "token"} for a fresh user, for tests past login
  wait_until_the_coach_is_asked   until a request running in a thread has reached the coach (18 on)
  PAUSE_SECONDS      the longest the coach's mode pause holds an answer mid-way (20 on)
  BROWSER_WAIT_MS    how long a page action or wait may take before it fails
  ReusedTab          one browser tab for a module, reset after each test (the `page` fixture's)
  log_in_page        a page with a user's token in localStorage, opened at one of the lesson's pages
  chat_history       GET /api/chat/history of a live API as (role, content) pairs (19 on)
  insert_messages    messages "message 0", "message 1", ... straight into the table; their ids (19 on)
  history_page       GET /api/chat/history?QUERY through a client, as a user: one page (19 on)
  WATCH_ANSWER       page script: window.shown records each text the newest answer shows (20 on)
  wait_for           polls a condition until it holds, or fails the test naming what never happened
  answer_times, answer_times_while_a_chat_waits_for_the_database
                     time a cheap request while the app waits (for the coach, for the database):
                     its event loop must stay free (20 on)
  text_when          an element's text once it shows the outcome a test waits for (not a "Sending…")
  alembic            `alembic ARGS` for a lesson folder, run in this process (fast); returns its output
  git_ignores        whether git ignores a lesson folder's file (also under workspace/ or outside the repo)
  keys_in, strings_in   every key / every string anywhere in a JSON value (leak checks)
  connect            a psycopg2 connection (autocommit) to the test database, from db_env (`db` is one)
  stored_hash        the password_hash column of one user, read with the `db` connection
  cut_off_the_apps_connections   what a database restart does to the app's pooled connections
  serve_folder       a folder over HTTP from a thread of this process, as `python -m http.server` serves it
  pages_and_api      a folder of pages on one free port and the lesson's API on another, allowing
                     the origins you name (the `pages` fixture is the usual case of it)
  app_socket         a TestClient's WebSocket to the app; a refused one says why it most often is (21 on)
  free_port, wait_for_port, Servers   start processes on free ports (live_api, pages use them)
  fork_uvicorn       `python -m uvicorn ...` forked from the test process, as if started afresh
                     (Servers.start and exit_or_listen do it for one-worker uvicorns: no new
                     interpreter's imports)
  traceback_end      the exception a traceback in a text ends with, and its frames (a server's log)
  statement_of       the whole statement a line of a file is part of, on one line (a failure's)
  exit_or_listen     runs a server until it exits (its code and output) or listens (None): a test
                     that wants an app to refuse to start fails as soon as the app starts instead

A helper that says something only one lesson teaches (lesson 11's `signup(client, password)`)
stays in that lesson's test file, built on these.
"""

import ast
import asyncio
import contextlib
import functools
import gc
import http.server
import io
import logging
import logging.config
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from starlette.websockets import WebSocketDisconnect

from shared.ground.paths import ROOT, free_port, listens_on, port_free  # noqa: F401 (ROOT: for the tests)
from webclient import web

IN_CI = os.environ.get("CI", "").lower() == "true"


# --- the users API (lessons 04 on) ---------------------------------------------------------

def create_user(client, body: dict, status: int = 201) -> int:
    """POST /api/users with BODY; the answer must be STATUS (lessons 04-05 answer 200). Returns the id."""
    r = client.post("/api/users", json=body)
    assert r.status_code == status, r.text
    return r.json()["id"]


def get_user(client, user_id: int) -> dict:
    r = client.get(f"/api/users/{user_id}")
    assert r.status_code == 200, r.text
    return r.json()


def every_user(client) -> list[dict]:
    """GET /api/users page after page (lessons 13-15 answer 50 users at a time by default), so
    that a test finds the users it made however many the tests before it made. An API without
    pages answers the same list each time: one is enough."""
    users: list[dict] = []
    while True:
        r = client.get("/api/users", params={"limit": 100, "offset": len(users)})
        assert r.status_code == 200, r.text
        page = r.json()
        if users and page[:1] == users[:1]:  # offset is not read: the first page again
            return users
        users += page
        if len(page) < 100:
            return users


def assert_not_found(r) -> None:
    assert r.status_code == 404, r.text
    assert r.json() == {"detail": "User not found"}


def broken_fields(r) -> list:
    """The fields a 422 answer names, from each error's loc: ["body", "name"] -> "name"."""
    assert r.status_code == 422, r.text
    return [error["loc"][-1] for error in r.json()["detail"]]


# --- users with a token (lessons 16 on) ----------------------------------------------------

JWT_SECRET = "the-course-tests-jwt-secret-of-at-least-32-bytes"


def insert_user(db, name: str = "Ada", email: str | None = None, password_hash: str | None = None) -> int:
    """A user straight into the table, for tests that never log in with a password (no bcrypt:
    a signup through the API costs a quarter of a second). A unique email when none is given."""
    email = email or f"{uuid.uuid4().hex[:12]}@example.com"
    with db.cursor() as cur:
        cur.execute("INSERT INTO users (name, email, password_hash) VALUES (%s, %s, %s) RETURNING id",
                    (name, email, password_hash))
        return cur.fetchone()[0]


def token_for(user_id: int, secret: str = JWT_SECRET, minutes: float = 60, **claims) -> str:
    """Issued now (iat), expiring in `minutes` (exp); `claims` add to or replace those. Also a
    token id (jti) of its own and token version 0 (ver), which lessons 24 on require (a user's
    version starts at 0) and earlier lessons ignore."""
    import jwt  # PyJWT, in the requirements from lesson 16 on

    now = datetime.now(UTC)
    exp = now + timedelta(minutes=minutes)
    claims = {"sub": str(user_id), "iat": now, "exp": exp, "jti": uuid.uuid4().hex, "ver": 0, **claims}
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def user_with_token(db, name: str = "Ada") -> dict:
    """A fresh user and a token for them: {"id", "token"}."""
    user_id = insert_user(db, name)
    return {"id": user_id, "token": token_for(user_id)}


# For the tests that look at the app mid-answer: the coach's mode pause holds the answer after its
# first token, and the test lets the rest come (coach.mode("ok")) as soon as it has looked. The
# hold ends by itself after this many seconds: under the apps' OPENAI_TIMEOUT (1 s in the tests),
# so an app that waits for the whole answer sees a slow coach, not a failing one, and fails the
# test on what it did.
PAUSE_SECONDS = 0.8


def wait_until_the_coach_is_asked(coach, request: threading.Thread) -> None:
    """Until the request running in `request` has reached the coach (and waits for it there)."""
    deadline = time.monotonic() + 10
    while not coach.requests() and request.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert coach.requests(), "the request never reached the coach"


# How long a page action or wait may take (ms): every step's pages answer within a second or two
# even on a busy machine; a missing element or redirect fails after this, not after 30 s.
BROWSER_WAIT_MS = 5_000


class ReusedTab:
    """One browser tab for a test module, lent to each of its tests as good as new
    (`with ReusedTab(browser, wait_ms, init_script, **context options) as tab:`, then
    `with tab.lent() as page:` for each test; the `page` fixture is one).

    A new context and page per test cost about 0.7 s of CPU (Chromium starts renderer
    processes for each; measured 20 tests: 18.4 s fresh against 4.3 s on one tab), and a
    third of `make test` was Chromium. Playwright has no "reset this page", so take_back()
    undoes what a test can leave behind: the listeners it added (lend() records page.on), its
    routes, the page it was on (about:blank closes its sockets and timers), the cookies, the
    localStorage of every origin it visited, and the HTTP cache (a test may rewrite a served
    file). Anything that goes wrong while resetting gets a brand-new context instead.
    """

    def __init__(self, browser, wait_ms: int, init_script: str = "", **context_options):
        self.browser, self.wait_ms, self.context_options = browser, wait_ms, context_options
        self.init_script = init_script  # runs in every page it loads, for every test (no undo)
        self.open()

    def open(self) -> None:
        self.context = self.browser.new_context(**self.context_options)
        if self.init_script:
            self.context.add_init_script(self.init_script)
        self.page = self.context.new_page()
        self.devtools = self.context.new_cdp_session(self.page)  # Chromium's own protocol
        self.origins: set[str] = set()
        self.page.on("framenavigated", self.visited)

    def visited(self, frame) -> None:
        scheme, host = urllib.parse.urlsplit(frame.url)[:2]
        if scheme in ("http", "https"):
            self.origins.add(f"{scheme}://{host}")

    def lend(self):
        page, added, on = self.page, [], self.page.on

        def recorded_on(event, handler):
            added.append((event, handler))
            return on(event, handler)

        self.added = added
        page.on = recorded_on  # this tab's own page.on, until take_back()
        page.set_default_timeout(self.wait_ms)
        return page

    def take_back(self) -> None:
        page = self.page
        del page.on
        try:
            page.set_default_timeout(self.wait_ms)  # the test may have set another
            for event, handler in self.added:
                page.remove_listener(event, handler)
            page.unroute_all(behavior="ignoreErrors")
            page.goto("about:blank")
            self.context.clear_cookies()
            for origin in self.origins:
                self.devtools.send("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})
            self.devtools.send("Network.clearBrowserCache")
        except Exception:  # a crashed page, a dialog left open...: start over
            self.close()
            self.open()
        self.origins.clear()

    @contextmanager
    def lent(self) -> Iterator:
        """The tab's page for one test, reset when the block ends."""
        page = self.lend()
        try:
            yield page
        finally:
            self.take_back()

    def close(self) -> None:
        try:
            self.context.close()
        except Exception:
            pass  # already gone with the browser

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# What a page's HTML holds before any script runs (for open_page and log_in_page to require).
SIGNUP_FORM = ("input[name=name]", "input[name=email]", "input[name=password]", "button[type=submit]")
CHAT_BOX = ("#ask textarea", "#ask button[type=submit]")


def open_page(page, url: str, *needs: str) -> None:
    """Opens URL; fails at once, naming what is missing, when the page is not there or lacks an
    element of its HTML that NEEDS names (CSS selectors). Without this, a test on an attempt
    without that page waited out its whole bound (5 s) in the next fill or click."""
    response = page.goto(url)
    name = url.rsplit("/", 1)[-1]
    status = response.status if response else None
    assert status == 200, f"no {name} in frontend/ (HTTP {status})"
    missing = [selector for selector in needs if page.locator(selector).count() == 0]
    assert not missing, f"{name} has no {' and no '.join(missing)} once loaded"


def log_in_page(page, pages, user: dict, path: str, *needs: str) -> None:
    """Opens pages.url + path logged in as `user` (its token in localStorage, as login.html keeps
    it), as open_page does: failing at once when the page or an element NEEDS names is missing."""
    open_page(page, f"{pages.url}/login.html")
    page.evaluate("token => localStorage.setItem('token', token)", user["token"])
    open_page(page, f"{pages.url}/{path}", *needs)


def shown_once_loaded(page, condition: str, what: str) -> None:
    """CONDITION (a JavaScript expression) holds once the page has done what it does on open:
    its requests answered and none for half a second (Playwright's "networkidle"). A page that
    never asks for the data fails at once, naming WHAT, instead of after the whole wait bound."""
    page.wait_for_load_state("networkidle")
    assert page.evaluate(condition), f"{what}: not shown once the page's requests were answered"


def needs_pages(pages, *names: str) -> None:
    """Fails at once when frontend/ lacks a page the test will be sent to (by a redirect, a link)."""
    missing = [name for name in names if not (pages.folder / name).is_file()]
    assert not missing, f"no {' and no '.join(missing)} in frontend/"


def chat_history(pages, user: dict) -> list:
    """The user's conversation as the live API at pages.api lists it: [(role, content), ...]."""
    r = web.get(f"{pages.api}/api/chat/history", headers=bearer(user["token"]), timeout=10)
    assert r.status_code == 200, r.text
    return [(m["role"], m["content"]) for m in r.json()]


# Records every text the newest answer on the page shows, as it changes (page.evaluate it).
WATCH_ANSWER = """() => {
  window.shown = [];
  new MutationObserver(() => {
    const answer = document.querySelector("#chat li.assistant:last-child");
    if (answer) window.shown.push(answer.textContent);
  }).observe(document.getElementById("chat"), {childList: true, subtree: true, characterData: true});
}"""


def text_when(page, selector: str, done: Callable[[str], object], what: str, seconds: float = 5) -> str:
    """The text of SELECTOR once done(text) holds: what a page shows on its way there ("Sending…",
    "Saving…") is never read. Fails after `seconds` naming WHAT and the text shown last."""
    deadline = time.monotonic() + seconds
    while True:
        text = page.text_content(selector) or ""
        if done(text):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what}; {selector} shows {text!r}")
        time.sleep(0.05)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 5) -> None:
    """Polls `condition` until it is true; fails the test after `seconds` naming `what`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what}")
        time.sleep(0.02)


# --- JSON and the database -----------------------------------------------------------------

def keys_in(data) -> set:
    """Every key of every object anywhere in a JSON value."""
    if isinstance(data, dict):
        return set(data).union(*(keys_in(v) for v in data.values()))
    if isinstance(data, list):
        return set().union(*(keys_in(v) for v in data))
    return set()


def strings_in(data) -> list:
    """Every string (keys and values) anywhere in a JSON value, JSON escapes undone."""
    if isinstance(data, dict):
        return [*data, *strings_in(list(data.values()))]
    if isinstance(data, list):
        return [s for item in data for s in strings_in(item)]
    return [data] if isinstance(data, str) else []


def connect(db_env: dict):
    """An autocommit psycopg2 connection to the test database (for module-scoped fixtures; tests
    use the `db` fixture). Close it when done."""
    import psycopg2

    conn = psycopg2.connect(host=db_env["DB_HOST"], port=db_env["DB_PORT"], dbname=db_env["DB_NAME"],
                            user=db_env["DB_USER"], password=db_env["DB_PASSWORD"])
    conn.autocommit = True
    return conn


def stored_hash(db, user_id: int) -> str | None:
    with db.cursor() as cur:
        cur.execute("SELECT password_hash FROM users WHERE id = %s", (user_id,))
        return cur.fetchone()[0]


def cut_off_the_apps_connections(db) -> None:
    """What a database restart does to the app: every connection it holds is closed by the server."""
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    with db.cursor() as cur:
        cur.execute(f"SELECT pg_terminate_backend(pid) {others}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cur.execute(f"SELECT count(*) {others}")
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.05)
    pytest.fail("the app's connections did not end within 10 s")


def alembic(folder: Path, *args: str) -> str:
    """`alembic ARGS` (default `upgrade head`) in a lesson FOLDER; returns what it printed and logged.

    The alembic command's own parser, alembic.ini and env.py, on the database env.py reaches
    (the lesson's engine, so one pooled connection), but in this process: a new interpreter per
    call costs about a second. The ini's logging setup is skipped (it would switch off the test
    process's loggers); alembic's log is captured instead. A failing command raises.
    """
    from alembic.config import CommandLine, Config

    cli = CommandLine()
    options = cli.parser.parse_args(["--raiseerr", *(args or ("upgrade", "head"))])
    output = io.StringIO()
    config = Config(folder / "alembic.ini", stdout=output, output_buffer=output, cmd_opts=options)
    log = logging.getLogger("alembic")
    handler, level = logging.StreamHandler(output), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with mock.patch.object(logging.config, "fileConfig"):
            cli.run_cmd(config, options)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    return output.getvalue()


def git_ignores(folder: Path, name: str, scratch: Path) -> bool:
    """Would git ignore the file NAME of FOLDER? Asked of a scratch repository (in the empty
    folder SCRATCH) holding the course's .gitignore and the folder's own, if it has one: the
    rules for the file itself, also for a learner's folder under workspace/ (which git ignores
    as a whole) or outside this repository."""
    files = (ROOT / ".gitignore", Path(folder) / ".gitignore")
    rules = [path.read_text() for path in files if path.is_file()]
    subprocess.run(["git", "init", "--quiet", str(scratch)], check=True)
    (scratch / ".gitignore").write_text("\n".join(rules))
    check = subprocess.run(["git", "check-ignore", "--quiet", name], cwd=scratch)
    assert check.returncode in (0, 1), f"git check-ignore failed for {name}"
    return check.returncode == 0


# --- servers on free ports -----------------------------------------------------------------

@contextmanager
def pages_and_api(folder: Path, app_folder: Path, origins: Callable[[int], str],
                  app: str = "main:app") -> Iterator[tuple[int, str]]:
    """Serves FOLDER (a copy of a frontend/) on a free port P and runs the app of APP_FOLDER in
    uvicorn on another (APP: module:attribute, lessons.toml's `app`), with CORS_ORIGINS=origins(P).
    Yields (P, the API's URL); the caller points config.js at that URL. Both stop on leaving the block."""
    files, servers = serve_folder(folder), Servers()
    try:
        api_port, _ = servers.start(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}"],
            cwd=app_folder, env={"CORS_ORIGINS": origins(files.server_port)}, what="the lesson's API",
            keep_log=True)
        yield files.server_port, f"http://127.0.0.1:{api_port}"
    finally:
        servers.stop_all()
        files.shutdown()
        files.server_close()


class QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # no line per request in the test output
        pass


def serve_folder(folder: Path) -> http.server.ThreadingHTTPServer:
    """FOLDER on a free port of 127.0.0.1 (.server_port), by the handler `python -m http.server`
    uses, from a thread of this process: no new interpreter per server. Stop it with
    .shutdown() and .server_close(). Files are read fresh on every request."""
    handler = functools.partial(QuietFileHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # shutdown() waits for the loop to look again: every 0.05 s instead of the default 0.5 s.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


class PortTaken(RuntimeError):
    """Another program took the free port first: the server could not listen on it."""


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 15) -> None:
    """Until PROC listens on PORT (PROC itself: not another program on that port). When it exits
    first, the error's first line names the exception it ended with (the last line of its
    traceback), its whole output follows; PortTaken if another program listens there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = killed(proc)
            if not port_free(port):
                raise PortTaken(f"{what} could not listen on port {port}: another program took it")
            end = traceback_end(output)[0] or next(iter(output.strip().splitlines()[-1:]), "no output")
            raise RuntimeError(f"{what} exited early: {end}\n{output}")
        if not port_free(port) and listens_on(proc.pid, port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s:\n{killed(proc)}")


def children(pid: int) -> list[int]:
    """The processes PID started that still run or wait to be reaped (Linux lists them in /proc);
    none when it is gone, or where /proc cannot tell."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def killed(proc: subprocess.Popen) -> str:
    """Kills PROC and the processes it started, then returns what it printed: all of it, since
    none of them holds its output pipe open any more (uvicorn's workers, started by its
    supervisor, would keep the read waiting)."""
    family, todo = [], [proc.pid]
    while todo:  # children first found, then theirs
        pid = todo.pop()
        todo += children(pid)
        family.append(pid)
    for pid in family[1:]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    return proc.stdout.read()


TRACEBACK = re.compile(r"Traceback \(most recent call last\):")
FRAME = re.compile(r'^\s+File "(?P<file>[^"]+)", line (?P<line>\d+)', re.MULTILINE)


@functools.cache
def statement_lines(path: Path) -> dict[int, int]:
    """{first line: last line} of each statement in a file (1-based); a compound statement's
    (with, for, if) ends where its body begins. Parsed once per file: pytest's own
    TracebackEntry.statement parses the whole file again for each failure (0.08 s each for
    lesson 24's test file, 3.3 s of CPU in a red check with 40 failures)."""
    spans = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.stmt):
            body = getattr(node, "body", None)
            last = body[0].lineno - 1 if isinstance(body, list) and body else node.end_lineno
            spans[node.lineno] = max(node.lineno, min(last, spans.get(node.lineno, last)))
    return spans


def statement_of(path: Path, line: int) -> str:
    """The statement of the file PATH that line LINE (1-based) is part of, on one line of at most
    300 characters; "" when the file cannot be read or parsed."""
    try:
        spans = statement_lines(path)
    except (OSError, SyntaxError, ValueError):
        return ""
    first = max((start for start, end in spans.items() if start <= line <= end), default=line)
    text = "\n".join(path.read_text().splitlines()[first - 1:spans.get(first, line)])
    return " ".join(text.split())[:300]


def frames_in(text: str) -> list[tuple[str, int]]:
    """Every `File "...", line N` of TEXT (a traceback, or an error that quotes one: FastAPI's
    ResponseValidationError names the endpoint so), in order."""
    return [(match["file"], int(match["line"])) for match in FRAME.finditer(text)]


def traceback_end(text: str) -> tuple[str, list[tuple[str, int]]]:
    """The last traceback in TEXT (a server's log, an error's message): the exception it ended
    with, as its last line says it ("ValueError: bad value"), and its frames (file, line),
    innermost last. ("", []) when TEXT holds no traceback."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if TRACEBACK.search(line)]
    if not starts:
        return "", []
    frames = []
    for at, line in enumerate(lines[starts[-1] + 1:], starts[-1] + 1):
        if match := FRAME.match(line):
            frames.append((match["file"], int(match["line"])))
        elif line.strip() and not line[0].isspace():
            end = line.strip()
            if VALIDATION_ERRORS.search(end):  # pydantic's: the first field and its error follow
                end = ": ".join([end, *(PYDANTIC_TAIL.sub("", x.strip()) for x in lines[at + 1:at + 3])])
            return end, frames
    return "", frames


# "1 validation error for Settings", then a line with the field's name and one with what is wrong
# ("  Value error, at least 32 bytes [type=value_error, input_value='short', input_type=str]").
VALIDATION_ERRORS = re.compile(r"\d+ validation errors? for \w+$")
PYDANTIC_TAIL = re.compile(r"\s*\[type=[^\]]*\]$")


class ServerLog:
    """What a server prints, read from its pipe by a thread as it comes (a chatty server never
    waits on a full pipe), each line with the time it came. Logs of running servers are in
    LIVE_LOGS: conftest shows the traceback a server logged while a test failed."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.thread.start()
        LIVE_LOGS.append(self)

    def _read(self, pipe) -> None:
        for line in pipe:
            self.lines.append((time.monotonic(), line))

    def text(self, since: float = 0.0) -> str:
        return "".join(line for at, line in list(self.lines) if at >= since)

    def close(self) -> None:
        self.thread.join(timeout=5)
        if self in LIVE_LOGS:
            LIVE_LOGS.remove(self)


LIVE_LOGS: list[ServerLog] = []


def exit_or_listen(argv: list[str], cwd: Path, env: dict, seconds: float = 20) -> tuple[int | None, str]:
    """Runs ARGV ("{port}" replaced by a free port) until it exits: (exit code, its output); or
    until it listens on that port: (None, its output so far), and it is stopped."""
    for _ in range(3):  # a port another program took meanwhile: again, on another
        port = free_port()
        proc = started([a.replace("{port}", str(port)) for a in argv], cwd, env)
        log = ServerLog(proc)
        deadline = time.monotonic() + seconds
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if not port_free(port) and listens_on(proc.pid, port):
                    break
                time.sleep(0.05)
            code = proc.poll()
            if code is None:
                proc.terminate()
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
            proc.stdout.close()
        if code is None or port_free(port):
            break
    return code, log.text()


def started(command: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    """COMMAND in CWD with exactly the environment ENV, its output on a pipe (proc.stdout):
    `python -m uvicorn ...` with one worker and no --reload forked (fork_uvicorn), anything
    else started."""
    one_process = not {"--workers", "--reload"} & set(command)
    if command[:3] == [sys.executable, "-m", "uvicorn"] and one_process:
        return fork_uvicorn(command[3:], Path(cwd), env)
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


class ForkedServer:
    """A server forked from this process, with the part of subprocess.Popen's interface that
    Servers and ServerLog use: pid, stdout (its output, text), poll, wait, terminate, kill."""

    def __init__(self, pid: int, stdout):
        self.pid, self.stdout, self.returncode = pid, stdout, None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"forked server {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode

    def terminate(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)


def fork_uvicorn(args: list[str], cwd: Path, env: dict) -> ForkedServer:
    """`python -m uvicorn ARGS` in CWD with exactly the environment ENV, forked from this test
    process instead of started afresh: a new interpreter spent 0.8-1.8 s of CPU importing FastAPI,
    SQLAlchemy and openai before it served a request, and the lessons' tests start dozens.

    The child is made to look like a fresh process: the lesson's own modules are imported again
    (their settings read ENV), logging, warnings filters, signal handlers and asyncio start from
    Python's defaults (bcrypt's cost stays the tests' own: conftest.py). Its output goes to a pipe, as a
    subprocess's would, and uvicorn's own command line parses ARGS (UVICORN_* variables too)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        return ForkedServer(pid, os.fdopen(read, "r", errors="replace"))
    code = 1
    try:  # the child: never returns into pytest's code
        os.close(read)
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        code = _serve_as_a_fresh_process(args, cwd, env)
    except SystemExit as done:  # as the interpreter ends: a code that is no number is printed
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if not isinstance(done.code, int | None):
            print(done.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))


def _serve_as_a_fresh_process(args: list[str], cwd: Path, env: dict) -> int:
    gc.freeze()  # never collect the test process's objects here: their sockets are the parent's
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 (for the process's life)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["uvicorn", *args]
    sys.path.insert(0, str(cwd))
    # Only what is installed (the standard library, site-packages) stays imported: the app's own
    # modules import again, from CWD and with ENV (a test process holds some lesson's `main`).
    installed = tuple({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if origin and not os.path.realpath(origin).startswith(installed):
            del sys.modules[name]
    root = logging.getLogger()
    for logger in [root, *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            logger.handlers.clear()
            logger.filters.clear()
            logger.setLevel(logging.NOTSET)
            logger.propagate, logger.disabled = True, False
    root.setLevel(logging.WARNING)
    logging.disable(logging.NOTSET)
    # Python's defaults: pytest's "error" is for the tests, and it records warnings, never prints.
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.showwarning = _print_warning
    sys.excepthook, sys.unraisablehook = sys.__excepthook__, sys.__unraisablehook__
    threading.excepthook = threading.__excepthook__
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    asyncio.events._set_running_loop(None)  # Playwright's loop, if the fork came from inside one
    asyncio.set_event_loop_policy(None)
    from uvicorn.main import main  # here: only a forked server needs it

    return main(args=args, prog_name="uvicorn")  # click: parses, serves, then exits (SystemExit)


class Servers:
    """Starts processes on free ports; stop_all() ends them (the `servers` fixture calls it).
    `python -m uvicorn ...` with one worker and no --reload is forked (fork_uvicorn), not started."""

    def __init__(self):
        self.procs = []
        self.logs: dict[int, ServerLog] = {}  # by pid, for servers started with keep_log

    def start(self, argv, cwd, env=None, what="server", keep_log=False,
              timeout: float = 15) -> tuple[int, subprocess.Popen]:
        """Runs ARGV in CWD with "{port}" replaced by a free port; returns once it listens there
        (within TIMEOUT seconds). keep_log: its output is read as it comes, into log(proc) (else
        it stays in proc.stdout)."""
        environment = {**os.environ, **(env or {})}
        for attempt in range(3):  # a port another program took meanwhile: again, on another
            port = free_port()
            proc = started([a.replace("{port}", str(port)) for a in argv], cwd, environment)
            self.procs.append(proc)
            try:
                wait_for_port(port, proc, what, timeout)
                break
            except PortTaken:
                if attempt == 2:
                    raise
        if keep_log:
            self.logs[proc.pid] = ServerLog(proc)
        return port, proc

    def log(self, proc: subprocess.Popen) -> str:
        """All a server started with keep_log printed so far (all of it, once it is stopped)."""
        return self.logs[proc.pid].text()

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.pid in self.logs:
            self.logs[proc.pid].close()
        proc.stdout.close()

    def stop_all(self):
        for proc in self.procs:
            self.stop(proc)


def deleted_while_the_app_waits(db_env: dict, db, user_id: int, request: Callable):
    """What REQUEST() returned, when the user's account was deleted half-way through it.

    The test holds the user's row (SELECT ... FOR UPDATE): the app's next write to it, or to a
    row that points at it (a foreign key), waits. Once it waits, the test deletes the account
    and lets go: the app finds it gone after the token was checked, as when another request
    (DELETE /api/me from another tab) ends between its steps."""
    holder = connect(db_env)
    holder.autocommit = False
    try:
        with holder.cursor() as cur, ThreadPoolExecutor(1) as pool:
            cur.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))
            answer = pool.submit(request)
            wait_for(lambda: answer.done() or waits_for_a_lock(db), "the app waits for the user's row")
            cur.execute("DELETE FROM users WHERE id = %s", (user_id,))
            holder.commit()
            return answer.result(timeout=30)
    finally:
        holder.close()


def waits_for_a_lock(db) -> bool:
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")
        return cur.fetchone()[0] > 0


@contextmanager
def pool_exhausted() -> Iterator[None]:
    """The app's pool of database connections (this process's lesson: database.engine, or
    app.db.engine from lesson 22) full for the block: its one connection taken by the test, and
    a wait for another given up after 0.2 s. The app's next database call raises SQLAlchemy's
    TimeoutError, as when every connection stays busy for the pool's timeout (30 s by default)."""
    from sqlalchemy import create_engine

    engine = next(module.engine for name in ("database", "app.db") if (module := sys.modules.get(name)))
    small = create_engine(engine.url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    saved, engine.pool = engine.pool, small.pool  # the engine's pool is a plain attribute
    taken = small.pool.connect()
    try:
        yield
    finally:
        engine.pool = saved
        taken.close()
        small.dispose()


# --- the LLM (lessons 18 on) ----------------------------------------------------------------

# The offline coach's ways of giving no usable answer (its modes, shared/coach.py), for a test
# parametrized over them as (mode, options): lesson 21's socket and lesson 22's POST /api/chat.
LLM_FAILURES = [
    pytest.param("error", {}, id="answers 500"),
    pytest.param("junk", {}, id="answers a page, not JSON"),
    pytest.param("odd", {"shape": "number"}, id="answers a number, not text"),
    pytest.param("odd", {"shape": "nul"}, id="answers text with a NUL character"),
]


# --- the chat socket (lessons 21 on) -------------------------------------------------------

@contextmanager
def app_socket(client, path: str = "/ws/chat"):
    """client.websocket_connect(PATH) of a TestClient. An app that closes the socket before
    accepting it fails the test with what that most often means: TestClient says only
    WebSocketDisconnect."""
    opening = client.websocket_connect(path)
    try:
        ws = opening.__enter__()
    except WebSocketDisconnect as closed:
        if closed.code == 1000:  # what Starlette sends where no route takes the socket
            pytest.fail(f"the app closed the WebSocket at {path} before accepting it (code 1000): most "
                        "often there is no WebSocket route there (@app.websocket, or a router not included)")
        pytest.fail(f"the app closed the WebSocket at {path} with {closed.code} before accepting it: a "
                    "browser gets an HTTP 403 then, never the code: accept first (websocket.accept()), "
                    "then close")
    with contextlib.ExitStack() as leaving:
        leaving.push(opening)  # its __exit__ ends the socket however the block ends
        yield ws


# --- the event loop stays free (lessons 20 on) ---------------------------------------------
# An async app answers everyone from one thread, the event loop: a call that blocks it (a
# synchronous OpenAI client waiting for a token, a database call made straight in an async
# handler) holds every other request until it returns. These helpers make such a wait long
# (a coach slow between tokens, tables the test holds) and time a cheap request meanwhile: an
# app that awaits answers it in milliseconds, one that blocks only when the wait is over. The
# bounds are ratios with wide margins (a quarter of the wait), never tiny absolute times.

def answer_times(url: str, count: int, every: float) -> list[float]:
    """Seconds each of COUNT GET requests to URL took, one sent every EVERY seconds (or as soon
    as the one before came back, when it took longer); each must answer 200."""
    took = []
    for _ in range(count):
        started = time.monotonic()
        r = web.get(url, timeout=30)
        took.append(time.monotonic() - started)
        assert r.status_code == 200, r.text
        time.sleep(max(0.0, every - took[-1]))
    return took


class HeldTables:
    """A lock on some tables, held by a transaction of the test: the app's statements on them
    wait, as on a busy database, until release()."""

    def __init__(self, db_env: dict, tables: str, mode: str):
        self.conn = connect(db_env)
        self.conn.autocommit = False
        self._guard = threading.Lock()
        with self.conn.cursor() as cur:
            cur.execute(f"LOCK TABLE {tables} IN {mode} MODE")

    def release(self) -> None:
        with self._guard:
            if not self.conn.closed:
                self.conn.rollback()
                self.conn.close()


@contextmanager
def tables_held(db_env: dict, tables: str, mode: str = "ACCESS EXCLUSIVE") -> Iterator[HeldTables]:
    """Holds TABLES ("users, messages") locked in MODE for the block: ACCESS EXCLUSIVE stops
    reads and writes, SHARE only writes."""
    held = HeldTables(db_env, tables, mode)
    try:
        yield held
    finally:
        held.release()


def the_app_waits_for(db, table: str) -> bool:
    """Whether a connection to the test database waits for a lock on TABLE (one the test holds)."""
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid) WHERE NOT granted "
                    "AND relation = %s::regclass AND datname = current_database()", (table,))
        return cur.fetchone()[0] > 0


def seconds_to_answer_while_held(url: str, *held: HeldTables, give_up: float = 2.0) -> float:
    """GET URL while the app waits for tables the test holds: how long the answer took. All of
    HELD go after GIVE_UP seconds if it has not come by then (an app whose event loop waits too
    answers only then)."""
    timer = threading.Timer(give_up, lambda: [tables.release() for tables in held])
    timer.start()
    started = time.monotonic()
    try:
        r = web.get(url, timeout=give_up + 30)
    finally:
        timer.cancel()
    assert r.status_code == 200, r.text
    return time.monotonic() - started


def answer_times_while_a_chat_waits_for_the_database(
        db, db_env: dict, url: str, ask: Callable[[], None], ended: Callable[[], str] = lambda: "",
) -> dict[str, float]:
    """Seconds a GET of URL took while a chat, started by ASK(), waited for the database at each
    of its steps: its token's check (the users table held), its history (messages held), and
    storing the answer (messages held for writes only). Each table is taken before the chat can
    reach it; the coach must write its answer slowly enough (half a second) for the last step.
    A step whose request had to wait for the tables to go ends the watch there. ENDED() says how
    the chat ended ("" while it goes on): one that ends before it reaches the database fails at once."""
    took = {}
    with tables_held(db_env, "users") as users, tables_held(db_env, "messages") as messages:
        ask()
        wait_for(lambda: the_app_waits_for(db, "users") or ended(),
                 "the chat waits for users (checking its token)")
        why = ended()
        assert not why, f"the chat ended before it reached the database: {why}"
        took["checking the token"] = seconds_to_answer_while_held(url, users, messages)
        users.release()
        if took["checking the token"] >= 1:
            return took
        wait_for(lambda: the_app_waits_for(db, "messages"), "the chat waits for messages (its history)")
        took["reading the history"] = seconds_to_answer_while_held(url, messages)
    if took["reading the history"] >= 1:
        return took
    with tables_held(db_env, "messages", "SHARE") as held:  # reads go on, writes wait
        wait_for(lambda: the_app_waits_for(db, "messages"), "the chat waits to store its answer", seconds=10)
        took["storing the answer"] = seconds_to_answer_while_held(url, held)
    return took


# --- the history's pages (lessons 19 on) ---------------------------------------------------

def insert_messages(db, user_id: int, count: int) -> list[int]:
    """COUNT messages "message 0", "message 1", ... of one user straight into the table (role
    "user"); their ids, oldest first."""
    with db.cursor() as cur:
        cur.execute("INSERT INTO messages (user_id, role, content) "
                    "SELECT %s, 'user', 'message ' || n FROM generate_series(0, %s - 1) AS n RETURNING id",
                    (user_id, count))
        return sorted(row[0] for row in cur.fetchall())


def history_page(client, user: dict, query: str = "") -> list[dict]:
    """GET /api/chat/history + QUERY ("?limit=100&before=7") as USER; asserts 200, returns the page."""
    r = client.get(f"/api/chat/history{query}", headers=bearer(user["token"]))
    assert r.status_code == 200, r.text
    return r.json()


def history_read_in_pages(client, db, user: dict) -> None:
    """250 stored messages read back in pages of 100 (?limit=100, then &before=<the oldest id of
    the page before>): pages of 100, 100 and 50, every message once, none lost."""
    ids = insert_messages(db, user["id"], 250)
    pages = [history_page(client, user, "?limit=100")]
    while len(pages[-1]) == 100:  # a full page: there may be more before it
        pages.append(history_page(client, user, f"?limit=100&before={pages[-1][0]['id']}"))
    assert [len(page) for page in pages] == [100, 100, 50]
    read = [m["id"] for page in reversed(pages) for m in page]  # the earliest page first
    assert read == ids


def earlier_messages_load_on_the_page(pages, page, db, user: dict) -> None:
    """120 stored messages (the second is markup): the home page shows the latest 50, and each
    click on #earlier puts the 50 before them above, as text, until all are shown and it goes."""
    insert_messages(db, user["id"], 1)
    with db.cursor() as cur:
        cur.execute("INSERT INTO messages (user_id, role, content) VALUES (%s, 'assistant', %s)",
                    (user["id"], "<b>first</b> answer"))
    insert_messages(db, user["id"], 118)
    log_in_page(page, pages, user, "home.html")
    earlier = page.locator("#earlier")
    for shown in (50, 100, 120):
        page.wait_for_function(f"document.querySelectorAll('#chat li').length === {shown}")
        if shown < 120:
            earlier.click()
    texts = page.locator("#chat li").all_text_contents()
    assert texts == ["message 0", "<b>first</b> answer", *[f"message {n}" for n in range(118)]]
    assert page.locator("#chat b").count() == 0
    assert earlier.is_hidden()
