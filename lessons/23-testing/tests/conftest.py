"""What the tests share: a database of their own, a client, a fake LLM, users and tokens.

pytest runs this file first, then hands its fixtures to any test that names one as a parameter:
`def test_x(client, user)` gets a client and a fresh user.

The database: the server and login of the app's own settings (DB_HOST, DB_PORT, DB_USER,
DB_PASSWORD, from the environment or .env), and the database named by TEST_DB_NAME, by default
the app's DB_NAME with "_test" added (aic_db_test). Each run creates it afresh and migrates it
with Alembic; each test starts with empty tables. The app's own database is never touched.
"""

import itertools
import json
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.config import ENV_FILE, Settings
from helpers import PASSWORD, TEST_SECRET, FakeLLM, bearer, make_token

# --- settings, before anything imports the app -------------------------------------------------
# The app reads its settings once, on import (get_settings() keeps them). So this comes first:
# the environment wins over .env, and tells the app which database and which secret to use.
DEV_DB = Settings(JWT_SECRET=TEST_SECRET).DB_NAME  # the app's own database, from .env
TEST_DB = os.environ.get("TEST_DB_NAME") or f"{DEV_DB}_test"
if TEST_DB == DEV_DB or not re.fullmatch(r"[a-z_][a-z0-9_]*", TEST_DB):
    raise SystemExit(f"TEST_DB_NAME={TEST_DB!r}: name a database of the tests' own (not {DEV_DB})")
os.environ.update(DB_NAME=TEST_DB, JWT_SECRET=TEST_SECRET)

from app.config import get_settings  # noqa: E402  (imported after the settings above are set)
from app.db import SessionLocal, engine  # noqa: E402
from app.deps import get_llm  # noqa: E402
from app.llm import LLM  # noqa: E402
from app.main import app  # noqa: E402
from app.models import User  # noqa: E402
from app.security import pwd_context  # noqa: E402

# bcrypt is slow on purpose, about a quarter of a second a hash, and the tests make a user with a
# password in almost every test: in this test run, the fewest rounds bcrypt allows.
pwd_context.update(bcrypt__rounds=4)


# --- the database --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def database():
    """The test database, new for each run: dropped (if an earlier run left it), created, migrated.

    scope="session": once for the whole run, not once per test (creating takes a second).
    """
    server = create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{TEST_DB}"'))
        # A commit need not wait until the disk has it: a crash would lose only test data. On a
        # busy disk that is 10 ms saved on each of the suite's hundreds of commits.
        conn.execute(text(f'ALTER DATABASE "{TEST_DB}" SET synchronous_commit = off'))
    server.dispose()
    # The tables as the migrations make them, the way `alembic upgrade head` makes them for the
    # app. (Without alembic.ini: its logging setup would set the root logger to WARNING, and the
    # app's INFO lines would be lost.)
    migrations = Config()
    migrations.set_main_option("script_location", str(ENV_FILE.parent / "alembic"))
    migrations.set_main_option("path_separator", "os")
    command.upgrade(migrations, "head")
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def empty_tables(database):
    """Every test starts with empty tables (autouse: without being asked for), whatever the one
    before it wrote. TRUNCATE also empties messages, whose rows point at users."""
    with database.begin() as conn:
        conn.execute(text("TRUNCATE users, messages"))


# --- the LLM: a fake for the paid service --------------------------------------------------------

@pytest.fixture
def llm() -> FakeLLM:
    """The LLM every endpoint gets (get_llm is overridden in `client`): see helpers.FakeLLM."""
    return FakeLLM()


def real_llm(url: str, timeout: float = 0.2) -> LLM:
    """The app's own LLM class, its real clients with a key, talking to the server at url and
    waiting at most `timeout` seconds for an answer."""
    return LLM(Settings(JWT_SECRET=TEST_SECRET, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=url,
                        OPENAI_TIMEOUT=timeout))


@pytest.fixture
def slow_llm():
    """The real LLM, at a server that takes the connection and never answers: a coach too slow."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        llm = real_llm(f"http://127.0.0.1:{server.getsockname()[1]}/v1")
        yield llm
        anyio.run(llm.close)


class PageHandler(BaseHTTPRequestHandler):
    """Answers every question with 200 and a page, as a proxy or a captive portal in between
    would: HTML for a plain answer, a `data:` line that is not JSON for a stream."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        page = b"<html><body>Please sign in to the network</body></html>"
        streamed = body.get("stream")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if streamed else "text/html")
        content = b"data: " + page + b"\n\n" if streamed else page
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, *args):  # quiet: no line per request in the test output
        pass


@pytest.fixture
def page_llm():
    """The real LLM, at a server that answers 200 with a page, not a chat completion."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    # shutdown() at the end waits until the server's loop looks again: every 0.05 s here, not
    # the default 0.5 s (half a second lost by each test that uses this fixture).
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    llm = real_llm(f"http://127.0.0.1:{server.server_address[1]}/v1", timeout=5)
    yield llm
    anyio.run(llm.close)
    server.shutdown()
    server.server_close()


@pytest.fixture
def down_llm():
    """The real LLM, at an address where nothing listens (connections refused): a coach down."""
    with socket.socket() as reserved:  # bound but not listening: nothing else takes the port
        reserved.bind(("127.0.0.1", 0))
        # A refused connection fails at once; a timeout as long as 5 s never fires first, even
        # on a machine so busy that 0.2 s passes before the client has tried.
        llm = real_llm(f"http://127.0.0.1:{reserved.getsockname()[1]}/v1", timeout=5)
        yield llm
        anyio.run(llm.close)


# --- the app -------------------------------------------------------------------------------------

@pytest.fixture
def settings() -> Settings:
    """The settings every endpoint gets (get_settings is overridden): the test secret, tokens
    valid for 5 minutes, whatever the .env says."""
    return Settings(JWT_SECRET=TEST_SECRET, EXPIRY_MINUTES=5)


@pytest.fixture
def client(database, settings, llm):
    """A TestClient: requests go straight to the app, in this process, no server or port.

    dependency_overrides: wherever an endpoint depends on get_settings or get_llm, FastAPI calls
    these instead. `with` runs the app's lifespan, as uvicorn would at start and stop.
    """
    app.dependency_overrides[get_settings] = lambda: settings
    app.dependency_overrides[get_llm] = lambda: llm
    with TestClient(app) as client:
        yield client
    app.dependency_overrides.clear()


# --- factories: a user, a token ------------------------------------------------------------------

numbers = itertools.count(1)


@pytest.fixture
def make_user(database):
    """make_user(name="Ada") -> a new User, straight into the table, with the password PASSWORD
    and an email no other user has."""

    def make(name: str = "Ada") -> User:
        with SessionLocal(expire_on_commit=False) as db:
            user = User(name=name, email=f"user{next(numbers)}@example.com",
                        password_hash=pwd_context.hash(PASSWORD))
            db.add(user)
            db.commit()
            return user

    return make


@pytest.fixture
def user(make_user) -> User:
    return make_user()


@pytest.fixture
def auth(user, settings) -> dict:
    """The headers of a request by `user`, logged in."""
    return bearer(make_token(user.id, settings))
