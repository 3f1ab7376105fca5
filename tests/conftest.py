"""Fixtures every lesson's tests share (plain helpers are in helpers.py; never import this file).

One pytest process tests one lesson (`make test` starts one per lesson). The folder under test
is LESSON_DIR when set (so the same tests can grade a learner's folder or another snapshot),
otherwise the lesson that the test file's name points at (test_09_... -> lessons/09-...).
That folder goes first on sys.path, so `import main` imports the lesson's own main.py (from
lesson 22 on the app is a package, `app.main`: lessons.toml's `app` names it, see lesson.app).

Fixtures:
  lesson        the Lesson under test (number, folder, needs, app) with .path = the folder tested
  db_env        DB_* settings of this lesson's own fresh test database aic_test_NN
  db            a psycopg2 connection (autocommit) to that database, to look at rows
  user          (16 on) a fresh user straight into the migrated table and a token: {"id", "token"}
  closed_port   a local port where nothing listens: point DB_PORT there for "database down"
  app           the lesson's FastAPI app (main.app; app.main.app from lesson 22 on)
  client        a TestClient around it; startup and shutdown (lifespan) run
  fresh_app     fresh_app(NAME=value, ...) -> a new app from main.py (or the app package) imported
                again with those environment variables (settings read at import): no uvicorn
  servers       a helpers.Servers for this test: servers.start(argv, cwd, env) on a free "{port}"
  live_api      starts the lesson's app in a real uvicorn on a free port: live_api(env={...})
  static_server serves a folder over HTTP on a free port: static_server(folder, host=...)
  pages         (module) the lesson's frontend/ served from http://localhost:P with a live API
                that allows that origin; config.js points at it: .url, .api, .folder, .port
  browser       (session) one headless Chromium (Debian's chromium, driven by Playwright)
  page          a fresh page (own context: no cookies or localStorage from other tests)
  coach         the offline OpenAI-compatible coach (one per session), reset for each test:
                .url, .env (settings that point an app at it), .requests(), .mode(...), .stats()

Speed: a lesson's tests run in well under 10 s. Start a server or a browser once per module or
session where the tests only add to what it serves (`pages`, `browser`), not once per test.
"""

import fcntl
import importlib
import importlib.util
import os
import re
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import (
    IN_CI,
    JWT_SECRET,
    ROOT,
    Servers,
    alembic,
    connect,
    pages_and_api,
    serve_folder,
    user_with_token,
)

sys.path.insert(0, str(ROOT / "shared"))
from lessons import find  # noqa: E402

# Lessons 16 on refuse to start without a secret; helpers.token_for signs with the same one.
# (A test file may set its own before the app is imported: variables already set win over .env.)
os.environ["JWT_SECRET"] = JWT_SECRET
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")


def lesson_numbers(items) -> set[str]:
    return {m.group(1) for item in items if (m := re.match(r"test_(\d\d)_", item.path.name))}


def pytest_collection_modifyitems(config, items):
    numbers = lesson_numbers(items)
    if len(numbers) > 1:
        pytest.exit("one lesson per pytest process (lessons share module names): "
                    "use `make test` or `make test LESSON=NN`", returncode=4)
    config.lesson_number = numbers.pop() if numbers else None


@pytest.fixture(scope="session")
def lesson(request):
    number = os.environ.get("LESSON") or request.config.lesson_number
    if number is None:
        pytest.skip("not a lesson test")
    registered = find(number)
    folder = Path(os.environ.get("LESSON_DIR") or registered.path).resolve()
    sys.path.insert(0, str(folder))
    return LessonUnderTest(registered.number, registered.folder, registered.needs, folder, registered.app)


@dataclass(frozen=True)
class LessonUnderTest:
    number: str
    folder: str
    needs: tuple[str, ...]
    path: Path  # the folder whose code is tested
    app: str = "main:app"  # what uvicorn serves, module:attribute (lessons.toml's `app`)

    def import_app(self):
        """The FastAPI app object: `main.app`, or `app.main.app` for an app package."""
        module, _, attribute = self.app.partition(":")
        return getattr(importlib.import_module(module), attribute)


@pytest.fixture(scope="session")
def db_env(lesson):
    """A fresh database for this lesson's tests; the learner's aic_db is never touched.

    Sets DB_* in os.environ before the lesson's code is imported, so its settings point here.
    """
    import devdb

    # Two runs of the same lesson at once would drop each other's database: the second waits.
    (ROOT / ".data").mkdir(exist_ok=True)
    # A run against another lesson's code (make test PREVIOUS=1) names a database of its own.
    name = f"aic_test_{lesson.number}{os.environ.get('TEST_DB_SUFFIX', '')}"
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
def app(lesson, request):
    if "db" in lesson.needs:
        request.getfixturevalue("db_env")
        if (lesson.path / "alembic").is_dir():
            alembic(lesson.path, "upgrade", "head")  # as `make run` does
    return lesson.import_app()


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture
def fresh_app(app, lesson, monkeypatch):
    """fresh_app(**env): the lesson's main.py run again as a module of its own, with ENV set for
    this test; returns its app. The `app` of the other tests (module `main`) stays as it is.
    An app package (lesson 22 on: settings read once, in app.config) is imported again whole,
    its modules then put back as they were."""

    def load(**env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        if lesson.app == "main:app":
            spec = importlib.util.spec_from_file_location("main_again", lesson.path / "main.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.app
        package = lesson.app.split(".")[0]
        kept = {name: m for name, m in sys.modules.items() if name.split(".")[0] == package}
        for name in kept:
            del sys.modules[name]
        try:
            return lesson.import_app()
        finally:
            for name in [n for n in sys.modules if n.split(".")[0] == package]:
                del sys.modules[name]
            sys.modules.update(kept)

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


@pytest.fixture
def live_api(lesson, servers, request):
    """live_api(env=None) -> LiveApi with .url ("http://127.0.0.1:PORT") and .stop()."""
    if "db" in lesson.needs:
        request.getfixturevalue("db_env")

    def start(env=None):
        port, proc = servers.start(
            [sys.executable, "-m", "uvicorn", lesson.app, "--host", "127.0.0.1", "--port", "{port}"],
            cwd=lesson.path, env=env, what="the lesson's API")
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
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
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


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


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
        import json
        import urllib.request

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
        any of them with token_delay=0.05 (seconds per token). See shared/coach.py."""
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
