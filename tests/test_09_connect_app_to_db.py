"""Lesson 09: GET /api/test-db asks Postgres for the time; a DB that is down gives a short 503."""

import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from helpers import git_ignores
from webclient import web

CLOSE_ENOUGH = timedelta(seconds=5)
DB_KEYS = ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD")


@pytest.fixture
def db_down(monkeypatch, closed_port, app):
    """The app's next connections go to a port where no database answers: DB_PORT changes
    between requests (an app that read its settings once, at import, never sees it)."""
    monkeypatch.setenv("DB_PORT", closed_port)


@pytest.fixture
def opened_connections(monkeypatch):
    """Every connection psycopg2 opens during the test (kept, so a forgotten one stays open)."""
    opened = []
    real_connect = psycopg2.connect

    def connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        opened.append(conn)
        return conn

    monkeypatch.setattr(psycopg2, "connect", connect)
    yield opened
    for conn in opened:
        conn.close()


def db_now(db) -> datetime:
    with db.cursor() as cur:
        cur.execute("SELECT NOW()")
        return cur.fetchone()[0]


def sessions_on_test_db(db) -> int:
    """Client sessions on the test database (ours included; autovacuum workers left out)."""
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND backend_type = 'client backend'")
        return cur.fetchone()[0]


def test_test_db_answers_200_with_only_time(client):
    r = client.get("/api/test-db")
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["time"], r.text


def test_time_is_an_iso_timestamp_with_time_zone(client):
    r = client.get("/api/test-db")
    answered = datetime.fromisoformat(r.json()["time"])
    assert answered.tzinfo is not None, r.text


def test_time_is_close_to_now(client):
    r = client.get("/api/test-db")
    answered = datetime.fromisoformat(r.json()["time"])
    assert abs(answered - datetime.now(UTC)) < CLOSE_ENOUGH, r.text


def test_time_comes_from_postgres(client, db):
    # NOW() is the start of the current transaction: Postgres' clock, read between our two reads.
    before = db_now(db)
    r = client.get("/api/test-db")
    after = db_now(db)
    assert before <= datetime.fromisoformat(r.json()["time"]) <= after, (before, r.text, after)


def test_every_connection_is_closed(client, opened_connections):
    for _ in range(5):
        r = client.get("/api/test-db")
        assert r.status_code == 200, r.text
    assert len(opened_connections) == 5
    assert [conn.closed for conn in opened_connections] == [1] * 5


def test_50_requests_leave_no_session_open(client, db, opened_connections):
    before = sessions_on_test_db(db)
    for _ in range(50):
        r = client.get("/api/test-db")
        assert r.status_code == 200, r.text
    # A closed session takes a moment to leave pg_stat_activity: wait for it, not for a time.
    deadline = time.monotonic() + 10
    while sessions_on_test_db(db) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sessions_on_test_db(db) <= before


def test_app_reads_the_settings_for_each_connection(client, monkeypatch, closed_port):
    """App reads the settings for each connection
    Hint: call os.getenv("DB_PORT") (and the other four) inside the function that connects, not
    once when the module is imported: the tests change DB_PORT between requests."""
    assert client.get("/api/test-db").status_code == 200
    monkeypatch.setenv("DB_PORT", closed_port)
    r = client.get("/api/test-db")
    assert r.status_code == 503, "DB_PORT now names a port where no database listens: " + r.text
    monkeypatch.undo()
    assert client.get("/api/test-db").status_code == 200


def test_database_down_gives_503(client, db_down):
    """Database down gives 503
    Hint: the tests take the database down by changing DB_PORT between requests, so the app
    must read the DB_* settings each time it connects (see the line above); then catch
    psycopg2.OperationalError and answer 503 with a short detail."""
    r = client.get("/api/test-db")
    assert r.status_code == 503, r.text


def test_database_down_gives_a_short_detail(client, db_down):
    r = client.get("/api/test-db")
    assert r.status_code == 503, r.text
    detail = r.json().get("detail")
    assert isinstance(detail, str) and 0 < len(detail) <= 100, r.text


def test_database_down_answer_shows_no_internals(client, db_down, db_env):
    r = client.get("/api/test-db")
    assert r.status_code == 503, r.text
    for secret in ("Traceback", "psycopg2", "OperationalError", "File \"", db_env["DB_PASSWORD"]):
        assert secret not in r.text, r.text


def test_time_endpoint_works_while_database_is_down(client, db_down):
    r = client.get("/api/time")
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["time"], r.text


def test_uvicorn_answers_503_without_a_database(live_api, closed_port):
    api = live_api(env={"DB_PORT": closed_port})
    r = web.get(api.url + "/api/test-db")
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/json", r.text
    assert web.get(api.url + "/api/time").status_code == 200


def test_uvicorn_answers_with_the_database_time(live_api):
    api = live_api()
    r = web.get(api.url + "/api/test-db")
    assert r.status_code == 200, r.text
    assert abs(datetime.fromisoformat(r.json()["time"]) - datetime.now(UTC)) < CLOSE_ENOUGH, r.text


def test_env_example_lists_the_db_settings(lesson):
    example = (lesson.path / ".env.example").read_text()
    keys = [line.partition("=")[0].strip() for line in example.splitlines() if "=" in line
            and not line.lstrip().startswith("#")]
    assert sorted(keys) == sorted(DB_KEYS), example
    assert "DB_PORT=5433" in example.splitlines(), example


def test_dot_env_is_git_ignored(lesson, tmp_path):
    assert git_ignores(lesson.path, ".env", tmp_path), ".env would be committed"


def test_app_reads_its_settings_from_a_dot_env_file(lesson, db_env, tmp_path):
    # A copy of the lesson with a .env file and no DB_* variables in the environment.
    copy = tmp_path / "app"
    shutil.copytree(lesson.path, copy, ignore=shutil.ignore_patterns(".env", "__pycache__"))
    (copy / ".env").write_text("".join(f"{key}={db_env[key]}\n" for key in DB_KEYS))
    env = {key: value for key, value in os.environ.items() if key not in DB_KEYS}
    script = ("from fastapi.testclient import TestClient; import main; "
              "r = TestClient(main.app).get('/api/test-db'); print(r.status_code, r.text)")
    done = subprocess.run([sys.executable, "-c", script], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.startswith("200 "), done.stdout + done.stderr
