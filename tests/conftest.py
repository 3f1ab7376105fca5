"""Fixtures every lesson's tests share.

One pytest process tests one lesson (`make test` starts one per lesson). The folder under test
is LESSON_DIR when set (so the same tests can grade a learner's folder or another snapshot),
otherwise the lesson that the test file's name points at (test_09_... -> lessons/09-...).
That folder goes first on sys.path, so `import main` imports the lesson's own main.py.

Fixtures:
  lesson        the Lesson under test (number, folder, needs) with .path = the folder tested
  db_env        DB_* settings of this lesson's own fresh test database aic_test_NN
  db            a psycopg2 connection (autocommit) to that database, to look at rows
  closed_port   a local port where nothing listens: point DB_PORT there for "database down"
  app           the lesson's FastAPI app (main.app)
  client        a TestClient around it; startup and shutdown (lifespan) run
  live_api      starts the lesson's app in a real uvicorn on a free port: live_api(env={...})
  static_server serves a folder over HTTP on a free port: static_server(folder, host=...)
  page          a page in real headless Chromium (Debian's chromium, driven by Playwright)
"""

import fcntl
import importlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "shared"))
from lessons import find  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"


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
    return LessonUnderTest(registered.number, registered.folder, registered.needs, folder)


@dataclass(frozen=True)
class LessonUnderTest:
    number: str
    folder: str
    needs: tuple[str, ...]
    path: Path  # the folder whose code is tested


@pytest.fixture(scope="session")
def db_env(lesson):
    """A fresh database for this lesson's tests; the learner's aic_db is never touched.

    Sets DB_* in os.environ before the lesson's code is imported, so its settings point here.
    """
    import devdb

    # Two runs of the same lesson at once would drop each other's database: the second waits.
    (ROOT / ".data").mkdir(exist_ok=True)
    with open(ROOT / ".data" / f"aic_test_{lesson.number}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        settings = devdb.create_test_database(f"aic_test_{lesson.number}")
        os.environ.update(settings)
        yield settings


@pytest.fixture
def db(db_env):
    import psycopg2

    conn = psycopg2.connect(host=db_env["DB_HOST"], port=db_env["DB_PORT"], dbname=db_env["DB_NAME"],
                            user=db_env["DB_USER"], password=db_env["DB_PASSWORD"])
    conn.autocommit = True
    yield conn
    conn.close()


def migrate(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """Runs `alembic <args>` in the lesson folder (default: upgrade head), as `make run` does."""
    return subprocess.run([sys.executable, "-m", "alembic", *(args or ("upgrade", "head"))], cwd=folder,
                          env=os.environ.copy(), capture_output=True, text=True, check=True)


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
            migrate(lesson.path)
    return importlib.import_module("main").app


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{proc.stdout.read()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s:\n{proc.stdout.read()}")


class Servers:
    """Starts processes on free ports and stops them all when the test ends."""

    def __init__(self):
        self.procs = []

    def start(self, argv, cwd, env=None, what="server") -> tuple[int, subprocess.Popen]:
        port = free_port()
        argv = [a.replace("{port}", str(port)) for a in argv]
        proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **(env or {})},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        wait_for_port(port, proc, what)
        return port, proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()

    def stop_all(self):
        for proc in self.procs:
            self.stop(proc)


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
            [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", "{port}"],
            cwd=lesson.path, env=env, what="the lesson's API")
        return LiveApi(f"http://127.0.0.1:{port}", proc, servers)

    return start


@pytest.fixture
def static_server(servers):
    """static_server(folder, host="127.0.0.1") -> base URL of `python -m http.server` there."""

    def start(folder, host="127.0.0.1"):
        port, _ = servers.start([sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
                                cwd=folder, what="http.server")
        return f"http://{host}:{port}"

    return start


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
