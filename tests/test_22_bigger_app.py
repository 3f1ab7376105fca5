"""Lesson 22: the app of lesson 21 as an `app/` package, with its settings checked at startup.

Same behaviour: every test of lesson 21 runs here unchanged, against this lesson's folder (the
import below; conftest derives the folder from this file's name and serves `app.main:app`).
Then the lesson's own: the package's layout, the settings (one line for a bad one, the
environment over .env over the defaults), and dependency_overrides swapping the LLM and the
settings of a running app, with no re-import and no environment to change.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime

import jwt
import pytest
from fastapi import APIRouter, WebSocketDisconnect
from fastapi.testclient import TestClient
from pydantic import SecretStr

from helpers import LLM_FAILURES, alembic, app_socket, bearer, token_for, traceback_end
from test_21_websocket import *  # noqa: F403  (lesson 21's tests: the same app, so they pass here too)

ASKED = "How do I prepare for a system design interview?"
OTHER_SECRET = "another-secret-that-is-at-least-32-bytes-long"
MODULES = ["main", "config", "db", "models", "schemas", "security", "deps", "llm"]
ROUTERS = ["users", "auth", "chat", "ws"]


@pytest.fixture
def overrides(app):
    """app.dependency_overrides, emptied again after the test."""
    yield app.dependency_overrides
    app.dependency_overrides.clear()


def events(text: str) -> list[tuple[str, dict]]:
    """A text/event-stream body as (event name, data) pairs; an event without a name is "message"."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            found.append((fields.get("event", "message"), json.loads(fields["data"])))
    return found


def socket_refused(client, token: str) -> int:
    """The close code the socket answers this token with (a test client socket, in-process)."""
    with app_socket(client) as ws:
        ws.send_json({"token": token})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    return closed.value.code


def socket_answer(client, token: str, message: str = ASKED) -> str:
    """The answer's tokens joined, after the socket said ready and before it said done."""
    with app_socket(client) as ws:
        ws.send_json({"token": token})
        assert ws.receive_json() == {"type": "ready"}
        ws.send_json({"message": message})
        pieces = []
        while (frame := ws.receive_json())["type"] == "token":
            pieces.append(frame["content"])
    assert frame == {"type": "done"}, frame
    return "".join(pieces)


# --- the layout --------------------------------------------------------------------------------

def test_the_app_is_a_package_with_a_module_per_concern_and_a_router_per_topic(lesson, app):
    """The app is the package app/: main, config, db, models, schemas, security, deps, llm, routers/.
    app/routers/ holds users, auth, chat and ws, each with an APIRouter named `router`; no main.py
    is left at the top of the folder."""
    from importlib import import_module

    folder = lesson.path / "app"
    assert [m for m in MODULES if not (folder / f"{m}.py").is_file()] == []
    assert [f"{part}/__init__.py" for part in ("app", "app/routers")
            if not (lesson.path / part / "__init__.py").is_file()] == [], \
        "app/ and app/routers/ each need an __init__.py (it may be empty): it makes the folder a package"
    for name in ROUTERS:
        assert isinstance(getattr(import_module(f"app.routers.{name}"), "router", None), APIRouter), \
            f"app/routers/{name}.py has no APIRouter named router"
    assert not (lesson.path / "main.py").exists(), \
        "main.py is still at the top of the folder: the app is made in app/main.py now, delete the old one"


def test_schemas_holds_the_api_models_and_security_the_tokens(app):
    """app/schemas.py holds the Pydantic models of the API; app/security.py has create_token and decode_token.
    The models: every schema /docs lists (but FastAPI's own validation errors) is a class
    defined in app/schemas.py, not only imported there."""
    from app import schemas, security

    listed = app.openapi()["components"]["schemas"]
    names = {name.removesuffix("-Input").removesuffix("-Output") for name in listed}
    elsewhere = sorted(name for name in names - {"HTTPValidationError", "ValidationError"}
                       if getattr(getattr(schemas, name, None), "__module__", None) != "app.schemas")
    assert elsewhere == [], f"models of the API that app/schemas.py does not define: {elsewhere}"
    missing = [name for name in ("create_token", "decode_token")
               if not callable(getattr(security, name, None))]
    assert missing == [], f"app/security.py has no {' and no '.join(missing)}"


def test_the_docs_list_every_endpoint_of_21_grouped_by_router_tags(app):
    """/docs lists the paths of lesson 21, each under a tag: users, auth, chat (any tag for the rest)."""
    paths = app.openapi()["paths"]
    tags = {(path, method): op.get("tags") for path, ops in paths.items() for method, op in ops.items()}
    assert set(paths) == {"/api/time", "/api/test-db", "/api/users", "/api/me", "/api/login", "/api/chat",
                          "/api/chat/stream", "/api/chat/history"}
    assert tags[("/api/users", "post")] == tags[("/api/me", "get")] == tags[("/api/me", "put")] == ["users"]
    assert tags[("/api/login", "post")] == ["auth"]
    assert tags[("/api/chat", "post")] == tags[("/api/chat/stream", "post")] == ["chat"]
    assert tags[("/api/chat/history", "get")] == ["chat"]
    assert all(tags.values()), tags  # every endpoint sits under a heading


# What reads the environment: os.getenv and os.environ (however os or they were imported), and the
# libraries made for it: python-dotenv (load_dotenv) and pydantic-settings.
OS_READERS = {"getenv", "getenvb", "environ", "environb"}
ENV_LIBRARIES = {"dotenv", "pydantic_settings"}


def environment_reads(source: str) -> list[str]:
    """Where a module's code reads the environment, as "line N: what" (from its syntax tree)."""
    tree = ast.parse(source)
    os_names, found = {"os"}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ENV_LIBRARIES:
                    found.append(f"line {node.lineno}: import {alias.name}")
                elif alias.name == "os" or alias.name.startswith("os.") and not alias.asname:
                    os_names.add(alias.asname or "os")
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {alias.name for alias in node.names}
            from_os = node.module == "os" and names & (OS_READERS | {"*"})
            if node.module.split(".")[0] in ENV_LIBRARIES or from_os:
                found.append(f"line {node.lineno}: from {node.module} import {', '.join(sorted(names))}")
    found += [f"line {node.lineno}: {node.value.id}.{node.attr}" for node in ast.walk(tree)
              if isinstance(node, ast.Attribute) and node.attr in OS_READERS
              and isinstance(node.value, ast.Name) and node.value.id in os_names]
    return sorted(found, key=lambda where: int(where.split()[1].rstrip(":")))


def test_only_config_reads_the_environment(lesson):
    """Only app/config.py reads the environment: no os.getenv, os.environ or load_dotenv elsewhere."""
    # The app's code: the package, the modules beside it (lesson 21's main.py, auth.py, ...) and
    # alembic/env.py; not a test suite of the folder's own (tests/ from lesson 23, or test files
    # beside app/), which may well set the environment.
    folder = lesson.path
    beside = [path for path in folder.glob("*.py") if not path.name.startswith(("test_", "conftest"))]
    code = [*(folder / "app").rglob("*.py"), *beside, folder / "alembic" / "env.py"]
    readers = {str(path.relative_to(folder)): reads for path in code
               if path != folder / "app" / "config.py" and path.is_file()
               and (reads := environment_reads(path.read_text()))}
    assert readers == {}, "only app/config.py may read the environment: take the setting from get_settings()"


ENGINE_MAKERS = {"create_engine", "create_async_engine", "engine_from_config"}


def engines_made(source: str) -> list[str]:
    """Where a module's code makes a database engine, as "line N: create_engine" (its syntax tree)."""
    tree = ast.parse(source)
    makers = set(ENGINE_MAKERS)  # and the names they are imported as (import create_engine as make)
    makers |= {alias.asname for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               for alias in node.names if alias.name in ENGINE_MAKERS and alias.asname}

    def name(call: ast.Call) -> str:  # create_engine(...) or sqlalchemy.create_engine(...)
        return getattr(call.func, "id", "") or getattr(call.func, "attr", "")

    calls = sorted((node for node in ast.walk(tree) if isinstance(node, ast.Call)),
                   key=lambda call: call.lineno)
    return [f"line {call.lineno}: {name(call)}" for call in calls if name(call) in makers]


def test_only_app_db_makes_a_database_engine(lesson):
    """Only app/db.py makes a database engine: no create_engine elsewhere in app/ or alembic/env.py.
    Every session, the socket's and the stream's too, comes from its engine and its pool (a test
    fills that pool), and alembic/env.py takes it from there."""
    folder = lesson.path
    db_py = folder / "app" / "db.py"
    assert db_py.is_file() and engines_made(db_py.read_text()), "app/db.py makes no engine (create_engine)"
    code = [path for path in [*(folder / "app").rglob("*.py"), folder / "alembic" / "env.py"]
            if path.is_file() and path != db_py]
    makers = {str(path.relative_to(folder)): made for path in code
              if (made := engines_made(path.read_text()))}
    assert makers == {}, "only app/db.py may make an engine: import app.db's engine (or its SessionLocal)"


def test_alembic_reads_the_package_and_finds_the_models_and_the_migrations_agree(lesson, app):
    """alembic/env.py takes the engine and Base from the package; `alembic check` finds nothing to do."""
    env_py = (lesson.path / "alembic" / "env.py").read_text()
    assert "from app." in env_py
    assert "No new upgrade operations detected" in alembic(lesson.path, "check")


# --- settings -----------------------------------------------------------------------------------

def test_settings_are_read_once_and_typed(app):
    """get_settings() returns one cached Settings, each setting typed, JWT_SECRET a SecretStr.
    CORS_ORIGINS is a list, OPENAI_TIMEOUT a number, and the secret never shows in a print or a log."""
    from app.config import Settings, get_settings

    settings = get_settings()
    assert isinstance(settings, Settings) and get_settings() is settings
    assert isinstance(settings.CORS_ORIGINS, list) and isinstance(settings.OPENAI_TIMEOUT, float)
    assert isinstance(settings.JWT_SECRET, SecretStr)
    assert settings.JWT_SECRET.get_secret_value() == os.environ["JWT_SECRET"]
    assert os.environ["JWT_SECRET"] not in repr(settings) + str(settings)


def test_the_environment_wins_over_dot_env_which_wins_over_the_defaults(app, tmp_path, monkeypatch):
    """The environment wins over .env, which wins over the defaults; an empty value is not given."""
    from app.config import Settings

    env_file = tmp_path / ".env"
    env_file.write_text("EXPIRY_MINUTES=5\nOPENAI_MODEL=model-from-dot-env\nOPENAI_TIMEOUT=\n"
                        "CORS_ORIGINS=http://localhost:8001, https://coach.example\n")
    monkeypatch.setenv("EXPIRY_MINUTES", "7")
    for name in ("OPENAI_MODEL", "OPENAI_TIMEOUT", "CORS_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=env_file)
    assert settings.EXPIRY_MINUTES == 7  # the environment
    assert settings.OPENAI_MODEL == "model-from-dot-env"  # .env
    assert settings.OPENAI_TIMEOUT == 30  # the default: an empty value counts as not given
    assert settings.CORS_ORIGINS == ["http://localhost:8001", "https://coach.example"]


def test_the_dot_env_read_is_the_one_beside_app_wherever_the_app_starts(lesson, app, tmp_path):
    """The .env read is the one beside app/, wherever the app is started from.
    A copy of app/ with a .env beside it, started from another folder that holds a .env too."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    shutil.copytree(lesson.path / "app", project / "app", ignore=shutil.ignore_patterns("__pycache__"))
    (project / ".env").write_text("OPENAI_MODEL=model-beside-app\n")
    elsewhere.mkdir()
    (elsewhere / ".env").write_text("OPENAI_MODEL=model-of-the-folder-it-started-in\n")
    env = {name: value for name, value in os.environ.items() if name != "OPENAI_MODEL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", "from app.config import get_settings; "
                           "print(get_settings().OPENAI_MODEL)"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "model-beside-app", \
        "the .env read is the one of the folder the app started in: give env_file the path beside app/"


# (the bad setting, how the line starts, what it says after that). Pydantic's own words for its
# own rules; our validators' words (JWT_SECRET, CORS_ORIGINS) right after the name, without the
# "Value error, " pydantic puts before a ValueError's text.
BAD_SETTINGS = {
    "short secret": ({"JWT_SECRET": "short"}, "JWT_SECRET: at least 32 bytes", ""),
    "zero timeout": ({"OPENAI_TIMEOUT": "0"}, "OPENAI_TIMEOUT: ", "greater than 0"),
    "timeout not a number": ({"OPENAI_TIMEOUT": "soon"}, "OPENAI_TIMEOUT: ", "number"),
    "negative expiry": ({"EXPIRY_MINUTES": "-5"}, "EXPIRY_MINUTES: ", "greater than 0"),
    "port not a number": ({"DB_PORT": "five"}, "DB_PORT: ", "integer"),
    "origin without scheme": ({"CORS_ORIGINS": "localhost:8001"},
                              "CORS_ORIGINS: 'localhost:8001' is not an origin", ""),
    "url without scheme": ({"OPENAI_BASE_URL": "localhost:11434/v1"}, "OPENAI_BASE_URL: ", "URL"),
}


@pytest.mark.parametrize("env, starts, says", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_a_bad_setting_stops_the_app_with_one_line_naming_it(fresh_app, env, starts, says):
    """A bad setting stops the import of app.main: SystemExit with one line, NAME: what is wrong.
    Hint: catch pydantic's ValidationError where the settings are read (get_settings) and
    raise SystemExit(...) with a message built from error.errors(), `from None`."""
    with pytest.raises(SystemExit) as stopped:
        fresh_app(**env)
    message = str(stopped.value.code)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(starts), f"the line should start with {starts!r}; it is: {message}"
    assert says in message, f"the line should say {says!r}; it is: {message}"


def test_two_bad_settings_are_named_in_the_same_line(fresh_app):
    """Two bad settings are named in the same line."""
    with pytest.raises(SystemExit) as stopped:
        fresh_app(JWT_SECRET="short", OPENAI_TIMEOUT="-1")
    [line] = str(stopped.value.code).splitlines()
    assert "JWT_SECRET: " in line and "OPENAI_TIMEOUT: " in line


def test_uvicorn_stops_with_one_line_when_jwt_secret_is_short(lesson, db_env):
    """uvicorn app.main:app with JWT_SECRET=short prints one line, no traceback, and exits non-zero."""
    try:
        done = subprocess.run([sys.executable, "-m", "uvicorn", lesson.app, "--port", "0"],
                              cwd=lesson.path, env={**os.environ, "JWT_SECRET": "short"},
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the app started with a 5-byte JWT_SECRET")
    output = (done.stdout + done.stderr).strip()
    lines = output.splitlines()
    assert len(lines) == 1, f"it printed {len(lines)} lines: {traceback_end(output)[0] or output[-300:]}"
    assert done.returncode != 0, lines
    assert lines[0].startswith("JWT_SECRET: at least 32 bytes"), lines


def test_cors_origins_come_from_the_settings(fresh_app):
    """The CORS middleware allows exactly the origins of CORS_ORIGINS (comma-separated).
    A browser's Origin never ends in `/`: one written so in the setting is dropped."""
    client = TestClient(fresh_app(CORS_ORIGINS="http://a.example:8001, https://b.example/"))
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    for origin in ("http://a.example:8001", "https://b.example"):
        r = client.options("/api/me", headers={"Origin": origin, **preflight})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin, r.text
    r = client.options("/api/me", headers={"Origin": "http://localhost:8001", **preflight})
    assert r.status_code == 400 and "access-control-allow-origin" not in r.headers


# --- the LLM: made in the lifespan, reached through a dependency --------------------------------

def test_the_llm_clients_are_made_at_startup_and_closed_at_shutdown(app):
    """The lifespan puts an LLM in app.state.llm and closes its two clients when the app stops.
    .client is an OpenAI, .async_client an AsyncOpenAI."""
    with TestClient(app):
        llm = app.state.llm
        assert not llm.client.is_closed() and not llm.async_client.is_closed()
    assert llm.client.is_closed() and llm.async_client.is_closed()


class CannedCoach:
    """A stand-in for app.llm.LLM: the same two methods, the same answer every time, no network."""

    PIECES = ["Practise ", "out ", "loud."]

    def __init__(self):
        self.asked = []  # the conversations it was sent

    def ask(self, messages: list[dict]) -> str:
        self.asked.append(messages)
        return "".join(self.PIECES)

    async def stream(self, messages: list[dict]):
        self.asked.append(messages)
        for piece in self.PIECES:
            yield piece


def test_dependency_overrides_swap_the_llm_for_chat_stream_and_socket(app, overrides, coach, user):
    """app.dependency_overrides[get_llm] swaps the LLM of /api/chat, /api/chat/stream and /ws/chat.
    Hint: every endpoint, the socket too, gets the LLM from the get_llm dependency in app/deps.py."""
    from app.deps import get_llm

    canned = CannedCoach()
    overrides[get_llm] = lambda: canned
    with TestClient(app) as client:
        r = client.post("/api/chat", json={"message": ASKED}, headers=bearer(user["token"]))
        assert r.status_code == 200, r.text
        assert r.json() == {"reply": "Practise out loud."}
        r = client.post("/api/chat/stream", json={"message": ASKED}, headers=bearer(user["token"]))
        assert r.status_code == 200, r.text
        assert events(r.text) == [("message", {"token": "Practise "}), ("message", {"token": "out "}),
                                  ("message", {"token": "loud."}), ("done", {})]
        assert socket_answer(client, user["token"]) == "Practise out loud."
    assert coach.requests() == []  # the real LLM was never called
    assert len(canned.asked) == 3 and all(m[-1] == {"role": "user", "content": ASKED} for m in canned.asked)
    roles = ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["role"] for m in canned.asked[2]] == roles  # each exchange was stored


def test_an_llm_without_a_key_answers_502_when_swapped_in(app, overrides, user):
    """An LLM made from settings without OPENAI_API_KEY, swapped in, answers 502 and says why."""
    from app.config import get_settings
    from app.deps import get_llm
    from app.llm import LLM

    overrides[get_llm] = lambda: LLM(get_settings().model_copy(update={"OPENAI_API_KEY": None}))
    with TestClient(app) as client:
        r = client.post("/api/chat", json={"message": ASKED}, headers=bearer(user["token"]))
    assert r.status_code == 502, r.text
    assert r.json() == {"detail": "No LLM configured: set OPENAI_API_KEY in .env"}


@pytest.mark.parametrize(("mode", "options"), LLM_FAILURES)
def test_post_api_chat_still_answers_502_when_the_llm_fails_or_sends_a_page(app, coach, user, mode, options):
    """POST /api/chat still answers 502 when the LLM fails or sends a page, as in lesson 18.
    Hint: LLM.ask turns what is not a ChatCompletion (the client hands back a page's text), or
    holds no text Postgres can store, into the 502 too."""
    coach.mode(mode, **options)
    with TestClient(app) as client:
        r = client.post("/api/chat", json={"message": ASKED}, headers=bearer(user["token"]))
    assert r.status_code == 502, r.text
    assert r.json() == {"detail": "The coach is unavailable, try again later"}


# --- settings as a dependency: one way to authenticate, everywhere ------------------------------

def test_the_stream_like_every_endpoint_that_needs_a_login_gets_its_user_from_current_user(app, overrides,
                                                                                           coach, user):
    """The stream, like every endpoint that needs a login, gets its user from the CurrentUser dependency.
    The test overrides the function behind `CurrentUser` (app.dependency_overrides) with one
    that names the user without a token: /api/me, /api/chat, /api/chat/stream and the history
    must let it in. One that checks a token of its own answers 401."""
    from typing import get_args

    from app.deps import CurrentUser, SessionDep
    from app.models import User

    def the_user(db: SessionDep):
        return db.get(User, user["id"])

    overrides[get_args(CurrentUser)[1].dependency] = the_user
    with TestClient(app) as client:
        answers = {
            "GET /api/me": client.get("/api/me"),
            "POST /api/chat": client.post("/api/chat", json={"message": ASKED}),
            "POST /api/chat/stream": client.post("/api/chat/stream", json={"message": ASKED}),
            "GET /api/chat/history": client.get("/api/chat/history"),
        }
    refused = {what: r.status_code for what, r in answers.items() if r.status_code != 200}
    assert refused == {}, "without a token, with CurrentUser overridden"
    assert events(answers["POST /api/chat/stream"].text)[-1] == ("done", {})


def test_dependency_overrides_swap_the_sockets_login_timeout_too(app, overrides):
    """app.dependency_overrides[get_settings] sets the socket's login timeout (WS_LOGIN_TIMEOUT) too."""
    from app.config import get_settings

    other = get_settings().model_copy(update={"WS_LOGIN_TIMEOUT": 0.2})
    overrides[get_settings] = lambda: other
    with TestClient(app) as client, app_socket(client) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert (closed.value.code, closed.value.reason) == (1008, "No token within 0.2 s")


def test_dependency_overrides_swap_the_settings_of_login_endpoints_and_socket(app, overrides, coach, user):
    """app.dependency_overrides[get_settings] sets the secret and expiry of login, /api/me, stream, socket.
    With another JWT_SECRET and EXPIRY_MINUTES=5, login signs with them, and /api/me, the stream
    and the socket refuse the old token and accept a new one.
    Hint: one function checks a token for the HTTP dependency, the stream and the socket, and it
    gets the secret from the SettingsDep dependency, never from a global."""
    from app.config import get_settings

    other = get_settings().model_copy(update={"JWT_SECRET": SecretStr(OTHER_SECRET), "EXPIRY_MINUTES": 5})
    overrides[get_settings] = lambda: other
    old, new = user["token"], token_for(user["id"], secret=OTHER_SECRET, minutes=5)
    body = {"json": {"message": ASKED}}
    with TestClient(app) as client:
        for r in (client.get("/api/me", headers=bearer(old)),
                  client.post("/api/chat/stream", headers=bearer(old), **body)):
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
        assert socket_refused(client, old) == 1008
        assert client.get("/api/me", headers=bearer(new)).json()["id"] == user["id"]
        r = client.post("/api/chat/stream", headers=bearer(new), **body)
        assert events(r.text)[-1] == ("done", {}), r.text
        assert socket_answer(client, new)

        grace = {"email": f"grace.{user['id']}@example.com", "password": "s3cret-enough"}
        r = client.post("/api/users", json={"name": "Grace", **grace})
        assert r.status_code == 201, r.text
        r = client.post("/api/login", json=grace)
        assert r.status_code == 200, r.text
    claims = jwt.decode(r.json()["access_token"], OTHER_SECRET, algorithms=["HS256"])
    minutes = (datetime.fromtimestamp(claims["exp"], UTC) - datetime.now(UTC)).total_seconds() / 60
    assert 4 < minutes <= 5
