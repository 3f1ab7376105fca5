"""Lesson 12: the same API as lesson 11, now through SQLAlchemy's ORM (models, engine, Sessions).

The API does not change: create 201, GET/PUT 200, DELETE 200 with a message, 404s, 422s, no
password or hash in any answer. The ORM takes over the table lesson 11 left: its rows stay
readable, create_all neither drops nor alters it, and ids keep counting where they were. The
engine's pool reuses connections and survives a database restart; a database that is down
still gets a short 503.

The test database persists across the tests of one run and some tests rebuild the table as
lesson 11 left it, so no test assumes which ids it gets.
"""

import importlib
import traceback
from datetime import datetime

import bcrypt
import psycopg2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session

from helpers import (
    assert_not_found,
    create_user,
    cut_off_the_apps_connections,
    get_user,
    keys_in,
    stored_hash,
)
from shared.ground.manifest import find
from webclient import web

ALAN = {"name": "Alan", "role": "developer", "place": "London"}
PASSWORD = "turing-1912"
SIGNUP = {**ALAN, "password": PASSWORD}
NEVER_GIVEN = 10**9
BCRYPT_PREFIX = "$2b$"
FORBIDDEN_KEYS = {"password", "password_hash"}
LESSON_11_SCHEMA = find("11").path / "schema.sql"

# Rows as lesson 11 left them: one signed up there, one from lesson 10 (no password yet).
GRACE = {"name": "Grace", "role": "developer", "place": "Arlington"}
GRACE_PASSWORD = "cobol-1959"
ADA = {"name": "Ada", "role": "designer", "place": "London"}






def table_definition(db) -> list[tuple]:
    """The users table's columns: name, type, nullable, default, in table order."""
    with db.cursor() as cur:
        cur.execute("SELECT column_name, data_type, is_nullable, column_default "
                    "FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = 'users' ORDER BY ordinal_position")
        return cur.fetchall()


def row_count(db) -> int:
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM users")
        return cur.fetchone()[0]




@pytest.fixture
def main(app):
    return importlib.import_module("main")


@pytest.fixture
def models(app):
    return importlib.import_module("models")


@pytest.fixture
def lesson_11_rows(app, db) -> dict[int, dict]:
    """A users table made exactly as lesson 11's schema.sql makes it, with two rows: {id: profile}."""
    with db.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS users")
        cur.execute(LESSON_11_SCHEMA.read_text())
        grace_hash = bcrypt.hashpw(GRACE_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        cur.execute("INSERT INTO users (name, role, place, password_hash) VALUES (%s, %s, %s, %s), "
                    "(%s, %s, %s, NULL) RETURNING id",
                    (*GRACE.values(), grace_hash, *ADA.values()))
        grace_id, ada_id = (row[0] for row in cur.fetchall())
    return {grace_id: GRACE, ada_id: ADA}


@pytest.fixture
def started_on_11s_table(app, lesson_11_rows):
    """The app started (its lifespan runs create_all) after lesson 11 built the table."""
    with TestClient(app) as c:
        yield c


@pytest.fixture
def opened_connections(monkeypatch):
    """Every new connection to Postgres made during the test (SQLAlchemy opens them with psycopg2)."""
    opened = []
    real_connect = psycopg2.connect

    def connect(*args, **kwargs):
        opened.append(real_connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(psycopg2, "connect", connect)
    return opened


# The API is the same as in lesson 11


def test_create_answers_201_with_id_and_message(client):
    r = client.post("/api/users", json=SIGNUP)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": r.json()["id"], "message": "User profile saved!"}
    assert isinstance(r.json()["id"], int) and r.json()["id"] >= 1, r.text


def test_test_db_still_answers_the_database_time(client):
    r = client.get("/api/test-db")
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["time"], r.text
    assert datetime.fromisoformat(r.json()["time"]).tzinfo is not None, r.text


def test_fetch_returns_the_profile(client):
    user_id = create_user(client, SIGNUP)
    assert get_user(client, user_id) == {"id": user_id, **ALAN}


def test_update_answers_the_new_profile(client):
    user_id = create_user(client, SIGNUP)
    r = client.put(f"/api/users/{user_id}", json={**ALAN, "role": "tester"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": user_id, **ALAN, "role": "tester"}


def test_update_is_stored(client):
    user_id = create_user(client, SIGNUP)
    client.put(f"/api/users/{user_id}", json={**ALAN, "place": "Bletchley"})
    r = client.get(f"/api/users/{user_id}")
    assert r.json() == {"id": user_id, **ALAN, "place": "Bletchley"}, r.text


def test_update_keeps_the_password_hash(client, db):
    user_id = create_user(client, SIGNUP)
    before = stored_hash(db, user_id)
    r = client.put(f"/api/users/{user_id}", json={**ALAN, "name": "Alan T"})
    assert r.status_code == 200, r.text
    assert stored_hash(db, user_id) == before


def test_delete_answers_200_with_a_message(client):
    user_id = create_user(client, SIGNUP)
    r = client.delete(f"/api/users/{user_id}")
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "User deleted"}


def test_deleted_user_is_404(client):
    user_id = create_user(client, SIGNUP)
    client.delete(f"/api/users/{user_id}")
    r = client.get(f"/api/users/{user_id}")
    assert_not_found(r)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_unknown_id_is_404(client, method):
    r = client.request(method, f"/api/users/{NEVER_GIVEN}", json=ALAN if method == "PUT" else None)
    assert_not_found(r)


def test_ids_are_never_reused(client):
    first = create_user(client, SIGNUP)
    assert client.delete(f"/api/users/{first}").status_code == 200
    second = create_user(client, SIGNUP)
    assert second == first + 1


@pytest.mark.parametrize(("field", "value"), [
    ("name", "A"), ("name", "Alan Turing"), ("role", "pilot"), ("place", "X"),
    ("password", "12345"), ("password", "é" * 36 + "x"),
], ids=["name-1-char", "name-11-chars", "role-pilot", "place-1-char", "password-5-chars",
        "password-73-bytes"])
def test_a_broken_rule_is_422(client, field, value):
    r = client.post("/api/users", json={**SIGNUP, field: value})
    assert r.status_code == 422, r.text
    assert [error["loc"] for error in r.json()["detail"]] == [["body", field]], r.text


@pytest.mark.parametrize(("field", "value"), [
    ("name", "Al"), ("name", "Alan Turin"), ("password", "123456"), ("password", "é" * 36),
], ids=["name-2-chars", "name-10-chars", "password-6-chars", "password-72-bytes"])
def test_values_at_the_limit_are_accepted(client, field, value):
    r = client.post("/api/users", json={**SIGNUP, field: value})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("user_id", [0, 2**31], ids=["zero", "beyond-serial"])
def test_id_outside_the_serial_range_is_422(client, user_id):
    r = client.get(f"/api/users/{user_id}")
    assert r.status_code == 422, r.text


def test_no_answer_carries_the_password_or_its_hash(client, db):
    r = client.post("/api/users", json=SIGNUP)
    user_id = r.json()["id"]
    password_hash = stored_hash(db, user_id)
    answers = [r, client.get(f"/api/users/{user_id}"),
               client.put(f"/api/users/{user_id}", json={**ALAN, "role": "tester"}),
               client.post("/api/users", json={**SIGNUP, "name": "A"}),
               client.delete(f"/api/users/{user_id}")]
    for answer in answers:
        assert PASSWORD not in answer.text and password_hash not in answer.text, answer.text
        assert not keys_in(answer.json()) & FORBIDDEN_KEYS, answer.text


def test_a_rejected_password_is_not_echoed(client):
    r = client.post("/api/users", json={**SIGNUP, "password": "abc12"})
    assert r.status_code == 422, r.text
    assert "abc12" not in r.text, r.text


def test_password_is_stored_as_a_bcrypt_hash_that_verifies(client, db):
    user_id = create_user(client, SIGNUP)
    password_hash = stored_hash(db, user_id)
    assert password_hash.startswith(BCRYPT_PREFIX), password_hash
    assert bcrypt.checkpw(PASSWORD.encode(), password_hash.encode())
    assert not bcrypt.checkpw(b"wrong-password", password_hash.encode())


# The ORM takes over lesson 11's table


def test_lesson_11_rows_are_served_by_the_api(started_on_11s_table, lesson_11_rows):
    for user_id, profile in lesson_11_rows.items():
        r = started_on_11s_table.get(f"/api/users/{user_id}")
        assert r.status_code == 200, r.text
        assert r.json() == {"id": user_id, **profile}


def test_startup_keeps_lesson_11_rows_and_hashes(db, lesson_11_rows, app):
    with TestClient(app):
        pass
    assert row_count(db) == len(lesson_11_rows)
    grace_id, ada_id = lesson_11_rows
    assert bcrypt.checkpw(GRACE_PASSWORD.encode(), stored_hash(db, grace_id).encode())
    assert stored_hash(db, ada_id) is None


def test_startup_does_not_alter_lesson_11s_table(db, lesson_11_rows, app):
    """Startup does not alter lesson 11's table"""
    before = table_definition(db)
    with TestClient(app):
        pass
    assert table_definition(db) == before


def test_ids_continue_after_lesson_11s_rows(started_on_11s_table, lesson_11_rows):
    """Ids continue after lesson 11's rows"""
    new_id = create_user(started_on_11s_table, SIGNUP)
    assert new_id == max(lesson_11_rows) + 1, (new_id, lesson_11_rows)


def test_user_without_a_password_hash_can_be_updated_and_deleted(started_on_11s_table, lesson_11_rows):
    ada_id = list(lesson_11_rows)[1]
    r = started_on_11s_table.put(f"/api/users/{ada_id}", json={**ADA, "place": "Marylebone"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": ada_id, **ADA, "place": "Marylebone"}
    r = started_on_11s_table.delete(f"/api/users/{ada_id}")
    assert r.status_code == 200, r.text


def test_a_missing_table_is_created_like_lesson_11s(db, lesson_11_rows, app):
    """A missing table is created like lesson 11's"""
    lesson_11 = table_definition(db)
    with db.cursor() as cur:
        cur.execute("DROP TABLE users")
    with TestClient(app) as client:
        assert table_definition(db) == lesson_11
        create_user(client, SIGNUP)


# Rows are model objects


def test_users_model_is_mapped_to_the_users_table(models):
    assert issubclass(models.User, DeclarativeBase)
    assert models.User.__tablename__ == "users"
    assert list(models.User.__table__.columns.keys()) == ["id", "name", "role", "place", "password_hash"]


def test_a_user_created_by_the_api_loads_as_a_model_object(client, main, models):
    user_id = create_user(client, SIGNUP)
    with Session(main.engine) as session:
        user = session.get(models.User, user_id)
        assert (user.name, user.role, user.place) == (ALAN["name"], ALAN["role"], ALAN["place"])
        assert bcrypt.checkpw(PASSWORD.encode(), user.password_hash.encode())


def test_a_model_object_added_in_a_session_is_served_by_the_api(client, main, models):
    with Session(main.engine) as session:
        user = models.User(**GRACE, password_hash=None)
        session.add(user)
        session.commit()
        user_id = user.id
    assert get_user(client, user_id) == {"id": user_id, **GRACE}


def test_requests_reuse_the_engines_pooled_connection(client, opened_connections):
    """Requests reuse the engine's pooled connection"""
    user_id = create_user(client, SIGNUP)
    for _ in range(10):
        r = client.get(f"/api/users/{user_id}")
        assert r.status_code == 200, r.text
    # One new connection at most (none if the pool already held one); lesson 11 opened 11.
    assert len(opened_connections) <= 1, f"{len(opened_connections)} connections for 11 requests"


# A database that restarts or is down


def test_a_database_restart_costs_no_request(client, db):
    user_id = create_user(client, SIGNUP)  # the pool now holds an open connection
    cut_off_the_apps_connections(db)
    r = client.get(f"/api/users/{user_id}")
    assert r.status_code == 200, r.text


def test_database_down_gives_a_short_503_on_every_users_endpoint(live_api, closed_port, db_env):
    api = live_api(env={"DB_PORT": closed_port})
    for method, path in [("GET", "/api/users/1"), ("POST", "/api/users"), ("PUT", "/api/users/1"),
                         ("DELETE", "/api/users/1")]:
        r = web.request(method, api.url + path, json=SIGNUP if method in ("POST", "PUT") else None)
        assert r.status_code == 503, (method, r.text)
        assert r.headers["content-type"] == "application/json", r.text
        detail = r.json()["detail"]
        assert isinstance(detail, str) and 0 < len(detail) <= 100, r.text
        for internal in ("Traceback", "sqlalchemy", "OperationalError", db_env["DB_PASSWORD"]):
            assert internal not in r.text, r.text


def test_sqlalchemy_operational_error_is_handled(app):
    handled = [error for error in app.exception_handlers if isinstance(error, type)]
    assert any(issubclass(OperationalError, error) for error in handled), handled


# --- Hardening (H3): a failing statement leaves no values (hash, password, name) in the log ---

REFUSE_MALLORY = """
CREATE FUNCTION refuse_mallory() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'insert refused by the test'; END $$;
CREATE TRIGGER refuse_mallory BEFORE INSERT ON users FOR EACH ROW
  WHEN (NEW.name = 'Mallory') EXECUTE FUNCTION refuse_mallory();
"""


def test_a_failing_statement_logs_its_sql_but_no_values(client, db):
    with db.cursor() as cur:
        cur.execute(REFUSE_MALLORY)
    try:
        with pytest.raises(DBAPIError) as failure:
            client.post("/api/users", json={**SIGNUP, "name": "Mallory"})
    finally:
        with db.cursor() as cur:
            cur.execute("DROP TRIGGER refuse_mallory ON users; DROP FUNCTION refuse_mallory()")
    # The last lines of the traceback uvicorn logs (the rest is source code, here the test's own).
    log = "".join(traceback.format_exception_only(failure.value))
    assert "insert refused by the test" in log and "INSERT INTO users" in log, log
    assert "[SQL parameters hidden due to hide_parameters=True]" in log, log
    for secret in ("$2b$", PASSWORD, "Mallory"):
        assert secret not in log, (secret, log)
