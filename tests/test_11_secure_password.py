"""Lesson 11: a password at signup, stored only as a bcrypt hash; no answer ever carries either.

The test database persists across the tests of one run and one test rebuilds the table as
lesson 10 left it, so no test assumes which ids it gets; every `client` starts the app, whose
lifespan brings the table up to date.
"""

import pytest
from fastapi.testclient import TestClient
from passlib.context import CryptContext

from helpers import connect, keys_in, stored_hash, strings_in
from shared.ground.manifest import find

PASSWORD = "Sup3r-Secret!"
ADA = {"name": "Ada", "role": "developer", "place": "London"}
SIGNUP = {**ADA, "password": PASSWORD}
GRACE = {"name": "Grace", "role": "tester", "place": "Arlington"}
FORBIDDEN_KEYS = {"password", "password_hash"}

bcrypt = CryptContext(schemes=["bcrypt"])


def signup(client, password=PASSWORD, profile=ADA) -> int:
    r = client.post("/api/users", json={**profile, "password": password})
    assert r.status_code == 201, r.text
    return r.json()["id"]








def assert_leaks_nothing(r, *secrets):
    for secret in secrets:
        assert secret not in r.text, r.text
        assert not [s for s in strings_in(r.json()) if secret in s], r.text
    assert not keys_in(r.json()) & FORBIDDEN_KEYS, r.text


def columns_of_users(db) -> list:
    with db.cursor() as cur:
        cur.execute("SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = 'users' ORDER BY ordinal_position")
        return [name for (name,) in cur.fetchall()]


# Signup needs a password


def test_signup_with_password_answers_201(client):
    r = client.post("/api/users", json=SIGNUP)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": r.json()["id"], "message": "User profile saved!"}, r.text


def test_signup_without_password_is_422(client):
    r = client.post("/api/users", json=ADA)
    assert r.status_code == 422, r.text


def test_password_of_5_characters_is_422(client):
    r = client.post("/api/users", json={**ADA, "password": "12345"})
    assert r.status_code == 422, r.text


def test_password_of_6_characters_is_accepted(client):
    signup(client, "123456")


def test_nul_in_password_is_422(client):
    r = client.post("/api/users", json={**ADA, "password": "abc\x00def"})
    assert r.status_code == 422, r.text


# Stored only as a bcrypt hash


@pytest.fixture(scope="module")
def ada_hash(app, db_env) -> str:
    """What the table holds for one signup with PASSWORD, read once for the tests that only look
    at the hash (each bcrypt hash takes a quarter of a second, on purpose)."""
    with TestClient(app) as client:
        user_id = signup(client)
    conn = connect(db_env)
    try:
        return stored_hash(conn, user_id)
    finally:
        conn.close()


def test_database_holds_a_bcrypt_hash(ada_hash):
    assert ada_hash.startswith("$2b$"), ada_hash
    assert PASSWORD not in ada_hash


def test_hash_verifies_the_password(ada_hash):
    assert bcrypt.verify(PASSWORD, ada_hash)


def test_hash_rejects_another_password(ada_hash):
    assert not bcrypt.verify(PASSWORD + "x", ada_hash)


def test_same_password_gets_a_different_hash_each_time(client, db, ada_hash):
    # bcrypt salts every hash: equal passwords cannot be spotted in the table.
    assert stored_hash(db, signup(client)) != ada_hash


def test_plain_password_is_nowhere_in_the_table(client, db):
    signup(client, "unique-needle-7")
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM users WHERE concat_ws(' ', name, role, place, password_hash) "
                    "LIKE '%unique-needle-7%'")
        assert cur.fetchone()[0] == 0


def test_update_keeps_the_password_hash(client, db):
    user_id = signup(client)
    before = stored_hash(db, user_id)
    r = client.put(f"/api/users/{user_id}", json={**GRACE, "password": "changed-by-put"})
    assert r.status_code == 200, r.text
    assert stored_hash(db, user_id) == before


# No answer carries the password or its hash


def test_signup_answer_leaks_nothing(client, db):
    r = client.post("/api/users", json=SIGNUP)
    assert_leaks_nothing(r, PASSWORD, stored_hash(db, r.json()["id"]))


def test_get_answer_leaks_nothing(client, db):
    user_id = signup(client)
    r = client.get(f"/api/users/{user_id}")
    assert r.status_code == 200, r.text
    assert r.json() == {"id": user_id, **ADA}, r.text
    assert_leaks_nothing(r, PASSWORD, stored_hash(db, user_id))


def test_put_answer_leaks_nothing(client, db):
    user_id = signup(client)
    r = client.put(f"/api/users/{user_id}", json={**GRACE, "password": "sent-along-with-put"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": user_id, **GRACE}, r.text
    assert_leaks_nothing(r, PASSWORD, "sent-along-with-put", stored_hash(db, user_id))


def test_delete_answer_leaks_nothing(client, db):
    user_id = signup(client)
    password_hash = stored_hash(db, user_id)
    r = client.delete(f"/api/users/{user_id}")
    assert r.status_code == 200, r.text
    assert_leaks_nothing(r, PASSWORD, password_hash)


@pytest.mark.parametrize("body", [
    {**ADA, "password": "Xq7#z"},
    {**ADA, "password": "far-too-long-" * 6},
    {**ADA, "password": "é" * 37},  # 37 characters but 74 bytes: the 72-byte rule's own 422
    {**ADA, "password": "nul\x00inside"},
    {**ADA, "name": "N", "password": "valid-but-name-bad"},
    {"name": "Ada", "place": "London", "password": "valid-but-role-missing"},
], ids=["too-short", "too-long", "over-72-bytes", "nul", "name-bad", "role-missing"])
def test_422_answer_does_not_repeat_the_password(client, body):
    r = client.post("/api/users", json=body)
    assert r.status_code == 422, r.text
    assert_leaks_nothing(r, body["password"])


def test_422_answer_still_says_what_is_wrong(client):
    r = client.post("/api/users", json={**ADA, "password": "Xq7#z"})
    assert [error["loc"] for error in r.json()["detail"]] == [["body", "password"]], r.text
    assert all(error["msg"] for error in r.json()["detail"]), r.text


def test_openapi_answer_schema_has_no_password(client):
    schema = client.get("/openapi.json").json()
    ref = schema["paths"]["/api/users/{user_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    name = ref["schema"]["$ref"].rsplit("/", 1)[-1]
    assert sorted(schema["components"]["schemas"][name]["properties"]) == ["id", "name", "place", "role"]


# Long, short and non-ASCII passwords


@pytest.mark.parametrize("password", ["a" * 73, "é" * 37, "😀" * 19],
                         ids=["73-ascii-bytes", "37-two-byte-chars-74-bytes", "19-emoji-76-bytes"])
def test_password_over_72_bytes_is_422_not_500(client, password):
    r = client.post("/api/users", json={**ADA, "password": password})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("password", ["a" * 72, "é" * 36, "😀" * 18],
                         ids=["72-ascii-bytes", "36-two-byte-chars", "18-emoji"])
def test_password_of_72_bytes_is_accepted_and_verifies(client, db, password):
    assert bcrypt.verify(password, stored_hash(db, signup(client, password)))


@pytest.mark.parametrize("password", ["pässwörd", "密码密码密码", "😀🔑🙂😀🔑🙂"],
                         ids=["latin", "chinese", "emoji"])
def test_short_non_ascii_password_works(client, db, password):
    password_hash = stored_hash(db, signup(client, password))
    assert bcrypt.verify(password, password_hash)
    assert not bcrypt.verify(password[:-1], password_hash)


# A table that lesson 10 created is upgraded in place


@pytest.fixture
def lesson_10_table(db):
    """The users table exactly as lesson 10's schema.sql made it, with two rows."""
    with db.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS users")
        cur.execute((find("10").path / "schema.sql").read_text())
        cur.execute("INSERT INTO users (name, role, place) VALUES ('Ada', 'developer', 'London'), "
                    "('Grace', 'tester', 'Arlington') RETURNING id")
        return [user_id for (user_id,) in cur.fetchall()]


def test_startup_adds_the_password_hash_column(app, db, lesson_10_table):
    assert "password_hash" not in columns_of_users(db)
    with TestClient(app):
        assert columns_of_users(db) == ["id", "name", "role", "place", "password_hash"]


def test_rows_from_lesson_10_are_kept_and_readable(app, lesson_10_table):
    ada, grace = lesson_10_table
    with TestClient(app) as client:
        assert client.get(f"/api/users/{ada}").json() == {"id": ada, **ADA}
        assert client.get(f"/api/users/{grace}").json() == {"id": grace, **GRACE}


def test_rows_from_lesson_10_have_no_hash_yet(app, db, lesson_10_table):
    with TestClient(app):
        assert [stored_hash(db, user_id) for user_id in lesson_10_table] == [None, None]


def test_starting_twice_changes_nothing(app, db, lesson_10_table):
    ada, _ = lesson_10_table
    with TestClient(app):
        pass
    with TestClient(app) as client:
        assert client.get(f"/api/users/{ada}").json() == {"id": ada, **ADA}
    assert columns_of_users(db) == ["id", "name", "role", "place", "password_hash"]


def test_upgraded_table_takes_new_signups_after_the_old_ids(app, db, lesson_10_table):
    with TestClient(app) as client:
        user_id = signup(client)
    assert user_id > max(lesson_10_table)
    assert bcrypt.verify(PASSWORD, stored_hash(db, user_id))


# --- Hardening (H3): the 72-byte rule is in the OpenAPI schema too, not only in the validator ---


def test_openapi_publishes_the_password_limits(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    password = schemas["UserCreate"]["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (6, 72), password
    assert "72 bytes" in password["description"], password
