"""Fixtures every lesson's tests share (plain helpers are in helpers.py; never import this file),
and the plugin that writes the structured results everything reads (pytest --results=FILE).

One pytest process tests one lesson (`make test` starts one per lesson). The folder under test
is LESSON_DIR when set (so the same tests can grade a learner's folder or another snapshot),
otherwise the lesson that the test file's name points at (test_09_... -> lessons/09-...). A
test file may run an earlier lesson's tests too (`from test_21_websocket import *`): they are
collected as its own, against its folder. That folder goes first on sys.path, so the lesson's
app (its manifest `app`, main:app by default) imports the lesson's own modules: lessons are
import roots, not packages.

Fixtures:
  lesson        the Lesson under test (number, folder, needs) with .path = the folder tested
  db_env        DB_* settings of this lesson's own fresh test database aic_test_NN
  db            a psycopg2 connection (autocommit) to that database, to look at rows
  user          (16 on) a fresh user straight into the migrated table and a token: {"id", "token"}
  closed_port   a local port where nothing listens: point DB_PORT there for "database down"
  tables        (session) that database with the lesson's migrations run (15 on), as `make run`
                leaves the learner's; app and live_api ask for it
  app           the lesson's FastAPI app (its manifest `app`: main.app, or app.main.app)
  client        a TestClient around it; startup and shutdown (lifespan) run
  fresh_app     fresh_app(NAME=value, ...) -> a new app from the lesson's modules imported again
                with those environment variables (settings read at import): no uvicorn to start
  servers       a helpers.Servers for this test: servers.start(argv, cwd, env) on a free "{port}"
  live_api      starts the lesson's app in a real uvicorn on a free port (forked from this process:
                helpers.fork_uvicorn): live_api(env={...});
                .url, .stop(), .log() (what it printed)
  static_server serves a folder over HTTP on a free port: static_server(folder, host=...)
  pages         (module) the lesson's frontend/ served from http://localhost:P with a live API
                that allows that origin; config.js points at it: .url, .api, .folder, .port
  browser       (session) one headless Chromium (Debian's chromium-headless-shell, by Playwright)
  tab           (module) the browser tab `page` lends (helpers.ReusedTab)
  page          a page with nothing from other tests (no cookies, localStorage, listeners or
                routes): the module's one tab, reset after each test
  coach         the offline OpenAI-compatible coach (one per session), reset for each test:
                .url, .env (settings that point an app at it), .requests(), .mode(...), .stats()

Speed: a lesson's tests run in well under 10 s. Start a server or a browser once per module or
session where the tests only add to what it serves (`pages`, `browser`), not once per test.
"""

import collections
import fcntl
import gc
import importlib
import json
import os
import pprint
import re
import shutil
import socket
import sys
import time
import traceback
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import passlib.hash
import pytest
from fastapi.testclient import TestClient

from shared.ground.paths import BUILD, RESULTS

# pytest keeps each test module it has rewritten (asserts that show their values), unless the
# environment says to write no bytecode (PYTHONDONTWRITEBYTECODE, set on this course's build
# machine). Every run then rewrote every test file again: lesson 24's (with 21's and 22's) in each
# of a check's processes, 3 s of CPU in a red check of 20. What is imported from here on is kept,
# whatever the environment says, in build/pycache: never in a learner's folder.
sys.pycache_prefix = str(BUILD / "pycache")
sys.dont_write_bytecode = False

# Asserts in helpers.py show their values on failure too (pytest rewrites them like a test's).
pytest.register_assert_rewrite("helpers")

from helpers import (  # noqa: E402
    BROWSER_WAIT_MS,
    IN_CI,
    JWT_SECRET,
    LIVE_LOGS,
    ROOT,
    ReusedTab,
    Servers,
    alembic,
    connect,
    frames_in,
    pages_and_api,
    serve_folder,
    statement_of,
    traceback_end,
    user_with_token,
)
from shared.ground import devdb, results  # noqa: E402
from shared.ground.manifest import find  # noqa: E402
from shared.ground.testenv import NO_CERTIFICATES  # noqa: E402

# bcrypt at cost 4 instead of passlib's default 12 (the lessons keep the default: production wants
# the slowness, about 0.2 s a hash, to hold off guessing). The hashes are real bcrypt all the same;
# a test run makes dozens of them, and at cost 12 they were a third of a lesson's time. The apps
# forked from this process (live_api, pages: fork_uvicorn) hash at cost 4 too: their signups and
# logins in the browser tests took a second of lessons 14-19's checks. Apps uvicorn starts afresh
# (several workers) hash at 12, unless the lesson reads BCRYPT_ROUNDS (24 on: their tests set 4).
passlib.hash.bcrypt.default_rounds = 4

# Lessons 16 on refuse to start without a secret; helpers.token_for signs with the same one.
# (A test file may set its own before the app is imported: variables already set win over .env.)
os.environ["JWT_SECRET"] = JWT_SECRET
# No test talks TLS, and each OpenAI client an app makes would read the system's CA certificates
# (shared/ground/testenv.py): the apps of this process, and those it starts, skip them.
os.environ.update(NO_CERTIFICATES)
# The make checks that tests run start a new interpreter each, as a first check does: none
# leaves a warm server behind (shared/services/warm.py; test_course.py tests it on its own).
os.environ["AIC_WARM"] = "0"
# Debian's chromium-headless-shell: the same Chromium, built without the windowing parts
# (Playwright's own headless default). Measured: it starts for half the CPU of the full
# `chromium` (0.75 s against 1.4 s) and loads a page for half as well (35 ms against 75 ms).
# Without it, the full browser runs headless; CHROMIUM=/path/to/chrome picks another.
CHROMIUM = os.environ.get("CHROMIUM") or next(
    (found for name in ("chromium-headless-shell", "chromium") if (found := shutil.which(name))),
    "/usr/bin/chromium-headless-shell")
# Set in each worker process when pytest-xdist spreads the tests (make check): "gw0", "gw1", ...
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
ONE_WORKER_FIXTURES = ("stack", "two_workers")


def lesson_numbers(items) -> set[str]:
    return {m.group(1) for item in items if (m := re.match(r"test_(\d\d)_", item.path.name))}


def pytest_collection_modifyitems(config, items):
    numbers = lesson_numbers(items)
    if len(numbers) > 1:
        pytest.exit("one lesson per pytest process (lessons share module names): "
                    "use `make test` or `make test LESSON=NN`", returncode=4)
    config.lesson_number = numbers.pop() if numbers else None
    # make check may spread a lesson's tests over worker processes (pytest-xdist, --dist
    # loadgroup): the tests that share a module fixture costlier than a server start (two
    # workers, nginx) go to one worker, so it starts once; the rest go wherever a worker is free.
    unit = {}  # what xdist hands out whole: a group's tests together, else one test
    for item in items:
        shared = next((name for name in ONE_WORKER_FIXTURES if name in item.fixturenames), None)
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared))
        unit[item] = shared or item.nodeid
    # make check (--own-first): the tests the lesson's file defines first, those it takes over
    # from an earlier lesson's after them; see pytest_runtest_setup.
    held = taken_over if config.getoption("own_first") else lambda item: False
    # Spread over processes (make check), the longest go first: a long test handed out last runs
    # on alone while the other processes sit idle. Longest-processing-time first, as make test
    # orders its jobs, by work unit (a group counts with all its tests); xdist hands the units out
    # in the order of their first test (--no-loadscope-reorder, testrun.spread). Every process
    # reads the same file, so all collect the same order, as xdist requires. Measured on 2 cores,
    # lesson 24's model answer: 26-28 s in file order, 23-24 s longest first (25 gains nothing:
    # its CPU is the limit, not the order).
    if WORKER and config.lesson_number:
        last = last_seconds(config.lesson_number)
        seconds = collections.Counter()
        for item in items:
            seconds[unit[item]] += last.get(item.nodeid, 0.0)
        items.sort(key=lambda item: (held(item), -seconds[unit[item]]))
    else:
        items.sort(key=held)  # a stable sort: otherwise in the order of the file


def taken_over(item) -> bool:
    """Whether the test is one the lesson's file takes over from an earlier lesson's (`from
    test_24_protect import *`): its function was defined in another module."""
    function = getattr(item, "function", None)
    return function is not None and function.__module__ != item.module.__name__


def pytest_collection_finish(session):
    # What is imported and collected by now (the libraries, the lesson's app, the tests) lives
    # until the run ends: out of the garbage collector's sight from here (gc.freeze). Its full
    # collections, a few during the run and pytest's two at its end, then walk only what the tests
    # make, not some 200,000 objects each time (lesson 18's: 0.05 s each instead of 0.12 s).
    gc.freeze()


def last_seconds(number: str) -> dict[str, float]:
    """How long each test took in the lesson's last check, else in its last make test ({} if
    neither has run: the tests keep the order of their file). A test the last check skipped (held
    back, say) keeps its time from make test."""
    seconds = {}
    for path in (RESULTS / f"{number}.jsonl", RESULTS / f"{number}-check.jsonl"):
        try:
            if path.exists():
                seconds |= {test.nodeid: test.seconds for test in results.read(path).tests
                            if test.outcome != "skipped"}
        except (ValueError, TypeError):  # half written by a run beside this one: the other holds
            pass
    return seconds


@pytest.fixture(scope="session")
def lesson(request):
    number = os.environ.get("LESSON") or request.config.lesson_number
    if number is None:
        pytest.skip("not a lesson test")
    registered = find(number)
    folder = Path(os.environ.get("LESSON_DIR") or registered.path).resolve()
    sys.path.insert(0, str(folder))  # the lesson folder is the import root of its app
    forget_course_modules_named_like(folder)
    return LessonUnderTest(registered.number, registered.folder, registered.needs, registered.app, folder)


def forget_course_modules_named_like(folder: Path) -> None:
    """The folder's own modules are the ones its code imports, never the course's: a module of
    the folder (a .py file, or a package) whose name this process already imported from the
    course (tests/helpers.py, conftest, the shared package) leaves the import cache, so the
    folder's `import helpers` finds its own helpers.py, as it does under uvicorn. The tests keep
    the modules they already imported (they hold them). Hence no test imports course code
    inside a function: what it would get is the folder's."""
    own = {path.stem for path in folder.glob("*.py")} | {p.parent.name for p in folder.glob("*/__init__.py")}
    course = [ROOT / "tests", ROOT / "shared"]
    for name in own:
        origin = getattr(sys.modules.get(name), "__file__", None) or ""
        if origin and any(Path(origin).resolve().is_relative_to(part) for part in course) \
                and not Path(origin).resolve().is_relative_to(folder):
            for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[loaded]


@dataclass(frozen=True)
class LessonUnderTest:
    number: str
    folder: str
    needs: tuple[str, ...]
    app: str    # the ASGI app as uvicorn names it: "main:app", "app.main:app"
    path: Path  # the folder whose code is tested

    @property
    def uvicorn(self) -> list[str]:
        """uvicorn serving this lesson's app on "{port}" (for Servers.start)."""
        return [sys.executable, "-m", "uvicorn", self.app, "--host", "127.0.0.1", "--port", "{port}"]


@pytest.fixture(scope="session")
def db_env(lesson):
    """A fresh database for this lesson's tests; the learner's aic_db is never touched.

    Sets DB_* in os.environ before the lesson's code is imported, so its settings point here.
    """
    # Two runs of the same lesson at once would drop each other's database: the second waits.
    (ROOT / ".data").mkdir(exist_ok=True)
    # A run against another lesson's code (make test PREVIOUS=1) names a database of its own.
    name = f"aic_test_{lesson.number}{os.environ.get('TEST_DB_SUFFIX', '')}"
    if WORKER:  # make check spreads a lesson's tests over workers (pytest-xdist): one database each
        name += f"_{WORKER}"
    with open(ROOT / ".data" / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        settings = devdb.create_test_database(name)
        os.environ.update(settings)
        yield settings


@pytest.fixture
def db(db_env):
    conn = connect(db_env)
    yield conn
    conn.close()


@pytest.fixture
def user(app, db) -> dict:
    """A fresh user (straight into the table) and a token for them: {"id", "token"}."""
    return user_with_token(db)


@pytest.fixture
def closed_port():
    """Bound (so nothing else takes it) but not listening: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield str(s.getsockname()[1])


@pytest.fixture(scope="session")
def tables(lesson, request) -> None:
    """The test database with the lesson's tables, as `make run` leaves the learner's: its
    migrations run first where it has them (15 on). Whichever test comes first asks for it, the
    app's or a live server's (make check spreads the tests over workers, each its own database)."""
    if "db" in lesson.needs:
        request.getfixturevalue("db_env")
        if (lesson.path / "alembic").is_dir():
            alembic(lesson.path, "upgrade", "head")


@pytest.fixture(scope="session")
def app(lesson, tables):
    module, _, attribute = lesson.app.partition(":")
    return getattr(importlib.import_module(module), attribute or "app")


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture
def fresh_app(app, lesson, monkeypatch):
    """fresh_app(**env): the lesson's app module imported again, with ENV set for this test;
    returns its app. For main:app only main.py runs again; for a package (app.main:app) the
    whole package does. The modules of the other tests' `app` come back after the test."""
    module, _, attribute = lesson.app.partition(":")
    top = module.split(".")[0]

    def load(**env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            monkeypatch.delitem(sys.modules, name)  # restored after the test
        return getattr(importlib.import_module(module), attribute or "app")

    return load


@pytest.fixture
def servers():
    s = Servers()
    yield s
    s.stop_all()


class LiveApi:
    def __init__(self, url, proc, servers):
        self.url, self.proc, self._servers = url, proc, servers

    def stop(self):
        self._servers.stop(self.proc)

    def log(self) -> str:
        """What uvicorn printed so far (its terminal): all of it once stopped."""
        return self._servers.log(self.proc)


@pytest.fixture
def live_api(lesson, servers, tables):
    """live_api(env=None) -> LiveApi with .url ("http://127.0.0.1:PORT"), .stop() and .log()."""

    def start(env=None):
        port, proc = servers.start(lesson.uvicorn, cwd=lesson.path, env=env, what="the lesson's API",
                                   keep_log=True)
        return LiveApi(f"http://127.0.0.1:{port}", proc, servers)

    return start


@pytest.fixture
def static_server():
    """static_server(folder, host="127.0.0.1") -> base URL of the folder served as
    `python -m http.server` serves it (helpers.serve_folder, in a thread); stopped after the test."""
    started = []

    def start(folder, host="127.0.0.1"):
        started.append(serve_folder(folder))
        return f"http://{host}:{started[-1].server_port}"

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Pages:
    url: str  # http://localhost:P, where the copy of frontend/ is served: the allowed origin
    api: str  # http://127.0.0.1:Q, the live API that config.js points at
    folder: Path  # the served copy of frontend/ (http.server reads files fresh on each request)
    port: int  # P: http://127.0.0.1:P serves the same files from an origin the API does not allow


@pytest.fixture(scope="module")
def pages(lesson, app, tmp_path_factory):
    """The lesson's pages as `make run` serves them, on free ports, once per test module.

    A copy of frontend/ is served from http://localhost:P; a live API allows exactly that
    origin (CORS_ORIGINS); config.js says where the API is. Tests share both servers, so each
    test uses names or emails of its own and only reads what it created.
    """
    folder = tmp_path_factory.mktemp("pages") / "frontend"
    shutil.copytree(lesson.path / "frontend", folder)
    with pages_and_api(folder, lesson.path, origins=lambda port: f"http://localhost:{port}",
                       app=lesson.app) as (port, api):
        (folder / "config.js").write_text(f'const API_URL = "{api}";\n')
        yield Pages(f"http://localhost:{port}", api, folder, port)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium-headless-shell)"
        if IN_CI:
            pytest.fail(message + ": browser tests must run in CI")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def tab(browser):
    with ReusedTab(browser, BROWSER_WAIT_MS) as tab:
        yield tab


@pytest.fixture
def page(tab):
    """A page with nothing of the tests before it: the module's one tab, reset (ReusedTab)."""
    with tab.lent() as page:
        yield page


# --- The offline coach (shared/coach.py): the LLM of lessons 18 on, in tests ----------------


class CoachServer:
    """The offline coach in a process of its own.

    .url is the base URL an OpenAI client wants (it ends in /v1), .env the settings that point
    a lesson's app at it (OPENAI_BASE_URL, OPENAI_API_KEY); the rest are its test controls.
    """

    def __init__(self, port: int, proc):
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/v1"
        self.env = {"OPENAI_BASE_URL": self.url, "OPENAI_API_KEY": "offline-coach-test"}
        self.proc = proc

    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.root + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def requests(self) -> list[dict]:
        """The JSON bodies the coach received at /v1/chat/completions, oldest first."""
        return self._call("GET", "/_coach/requests")

    def reset(self) -> None:
        """Back to normal answers at no delay, with no requests and no stream counts."""
        self._call("POST", "/_coach/reset", {})

    def mode(self, mode: str = "ok", **options) -> dict:
        """mode("error"); mode("error", after=3); mode("slow", seconds=5); mode("drop", after=3);
        mode("cut", after=3); any of them with token_delay=0.05 (seconds per token). See shared/coach.py."""
        return self._call("POST", "/_coach/mode", {"mode": mode, **options})

    def stats(self) -> dict:
        """Streams {"started", "completed", "cancelled"} (cancelled: the client went away)."""
        return self._call("GET", "/_coach/stats")


@pytest.fixture(scope="session")
def coach_server():
    """One offline coach for the whole test process, on a free port, no delay per token."""
    servers = Servers()
    port, proc = servers.start([sys.executable, str(ROOT / "shared" / "coach.py"), "--port", "{port}",
                                "--token-delay", "0"], cwd=ROOT, what="the offline coach")
    yield CoachServer(port, proc)
    servers.stop_all()


@pytest.fixture
def coach(coach_server):
    """The session's offline coach, reset for this test: .url, .env, .requests(), .reset(),
    .mode(...), .stats()."""
    coach_server.reset()
    return coach_server


# --- Structured results (pytest --results=FILE): what make test and make check read ---------
# One JSON line per test, in the format of shared/ground/results.py: facts taken from the test
# run itself (the assert's compared values, the frames of the traceback, the response a test
# held), so no tool ever parses pytest's text.

PHASES = pytest.StashKey[dict]()
STARTED = pytest.StashKey[float]()
_compared: list = []  # (op, actual, expected) of the last failing comparison, until its report
_collect_errors: list[str] = []


def pytest_addoption(parser):
    parser.addoption("--results", default=None, metavar="FILE",
                     help="write one JSON line per test to FILE (shared/ground/results.py)")
    parser.addoption("--own-first", action="store_true",
                     help="run the lesson's own tests first, and skip those taken over from earlier "
                          "lessons once one of its own has failed (make check; needs --results)")


def pytest_configure(config):
    path = config.getoption("results")
    # Under pytest-xdist the main process empties the file, each worker appends its tests' lines
    # (one write per line: appends do not interleave), and the main process adds the session's.
    if path and not WORKER:
        Path(path).write_text("")
    config.results_out = open(path, "a") if path else None
    config.results_started = time.monotonic()
    # --own-first: this run's mark that a test of the lesson's own failed, beside its results
    config.own_missed = Path(f"{path}.own-missed") if path and config.getoption("own_first") else None
    if config.own_missed and not WORKER:
        config.own_missed.unlink(missing_ok=True)


def pytest_assertrepr_compare(config, op, left, right):
    """Called for every failing compared assert (tests and helpers.py): keep both sides in full.
    Returning None leaves pytest's own explanation as it is."""
    _compared[:] = [op, full_value(left), full_value(right)]


def full_value(value) -> str:
    try:
        if isinstance(value, dict | list | tuple | set):
            return pprint.pformat(value, width=100, sort_dicts=False)[:20_000]
        return repr(value)[:20_000]
    except Exception as error:  # a repr that fails must not hide the test's own failure
        return f"<{type(value).__name__}: repr failed: {error}>"


def graded_folder() -> Path | None:
    folder = os.environ.get("LESSON_DIR")
    return Path(folder).resolve() if folder else None


def relative(path: Path, folder: Path) -> str:
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def response_in(frames: list[tuple]) -> dict | None:
    """The HTTP response the failing test (or helper) held: status, body, and whether the
    failing statement names it ("named"). FRAMES: (frame, the statement it was running),
    innermost first. A response the statement does not name is an earlier step's (a socket test
    that logged in over HTTP first): the report says so rather than show it as the answer."""
    def is_response(value) -> bool:
        try:  # a streamed response whose body was never read raises on .text (not AttributeError)
            return isinstance(getattr(value, "status_code", None), int) and hasattr(value, "text")
        except Exception:
            return isinstance(getattr(value, "status_code", None), int)

    for frame, running in frames:
        found = [(name, value) for name, value in frame.f_locals.items()
                 if not name.startswith("_") and is_response(value)]
        if found:
            named = [(name, value) for name, value in found if re.search(rf"\b{name}\b", running)]
            name, value = (named or found)[-1]
            response = {"status": value.status_code, "body": "", "named": bool(named)}
            try:
                response["body"] = value.text[:2000]
            except Exception:  # a streamed response whose body was never read
                pass
            return response
    return None


# What Starlette raises when an app fails once its answer has started (a stream half-sent):
# the failure itself is the exception it was raised while handling.
STARTED_ANSWER = "Caught handled exception, but response already started"


def first_inside(error: BaseException) -> BaseException:
    """What went wrong, under what wraps it: the first exception an ExceptionGroup holds (a task
    group's: a stream's, a socket's), however deep, and the failure behind Starlette's "response
    already started"; else the error itself. With its own traceback, for the learner's line."""
    while True:
        if isinstance(error, BaseExceptionGroup) and error.exceptions:
            error = error.exceptions[0]
        elif isinstance(error, RuntimeError) and str(error).startswith(STARTED_ANSWER) and error.__context__:
            error = error.__context__
        else:
            return error


def failure_of(call, report, phase: str, started: float) -> results.Failure:
    excinfo = call.excinfo
    group, error = excinfo.value, first_inside(excinfo.value)
    entries = list(excinfo.traceback)
    tests_dir = Path(__file__).resolve().parent

    def path_of(entry) -> Path:
        return Path(str(entry.path)).resolve()

    def statement(entry) -> str:
        """The whole statement the entry's frame was running, on one line."""
        return statement_of(path_of(entry), entry.lineno + 1) or " ".join(str(entry.statement).split())[:300]

    ours = [e for e in entries if path_of(e).is_relative_to(tests_dir)]
    module = type(error).__module__
    # A long message (a server's whole output, quoted) keeps its start and its end, where a
    # traceback ends with the exception and the frames that raised it.
    text = str(error)
    message = text if len(text) <= 4000 else f"{text[:1000]}\n...\n{text[-3000:]}"
    name = type(error).__name__
    if error is not group:
        name += f" (inside {type(group).__name__})"
    failure = results.Failure(exception=name, message=message, phase=phase,
                              module="" if module in ("builtins", "_pytest.outcomes") else module,
                              report=report.longreprtext[-4000:])
    # A server this test talked to (uvicorn) that logged a traceback meanwhile: a 500's reason.
    server_error, server_frames = "", []
    for log in list(LIVE_LOGS):
        end, frames = traceback_end(log.text(since=started))
        if end:
            server_error, server_frames = end, frames
    failure.server_error = server_error[:500]
    if ours:
        entry = ours[-1]
        failure.statement = statement(entry)
        failure.statement_at = f"{relative(path_of(entry), ROOT)}:{entry.lineno + 1}"
        failure.response = response_in([(e.frame, statement(e)) for e in reversed(ours)])
    if _compared and isinstance(error, AssertionError):
        failure.op, failure.actual, failure.expected = _compared
    folder = graded_folder()
    if folder:
        where = [(path_of(e), e.lineno + 1) for e in entries if path_of(e).is_relative_to(folder)
                 and "site-packages" not in path_of(e).parts]
        if error is not group:  # the frames of what went wrong inside, deepest last
            inside = [(Path(frame.filename).resolve(), frame.lineno or 0)
                      for frame in traceback.extract_tb(error.__traceback__)]
            where += [(path, line) for path, line in inside
                      if path.is_relative_to(folder) and "site-packages" not in path.parts]
        source = Path(error.filename).resolve() if isinstance(error, SyntaxError) and error.filename else None
        if source and source.is_relative_to(folder):  # a syntax error: the file and line it names
            where.append((source, error.lineno or 0))
        if not where:  # in a server's traceback, or one quoted in the error (a server that exited)
            frames = server_frames or frames_in(str(error))
            where = [(Path(file).resolve(), line) for file, line in frames
                     if Path(file).resolve().is_relative_to(folder) and "site-packages" not in file]
        if where:
            failure.learner_at = f"{relative(where[-1][0], folder)}:{where[-1][1]}"
    return failure


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[STARTED] = time.monotonic()
    # make check (--own-first): once a test of the lesson's own has failed, the tests taken over
    # from earlier lessons are skipped, before their fixtures start. A red check is mostly a
    # lesson's new requirements missed, and re-proving the earlier ones took most of its time
    # (lesson 25 on lesson 24's folder: 6 s of its own tests, 59 s of 24's, which all passed).
    # Processes share the mark through a file: a test already running elsewhere runs to its end.
    missed = item.config.own_missed
    if missed and taken_over(item) and missed.exists():
        pytest.skip(results.HELD_BACK)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and item.config.own_missed and not taken_over(item):
        item.config.own_missed.touch()
    out = item.config.results_out
    if out is None:
        return report
    phases = item.stash.setdefault(PHASES, {"seconds": 0.0, "outcome": "passed", "failure": None, "skip": ""})
    phases["seconds"] += report.duration
    if report.failed and phases["failure"] is None:
        phases["outcome"] = "failed"
        try:
            phases["failure"] = failure_of(call, report, call.when, item.stash.get(STARTED, 0.0))
        except Exception as error:  # the facts are a help: never let them break the test run
            phases["failure"] = results.Failure(exception=type(call.excinfo.value).__name__,
                                                message=f"{call.excinfo.value} (details lost: {error!r})",
                                                phase=call.when, report=report.longreprtext[-4000:])
    elif report.skipped and phases["outcome"] == "passed":
        phases["outcome"] = "skipped"
        phases["skip"] = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    _compared.clear()
    if call.when == "teardown":
        spec = getattr(item, "callspec", None)
        out.write(results.to_line(results.TestResult(
            nodeid=item.nodeid, file=item.path.name, function=getattr(item, "originalname", item.name),
            case=spec.id if spec else None, outcome=phases["outcome"], seconds=round(phases["seconds"], 3),
            skip_reason=phases["skip"], failure=phases["failure"])))
        out.flush()  # to_line is one line; flushed at once, it is one write
    return report


def pytest_collectreport(report):
    if report.failed:
        _collect_errors.append(f"{report.nodeid}: {report.longreprtext[-3000:]}")


def pytest_sessionfinish(session, exitstatus):
    if session.config.own_missed and not WORKER:
        session.config.own_missed.unlink(missing_ok=True)
    out = session.config.results_out
    if out is not None and WORKER:
        out.close()
        session.config.results_out = None
    elif out is not None:
        seconds = time.monotonic() - session.config.results_started
        out.write(results.to_line(results.Session(
            exitstatus=int(exitstatus), collected=session.testscollected, seconds=round(seconds, 2),
            errors=_collect_errors)))
        out.close()
        session.config.results_out = None
