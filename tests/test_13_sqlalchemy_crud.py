"""Lesson 13: CRUD through the ORM: database.py (engine, SessionLocal), GET /api/users, DELETE -> 204.

Every request gets its own Session from SessionLocal and closes it, so 200 requests through a
pool of one connection never run out. The test database persists across the tests of one run
and one test empties the table, so no test assumes which ids it gets or which users exist.
"""

import importlib
from datetime import datetime

import pytest
from sqlalchemy import create_engine

from helpers import assert_not_found, create_user, cut_off_the_apps_connections, every_user, get_user
from webclient import web

PASSWORD = "lovelace-1815"
ADA = {"name": "Ada", "role": "developer", "place": "London"}
GRACE = {"name": "Grace", "role": "tester", "place": "Arlington"}
ALAN = {"name": "Alan", "role": "designer", "place": "Bletchley"}
NEVER_GIVEN = 10**9
PROFILE_KEYS = ["id", "name", "place", "role"]


def create(client, profile=ADA) -> int:
    return create_user(client, {**profile, "password": PASSWORD})


def listed(client) -> list[dict]:
    r = client.get("/api/users")
    assert r.status_code == 200, r.text
    return r.json()


def stored_row(db, user_id: int):
    with db.cursor() as cur:
        cur.execute("SELECT name, role, place, password_hash FROM users WHERE id = %s", (user_id,))
        return cur.fetchone()




@pytest.fixture
def database(app):
    """The lesson's database.py (imported after the app, so from the lesson's folder)."""
    return importlib.import_module("database")


@pytest.fixture
def main(app):
    return importlib.import_module("main")


@pytest.fixture
def models(app):
    return importlib.import_module("models")


@pytest.fixture
def small_pool(database):
    """SessionLocal bound to a pool of one connection that waits at most 1 s for it to be free."""
    engine = create_engine(database.engine.url, pool_size=1, max_overflow=0, pool_timeout=1)
    database.SessionLocal.configure(bind=engine)
    yield engine
    database.SessionLocal.configure(bind=database.engine)
    engine.dispose()


@pytest.fixture
def sessions(database, monkeypatch):
    """Every Session that SessionLocal() makes during the test; each knows if it was closed."""
    made = []

    class Recorded(database.SessionLocal.class_):
        closed = False

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

        def close(self):
            self.closed = True
            super().close()

    monkeypatch.setattr(database.SessionLocal, "class_", Recorded)
    return made


# GET /api/users lists every user


def test_list_answers_200_with_a_list(client):
    create(client)
    users = listed(client)
    assert isinstance(users, list) and users, users


def test_list_holds_new_users_with_their_profiles(client):
    ids = [create(client, profile) for profile in (ADA, GRACE, ALAN)]
    mine = [user for user in every_user(client) if user["id"] in ids]
    assert mine == [{"id": ids[0], **ADA}, {"id": ids[1], **GRACE}, {"id": ids[2], **ALAN}]


def test_list_is_in_id_order(client):
    first = create(client, GRACE)
    create(client, ADA)
    # An UPDATE writes the row anew after the others: without ORDER BY, Postgres would now
    # list the first user last.
    assert client.put(f"/api/users/{first}", json=ALAN).status_code == 200
    ids = [user["id"] for user in every_user(client)]
    assert ids == sorted(ids)


def test_list_items_hold_only_the_profile(client):
    create(client)
    users = listed(client)
    assert [sorted(user) for user in users] == [PROFILE_KEYS] * len(users), users


def test_list_carries_no_password_or_hash(client, db):
    user_id = create(client)
    users = every_user(client)  # the new user among them, however many the tests before made
    assert user_id in [user["id"] for user in users]
    assert PASSWORD not in str(users) and stored_row(db, user_id)[3] not in str(users), users


def test_empty_table_lists_as_an_empty_list(client, db):
    with db.cursor() as cur:
        cur.execute("DELETE FROM users")
    r = client.get("/api/users")
    assert r.status_code == 200, r.text
    assert r.json() == []


def test_deleted_user_leaves_the_list(client):
    user_id = create(client)
    client.delete(f"/api/users/{user_id}")
    assert user_id not in [user["id"] for user in every_user(client)]


def test_openapi_documents_the_list_as_profiles(client):
    schema = client.get("/openapi.json").json()
    answer = schema["paths"]["/api/users"]["get"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["type"] == "array", answer
    name = answer["schema"]["items"]["$ref"].rsplit("/", 1)[-1]
    assert sorted(schema["components"]["schemas"][name]["properties"]) == PROFILE_KEYS


# Create, read and update through the ORM


def test_create_answers_201_with_id_and_message(client):
    r = client.post("/api/users", json={**ADA, "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json() == {"id": r.json()["id"], "message": "User profile saved!"}
    assert isinstance(r.json()["id"], int) and r.json()["id"] >= 1, r.text


def test_test_db_still_answers_the_database_time(client):
    r = client.get("/api/test-db")
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["time"], r.text
    assert datetime.fromisoformat(r.json()["time"]).tzinfo is not None, r.text


def test_fetch_returns_the_profile(client):
    user_id = create(client)
    assert get_user(client, user_id) == {"id": user_id, **ADA}


def test_update_answers_the_new_profile(client):
    user_id = create(client)
    r = client.put(f"/api/users/{user_id}", json=GRACE)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": user_id, **GRACE}


def test_update_is_stored_and_keeps_the_password_hash(client, db):
    user_id = create(client)
    password_hash = stored_row(db, user_id)[3]
    client.put(f"/api/users/{user_id}", json=GRACE)
    assert stored_row(db, user_id) == (*GRACE.values(), password_hash)


def test_update_of_unknown_id_is_404(client):
    r = client.put(f"/api/users/{NEVER_GIVEN}", json=GRACE)
    assert_not_found(r)


# DELETE answers 204 No Content


def test_delete_answers_204_with_an_empty_body(client):
    user_id = create(client)
    r = client.delete(f"/api/users/{user_id}")
    assert r.status_code == 204, r.text
    assert r.content == b""


def test_deleted_user_is_404(client):
    user_id = create(client)
    client.delete(f"/api/users/{user_id}")
    r = client.get(f"/api/users/{user_id}")
    assert_not_found(r)


def test_deleted_row_is_gone_from_the_table(client, db):
    user_id = create(client)
    client.delete(f"/api/users/{user_id}")
    assert stored_row(db, user_id) is None


def test_deleting_twice_is_404_the_second_time(client):
    user_id = create(client)
    assert client.delete(f"/api/users/{user_id}").status_code == 204
    r = client.delete(f"/api/users/{user_id}")
    assert_not_found(r)


def test_delete_of_unknown_id_is_404(client):
    r = client.delete(f"/api/users/{NEVER_GIVEN}")
    assert_not_found(r)


def test_ids_are_never_reused(client):
    first = create(client)
    assert client.delete(f"/api/users/{first}").status_code == 204
    second = create(client)
    assert second == first + 1


# Response models read ORM objects


def test_user_out_reads_a_model_object(client, database, main, models):
    """UserOut reads a model object"""
    user_id = create(client)
    with database.SessionLocal() as db:
        user = db.get(models.User, user_id)
        profile = main.UserOut.model_validate(user)
    assert profile.model_dump() == {"id": user_id, **ADA}


# Sessions are always closed


def test_every_session_is_closed(client, sessions):
    """Every session is closed
    Hint: every endpoint makes one session with SessionLocal() and closes it however it ends: a
    dependency with yield and finally: db.close(), or `with SessionLocal() as db:` (then
    db.refresh(obj) before you return a model object). The tests count SessionLocal's sessions:
    one made with Session(engine) is not counted."""
    made = {"POST /api/users": 0}
    user_id = create(client)
    made["POST /api/users"] = len(sessions)
    for method, path, body in [("GET", "/api/users/{id}", None), ("GET", "/api/users", None),
                               ("PUT", "/api/users/{id}", GRACE), ("DELETE", "/api/users/{id}", None),
                               ("GET", "/api/test-db", None)]:
        before = len(sessions)
        client.request(method, path.replace("{id}", str(user_id)), json=body)
        made[f"{method} {path}"] = len(sessions) - before
    assert made == dict.fromkeys(made, 1), "sessions each request made with SessionLocal()"
    assert [session.closed for session in sessions] == [True] * 6, "closed, for each session made"


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("PUT", GRACE), ("DELETE", None)])
def test_session_is_closed_when_the_answer_is_404(client, sessions, method, body):
    r = client.request(method, f"/api/users/{NEVER_GIVEN}", json=body)
    assert r.status_code == 404, r.text
    assert [session.closed for session in sessions] == [True]


def test_200_requests_leave_no_connection_checked_out(client, small_pool):
    user_id = create(client)
    statuses = [201]
    for _ in range(33):  # 1 + 33 * 6 + 1 = 200 requests
        statuses += [
            client.get(f"/api/users/{user_id}").status_code,
            client.get("/api/users").status_code,
            client.put(f"/api/users/{user_id}", json=GRACE).status_code,
            client.get(f"/api/users/{NEVER_GIVEN}").status_code,
            client.put(f"/api/users/{NEVER_GIVEN}", json=GRACE).status_code,
            client.delete(f"/api/users/{NEVER_GIVEN}").status_code,
        ]
    statuses.append(client.delete(f"/api/users/{user_id}").status_code)
    assert statuses == [201] + [200, 200, 200, 404, 404, 404] * 33 + [204]
    assert small_pool.pool.checkedout() == 0


# A database that restarts or is down


def test_a_database_restart_costs_no_request(client, db):
    user_id = create(client)  # the pool now holds an open connection
    cut_off_the_apps_connections(db)
    r = client.get("/api/users")  # the first request after the restart
    assert r.status_code == 200, r.text
    assert user_id in [user["id"] for user in every_user(client)]


def test_database_down_gives_a_short_503(live_api, closed_port):
    api = live_api(env={"DB_PORT": closed_port})
    for method, path in [("GET", "/api/users"), ("GET", "/api/users/1"), ("DELETE", "/api/users/1")]:
        r = web.request(method, api.url + path)
        assert r.status_code == 503, (method, path, r.text)
        detail = r.json()["detail"]
        assert isinstance(detail, str) and 0 < len(detail) <= 100, r.text


# --- Hardening (H3): the list answers one bounded page (limit/offset), documented in OpenAPI ---


def test_list_pages_with_limit_and_offset(client, db):
    ids = [create(client) for _ in range(3)]
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM users WHERE id < %s", (ids[0],))
        before = cur.fetchone()[0]
    r = client.get("/api/users", params={"limit": 2, "offset": before})
    assert r.status_code == 200, r.text
    assert [user["id"] for user in r.json()] == ids[:2]


def test_list_answers_at_most_50_by_default(client, db):
    with db.cursor() as cur:
        cur.execute("INSERT INTO users (name, role, place) SELECT 'Bulk', 'tester', 'Here' "
                    "FROM generate_series(1, 60)")
    assert len(listed(client)) == 50
    assert len(client.get("/api/users", params={"limit": 100}).json()) >= 60


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"offset": 2_147_483_648},
                                    {"limit": "x"}],
                         ids=["limit-0", "limit-101", "offset-minus-1", "offset-too-big",
                              "limit-not-a-number"])
def test_page_outside_the_bounds_is_422(client, params):
    r = client.get("/api/users", params=params)
    assert r.status_code == 422, r.text


def test_openapi_documents_the_page_bounds(client):
    parameters = client.get("/openapi.json").json()["paths"]["/api/users"]["get"]["parameters"]
    bounds = {p["name"]: (p["schema"]["minimum"], p["schema"]["maximum"], p["schema"]["default"])
              for p in parameters}
    assert bounds == {"limit": (1, 100, 50), "offset": (0, 2_147_483_647, 0)}, parameters
