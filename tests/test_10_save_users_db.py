"""Lesson 10: users live in a Postgres table (raw SQL), created at startup; data survives restarts.

The test database persists across the tests of one run and some tests drop the table, so no
test assumes which ids it gets; every `client` starts the app, whose lifespan creates the table.
"""

import os
import re

import psycopg2
import pytest
from fastapi.testclient import TestClient

from helpers import assert_not_found, create_user, exit_or_listen, get_user, traceback_end
from shared.ground import devdb
from webclient import web

ADA = {"name": "Ada", "role": "developer", "place": "London"}
GRACE = {"name": "Grace", "role": "tester", "place": "Arlington"}
INJECTION = {"name": "x');DROP--", "role": "designer", "place": "'; DROP TABLE users; --"}
TOO_BIG_ID = 99999999999  # more than a Postgres INTEGER (SERIAL) can hold


def row(db, user_id):
    with db.cursor() as cur:
        cur.execute("SELECT id, name, role, place FROM users WHERE id = %s", (user_id,))
        return cur.fetchone()


def users_table_exists(db) -> bool:
    with db.cursor() as cur:
        cur.execute("SELECT to_regclass('public.users') IS NOT NULL")
        return cur.fetchone()[0]


def learners_database() -> dict:
    """What the learner's own aic_db holds, read without changing anything."""
    env = devdb.dev_env()
    conn = psycopg2.connect(host=env["DB_HOST"], port=env["DB_PORT"], dbname=env["DB_NAME"],
                            user=env["DB_USER"], password=env["DB_PASSWORD"], connect_timeout=3)
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                        "ORDER BY table_name")
            tables = [name for (name,) in cur.fetchall()]
            users = None
            if "users" in tables:
                cur.execute("SELECT count(*), max(id) FROM users")
                users = cur.fetchone()
        conn.rollback()
    finally:
        conn.close()
    return {"tables": tables, "users (count, max id)": users}


@pytest.fixture(scope="module", autouse=True)
def learners_database_before(db_env):
    return learners_database()


# The API of lesson 07, now on SQL


def test_create_answers_201_with_id_and_message(client):
    r = client.post("/api/users", json=ADA)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": r.json()["id"], "message": "User profile saved!"}, r.text
    assert isinstance(r.json()["id"], int), r.text


def test_created_user_can_be_read(client):
    user_id = create_user(client, ADA)
    assert get_user(client, user_id) == {"id": user_id, **ADA}


def test_update_replaces_the_profile(client):
    user_id = create_user(client, ADA)
    r = client.put(f"/api/users/{user_id}", json=GRACE)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": user_id, **GRACE}, r.text
    assert client.get(f"/api/users/{user_id}").json() == {"id": user_id, **GRACE}


def test_delete_removes_the_user(client):
    user_id = create_user(client, ADA)
    r = client.delete(f"/api/users/{user_id}")
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "User deleted"}, r.text
    r = client.get(f"/api/users/{user_id}")
    assert r.status_code == 404, r.text


def test_ids_are_unique(client):
    assert len({create_user(client, ADA) for _ in range(3)}) == 3


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_unknown_id_is_404(client, method):
    user_id = create_user(client, ADA)
    client.delete(f"/api/users/{user_id}")
    r = client.request(method, f"/api/users/{user_id}", json=ADA if method == "put" else None)
    assert_not_found(r)


@pytest.mark.parametrize("change", [
    {"name": "A"}, {"name": "A" * 11}, {"role": "boss"}, {"place": "X"}, {"name": None},
], ids=["name-1-char", "name-11-chars", "unknown-role", "place-1-char", "name-missing"])
def test_07_rules_still_give_422(client, change):
    profile = {key: value for key, value in {**ADA, **change}.items() if value is not None}
    r = client.post("/api/users", json=profile)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("change", [
    {"name": "Al"}, {"name": "A" * 10}, {"role": "tester"}, {"place": "NY"},
], ids=["name-2-chars", "name-10-chars", "role-tester", "place-2-chars"])
def test_07_boundaries_are_accepted(client, change):
    r = client.post("/api/users", json={**ADA, **change})
    assert r.status_code == 201, r.text


# The rows are real


def test_created_user_is_a_row_in_the_users_table(client, db):
    user_id = create_user(client, ADA)
    assert row(db, user_id) == (user_id, "Ada", "developer", "London")


def test_update_changes_the_row(client, db):
    user_id = create_user(client, ADA)
    client.put(f"/api/users/{user_id}", json=GRACE)
    assert row(db, user_id) == (user_id, "Grace", "tester", "Arlington")


def test_delete_removes_the_row(client, db):
    user_id = create_user(client, ADA)
    client.delete(f"/api/users/{user_id}")
    assert row(db, user_id) is None


def test_a_row_written_by_someone_else_is_served(client, db):
    with db.cursor() as cur:
        cur.execute("INSERT INTO users (name, role, place) VALUES ('Linus', 'tester', 'Helsinki') "
                    "RETURNING id")
        user_id = cur.fetchone()[0]
    r = client.get(f"/api/users/{user_id}")
    assert r.json() == {"id": user_id, "name": "Linus", "role": "tester", "place": "Helsinki"}, r.text


def test_startup_creates_the_users_table(app, db, lesson):
    with db.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS users")
    with TestClient(app):
        assert users_table_exists(db)
    schema = lesson.path / "schema.sql"
    assert schema.is_file(), "no schema.sql beside main.py: the task puts the CREATE TABLE there"
    with db.cursor() as cur:  # the task's schema.sql: id SERIAL PRIMARY KEY, three TEXT NOT NULL
        cur.execute("SELECT column_name, data_type, is_nullable = 'YES', "
                    "COALESCE(column_default LIKE 'nextval(%%', false) "
                    "FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position")
        columns = [{"column": name, "type": kind, "may be NULL": nullable, "numbered (SERIAL)": numbered}
                   for name, kind, nullable, numbered in cur.fetchall()]
        cur.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                    "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'users'::regclass AND i.indisprimary")
        primary_key = [name for (name,) in cur.fetchall()]
    assert columns == [{"column": "id", "type": "integer", "may be NULL": False, "numbered (SERIAL)": True},
                       *({"column": name, "type": "text", "may be NULL": False, "numbered (SERIAL)": False}
                         for name in ("name", "role", "place"))], columns
    assert primary_key == ["id"], f"the primary key is {primary_key or 'missing'}, not id"


def test_startup_keeps_existing_rows(app, db):
    with TestClient(app) as client:
        user_id = create_user(client, ADA)
    with TestClient(app) as client:
        r = client.get(f"/api/users/{user_id}")
    assert r.json() == {"id": user_id, **ADA}, r.text
    assert row(db, user_id) == (user_id, "Ada", "developer", "London")


def test_ids_are_never_reused_after_delete(client):
    first = create_user(client, ADA)
    client.delete(f"/api/users/{first}")
    assert create_user(client, ADA) > first


# Restarts: a real server, stopped and started again


def test_users_survive_an_app_restart(live_api):
    api = live_api()
    r = web.post(api.url + "/api/users", json=GRACE)
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    api.stop()
    api = live_api()
    r = web.get(f"{api.url}/api/users/{user_id}")
    assert r.status_code == 200, r.text
    assert r.json() == {"id": user_id, **GRACE}, r.text


def test_ids_are_never_reused_across_a_restart(live_api):
    api = live_api()
    first = web.post(api.url + "/api/users", json=ADA).json()["id"]
    assert web.delete(f"{api.url}/api/users/{first}").status_code == 200
    api.stop()
    api = live_api()
    r = web.post(api.url + "/api/users", json=ADA)
    assert r.status_code == 201, r.text
    assert r.json()["id"] > first, r.text


# Hostile and impossible input


def test_sql_injection_shaped_input_is_stored_verbatim(client, db):
    user_id = create_user(client, INJECTION)
    r = client.get(f"/api/users/{user_id}")
    assert r.json() == {"id": user_id, **INJECTION}, r.text
    assert row(db, user_id) == (user_id, INJECTION["name"], INJECTION["role"], INJECTION["place"])


def test_sql_injection_shaped_input_drops_no_table(client, db):
    create_user(client, INJECTION)
    client.put(f"/api/users/{create_user(client, ADA)}", json=INJECTION)
    assert users_table_exists(db)
    create_user(client, ADA)


def test_quotes_and_unicode_round_trip(client, db):
    profile = {"name": "O'Brien", "role": "designer", "place": "Zürich \"Zoo\" 東京 😀"}
    user_id = create_user(client, profile)
    assert client.get(f"/api/users/{user_id}").json() == {"id": user_id, **profile}
    assert row(db, user_id) == (user_id, *profile.values())


@pytest.mark.parametrize("field", ["name", "place"])
def test_nul_character_is_422(client, field):
    r = client.post("/api/users", json={**ADA, field: "Ad\x00a"})
    assert r.status_code == 422, r.text


def test_nul_character_in_update_is_422(client):
    r = client.put(f"/api/users/{create_user(client, ADA)}", json={**ADA, "place": "Lon\x00don"})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_id_too_big_for_postgres_is_422_not_500(client, method):
    r = client.request(method, f"/api/users/{TOO_BIG_ID}", json=ADA if method == "put" else None)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("user_id", [0, -1])
def test_id_below_1_is_422(client, user_id):
    r = client.get(f"/api/users/{user_id}")
    assert r.status_code == 422, r.text


def test_largest_possible_id_is_just_not_found(client):
    r = client.get("/api/users/2147483647")
    assert r.status_code == 404, r.text


# The database is down


def test_the_app_still_starts_while_the_database_is_down(lesson, closed_port, db_env):
    """The app still starts while the database is down
    Hint: the lifespan must not let the database's error through: catch psycopg2.OperationalError
    around creating the table, log a warning (logger.warning: a lower level is not shown) that says
    the database cannot be reached, and go on (requests answer 503 until it is back)."""
    code, output = exit_or_listen(lesson.uvicorn, lesson.path, {**os.environ, "DB_PORT": closed_port})
    if code is not None:
        end = traceback_end(output)[0] or output.strip()[-300:]
        pytest.fail(f"uvicorn stopped (exit code {code}) while the database was down: {end}\n{output}")
    # A line that says it: the word (database, Postgres, DB) or the database's own name.
    says = re.compile(rf"(?i)\b(database|postgres(ql)?|db|{re.escape(db_env['DB_NAME'])})\b")
    logged = [line for line in output.splitlines() if not line.startswith("INFO:")]  # not uvicorn's own
    assert any(says.search(line) for line in logged), (
        f"no warning that says the database cannot be reached; the app logged: {logged}")


def test_database_down_gives_503(live_api, closed_port):
    api = live_api(env={"DB_PORT": closed_port})
    r = web.post(api.url + "/api/users", json=ADA)
    assert r.status_code == 503, r.text
    r = web.get(api.url + "/api/users/1")
    assert r.status_code == 503, r.text
    assert isinstance(r.json()["detail"], str) and "Traceback" not in r.text, r.text


DATABASE_OPERATIONS = [("/api/test-db", "get"), ("/api/users", "post"), ("/api/users/{user_id}", "get"),
                       ("/api/users/{user_id}", "put"), ("/api/users/{user_id}", "delete")]


def test_openapi_documents_the_503_of_every_endpoint_that_asks_the_database(client):
    """The OpenAPI document lists the 503 of every endpoint that asks the database.
    Hint: give each of them a 503 in responses=, with the same {"detail"} model as the 404."""
    openapi = client.get("/openapi.json").json()
    for path, method in DATABASE_OPERATIONS:
        responses = openapi["paths"][path][method]["responses"]
        assert "503" in responses, f"{method.upper()} {path} documents only {sorted(responses)}"
        schema = responses["503"].get("content", {}).get("application/json", {}).get("schema", {})
        name = schema.get("$ref", "").rsplit("/", 1)[-1]
        model = openapi["components"]["schemas"][name] if name else schema
        detail = model.get("properties", {}).get("detail", {}).get("type")
        assert detail == "string", f"{method.upper()} {path}: its 503 has no detail model: {responses['503']}"


def test_learners_database_is_untouched(learners_database_before):
    # Last in this file: pytest runs tests in file order.
    assert learners_database() == learners_database_before
