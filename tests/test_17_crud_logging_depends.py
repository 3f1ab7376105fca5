"""Lesson 17: get_db and get_current_user as dependencies; PUT and DELETE /api/me; EmailStr; logs.

bcrypt is slow on purpose, so most users here go straight into the table with one hash made
once per module, and get their token from PyJWT with the test secret (lesson 16's tests check
that login hands out exactly such tokens).
"""

import uuid

import bcrypt
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from helpers import bearer, deleted_while_the_app_waits, insert_user, log_in_page, text_when, token_for
from webclient import web

PASSWORD = "secret123"


@pytest.fixture(scope="module")
def password_hash() -> str:
    # Cost 4, as conftest.py sets for the apps: a login checks a password at the hash's own cost,
    # and at bcrypt's default (12) each one took 0.3 s of CPU, as did making the hash.
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


@pytest.fixture
def user(app, db, password_hash) -> dict:
    """A fresh user with password PASSWORD: {"id", "name", "email", "token"}."""
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    user_id = insert_user(db, "Ada", email, password_hash)
    return {"id": user_id, "name": "Ada", "email": email, "token": token_for(user_id)}


def stored(db, user_id: int) -> tuple | None:
    """(name, email, password_hash) as the table holds them, or None when the row is gone."""
    with db.cursor() as cur:
        cur.execute("SELECT name, email, password_hash FROM users WHERE id = %s", (user_id,))
        return cur.fetchone()


def put_me(client, user, changes):
    return client.put("/api/me", headers=bearer(user["token"]), json=changes)


# --- PUT /api/me: a partial update ----------------------------------------------------------

def test_only_the_name_sent_changes(client, db, user):
    before = stored(db, user["id"])
    r = put_me(client, user, {"name": "Grace"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": user["id"], "name": "Grace", "email": user["email"]}
    assert stored(db, user["id"]) == ("Grace", *before[1:])


def test_only_the_email_sent_changes_in_lower_case(client, db, user):
    before = stored(db, user["id"])
    r = put_me(client, user, {"email": "Grace.H@Example.com"})
    assert r.status_code == 200, r.text
    assert stored(db, user["id"]) == (before[0], "grace.h@example.com", before[2])


def test_a_new_password_is_stored_as_a_hash_and_replaces_the_old_one(client, db, user):
    r = put_me(client, user, {"password": "brand-new-1"})
    assert r.status_code == 200, r.text
    name, email, password_hash = stored(db, user["id"])
    assert password_hash.startswith("$2b$") and "brand-new-1" not in password_hash, password_hash
    assert client.post("/api/login", json={"email": email, "password": "brand-new-1"}).status_code == 200
    assert client.post("/api/login", json={"email": email, "password": PASSWORD}).status_code == 401


@pytest.mark.parametrize("changes", [{}, {"name": None, "email": None, "password": None}],
                         ids=["nothing sent", "all null"])
def test_fields_left_out_or_null_stay_as_they_are(client, db, user, changes):
    before = stored(db, user["id"])
    r = put_me(client, user, changes)
    assert r.status_code == 200, r.text
    assert stored(db, user["id"]) == before


@pytest.mark.parametrize("case", [str, str.upper], ids=["same case", "other case"])
def test_email_of_another_user_is_409_and_nothing_changes(client, db, user, password_hash, case):
    other = f"taken-{uuid.uuid4().hex[:8]}@example.com"
    with db.cursor() as cur:
        cur.execute("INSERT INTO users (name, email) VALUES ('Bo', %s)", (other,))
    before = stored(db, user["id"])
    r = put_me(client, user, {"name": "Grace", "email": case(other)})
    assert r.status_code == 409, r.text
    assert r.json() == {"detail": "Email already registered"}
    assert stored(db, user["id"]) == before


def test_keeping_your_own_email_is_not_a_conflict(client, user):
    r = put_me(client, user, {"email": user["email"].upper()})
    assert r.status_code == 200, r.text


def test_one_broken_field_is_422_and_nothing_changes(client, db, user):
    before = stored(db, user["id"])
    r = put_me(client, user, {"name": "G", "email": "grace@example.com"})
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "name"]]
    assert stored(db, user["id"]) == before


# --- DELETE /api/me -------------------------------------------------------------------------

def test_delete_me_is_204_and_the_row_is_gone(client, db, user):
    r = client.delete("/api/me", headers=bearer(user["token"]))
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert stored(db, user["id"]) is None


def test_token_of_a_deleted_account_is_401(client, user):
    client.delete("/api/me", headers=bearer(user["token"]))
    r = client.get("/api/me", headers=bearer(user["token"]))
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_a_change_to_an_account_deleted_meanwhile_is_401_not_500(client, db, db_env, user):
    """A PUT /api/me whose account is deleted meanwhile (after its token was checked) is 401, not 500.
    Hint: the UPDATE finds no row, and the commit raises StaleDataError (sqlalchemy.orm.exc)."""
    r = deleted_while_the_app_waits(db_env, db, user["id"], lambda: put_me(client, user, {"name": "Ada L"}))
    assert r.status_code == 401, r.text
    assert r.json() == {"detail": "Invalid or expired token: log in again"}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_me_without_a_valid_token_is_401_and_changes_nothing(client, db, user, method):
    before = stored(db, user["id"])
    for headers in ({}, bearer(user["token"] + "x")):
        r = client.request(method, "/api/me", headers=headers, json={"name": "Mallory"})
        assert r.status_code == 401, r.text
        assert r.headers["WWW-Authenticate"] == "Bearer"
    assert stored(db, user["id"]) == before


def test_openapi_marks_every_me_endpoint_as_needing_a_token(client):
    paths = client.get("/openapi.json").json()["paths"]
    secured = {method: bool(paths["/api/me"][method].get("security")) for method in ("get", "put", "delete")}
    assert secured == {"get": True, "put": True, "delete": True}


# --- EmailStr -------------------------------------------------------------------------------

# Addresses a simple "something@something.something" pattern lets through.
@pytest.mark.parametrize("email", ["ada..lovelace@example.com", ".ada@example.com", "ada@-example.com",
                                   "ada@example.com.", "ada@exa_mple.com"])
def test_malformed_email_is_422_at_signup_and_in_put_me(client, user, email):
    r = client.post("/api/users", json={"name": "Ada", "email": email, "password": PASSWORD})
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "email"]], r.text
    r = put_me(client, user, {"email": email})
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "email"]], r.text


# --- the OpenAPI document tells the truth about emails -------------------------------------

def email_schema(client, path: str, method: str) -> dict:
    """What /openapi.json says the email in the body of METHOD PATH must be (the string, not null;
    without its title, a label for people)."""
    openapi = client.get("/openapi.json").json()
    body = openapi["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    email = openapi["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]["properties"]["email"]
    string = next(schema for schema in email.get("anyOf", [email]) if schema.get("type") == "string")
    return {key: value for key, value in string.items() if key != "title"}


def test_signup_login_and_put_me_describe_emails_alike(client):
    signup = email_schema(client, "/api/users", "post")
    assert email_schema(client, "/api/login", "post") == signup
    assert email_schema(client, "/api/me", "put") == signup


# `format: email` alone allows every one of these. Whatever the API accepts, the document must
# say so: a client (or Schemathesis) that sends what the schema allows never gets a 422, and
# what the schema refuses gets one. jsonschema_rs is the validator Schemathesis itself uses.
@pytest.mark.parametrize("address", [
    "agree@example.com", "Agree.Case+tag@Mail.Example.org", "ada@lab.test", "ada@LAB.Test",
    "ada@printer.local", "ada@b.invalid", "ada@host.localhost", "root@localhost", "ada@x.onion",
    "ada@10.in-addr.arpa", "ada@host.123", '"ada l"@example.com', "ada@[127.0.0.1]"])
def test_the_openapi_document_and_the_api_agree_on_an_email(client, user, address):
    import jsonschema_rs

    schema = email_schema(client, "/api/me", "put")
    allowed = jsonschema_rs.validator_for(schema, validate_formats=True).is_valid(address)
    r = put_me(client, user, {"email": address})
    said = "allows" if allowed else "refuses"
    assert r.status_code == (200 if allowed else 422), (
        f"the OpenAPI schema {said} {address!r} but the API answered {r.status_code}: give the"
        f" email field the Email type of docs/api.md, so that both agree. {r.text}")


# --- the dependencies -----------------------------------------------------------------------

def test_get_db_closes_its_session_however_the_request_ends(client, user, db, monkeypatch):
    import database
    import deps

    opened, closed = [], []

    class Watched(Session):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            opened.append(self)

        def close(self):
            closed.append(self)
            super().close()

    # The lesson's own sessionmaker settings (expire_on_commit...), with the watched class.
    monkeypatch.setattr(deps, "SessionLocal", sessionmaker(**{**database.SessionLocal.kw, "class_": Watched}))
    with db.cursor() as cur:
        cur.execute("INSERT INTO users (name, email) VALUES ('Bo', 'bo-watched@example.com')")
    answers = [client.get("/api/me", headers=bearer(user["token"])).status_code,  # 200
               client.get("/api/me", headers=bearer("forged")).status_code,  # 401
               put_me(client, user, {"email": "bo-watched@example.com"}).status_code,  # 409
               client.get("/api/test-db").status_code]  # 200
    assert answers == [200, 401, 409, 200]
    assert len(opened) == 4 and closed == opened


def test_no_request_holds_a_connection_while_it_waits_for_a_worker_thread(client, user, monkeypatch):
    """No request holds a connection while it waits for a worker thread.

    FastAPI runs each `def` dependency, each `def` endpoint and the check of its answer in a
    worker thread, one step at a time, from a pool of 40; the engine lends 15 connections. A
    request that keeps its connection from one step to the next makes a crowd deadlock: a
    hundred GET /api/me at once, every thread waiting for a connection and every connection
    held by a request waiting for a thread, until the pool gives up after 30 s (make bench-pool).
    So here every step is watched, one request at a time: when it asks for a thread, this
    request's session must hold none of the pool's connections.
    Hint: end get_current_user's read with db.commit() (SessionLocal with
    expire_on_commit=False keeps the user's values), and answer signup and PUT /api/me without
    db.refresh(), which would read again and keep the connection while the answer is checked."""
    import anyio.to_thread

    import database

    held = []  # the pool's connections checked out at each step that asks for a worker thread
    run_sync = anyio.to_thread.run_sync

    async def watched(function, *args, limiter=None, **kwargs):
        if limiter is None:  # the 40 threads (a yield dependency's exit has a limiter of its own)
            held.append(database.engine.pool.checkedout())
        return await run_sync(function, *args, limiter=limiter, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", watched)
    signup = {"name": "Bo", "email": f"{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD}
    answers = [client.get("/api/me", headers=bearer(user["token"])).status_code,
               put_me(client, user, {"name": "Grace"}).status_code,
               client.post("/api/users", json=signup).status_code]
    assert answers == [200, 200, 201]
    assert len(held) >= 9 and set(held) == {0}, f"connections held at each step: {held}"


def test_get_db_can_be_swapped_and_a_database_down_is_503(app, client, user, closed_port):
    """dependency_overrides replaces a dependency everywhere: here with a database that is down."""
    import deps

    engine = create_engine(f"postgresql+psycopg2://nobody@127.0.0.1:{closed_port}/none")
    down = sessionmaker(bind=engine)

    def get_db_down():
        with down() as db:
            yield db

    app.dependency_overrides[deps.get_db] = get_db_down
    try:
        r = client.get("/api/me", headers=bearer(user["token"]))
    finally:
        app.dependency_overrides.clear()
        engine.dispose()
    assert r.status_code == 503, r.text
    assert r.json() == {"detail": "Database unavailable, try again later"}


def test_no_free_connection_in_the_pool_is_503_not_500(app, client, user):
    """No free connection in the pool is 503, not 500.

    A pool that has no connection free within its timeout is as good as a database that is
    down: 503, not a 500 and a traceback. Here get_db's sessions come from a pool of one
    connection, which the test holds, and which waits 0.2 s for it.
    Hint: sqlalchemy.exc.TimeoutError (the pool's, not Python's) needs the same
    @app.exception_handler as OperationalError."""
    import database
    import deps

    engine = create_engine(database.engine.url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    busy = sessionmaker(bind=engine)

    def get_db_busy():
        with busy() as db:
            yield db

    app.dependency_overrides[deps.get_db] = get_db_busy
    taken = engine.connect()  # the pool's only connection
    try:
        r = client.get("/api/me", headers=bearer(user["token"]))
    finally:
        app.dependency_overrides.clear()
        taken.close()
        engine.dispose()
    assert r.status_code == 503, r.text
    assert r.json() == {"detail": "Database unavailable, try again later"}


def test_login_still_gives_a_token_that_me_accepts(client, user):
    r = client.post("/api/login", json={"email": user["email"], "password": PASSWORD})
    assert r.status_code == 200, r.text
    me = client.get("/api/me", headers=bearer(r.json()["access_token"]))
    assert me.json() == {"id": user["id"], "name": "Ada", "email": user["email"]}, me.text


# --- logging --------------------------------------------------------------------------------

def test_log_names_signups_logins_and_failures_but_no_password_hash_or_token(live_api, db):
    api = live_api()
    email, password, new_password = "logged@example.com", "log-me-not-1", "log-me-not-2"
    created = web.post(f"{api.url}/api/users", json={"name": "Lou", "email": email, "password": password})
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    web.post(f"{api.url}/api/users", json={"name": "Lou", "email": email, "password": password})
    login = web.post(f"{api.url}/api/login", json={"email": email, "password": password})
    token = login.json()["access_token"]
    web.post(f"{api.url}/api/login", json={"email": email, "password": "wrong-password"})
    web.put(f"{api.url}/api/me", headers=bearer(token), json={"password": new_password})
    web.get(f"{api.url}/api/me", headers=bearer(token + "x"))
    password_hash = stored(db, user_id)[2]
    api.stop()
    output = api.log()
    for event in (f"signup: user {user_id}", "signup refused", f"login: user {user_id}",
                  f"login failed: wrong password for user {user_id}", f"user {user_id} changed password",
                  "token refused"):
        assert event in output, output
    # Nor a part of one: any 8 characters in a row of it (a hash past its "$2b$12$" prefix)
    for what, secret in (("password", password), ("new password", new_password), ("token", token),
                         ("password hash", password_hash[7:])):
        part = next((secret[i:i + 8] for i in range(len(secret) - 7) if secret[i:i + 8] in output), None)
        assert part is None, f"{part!r}, part of the {what}, is in the log:\n{output}"
    assert "$2b$" not in output, f"a password hash is in the log:\n{output}"


# --- the settings page ----------------------------------------------------------------------

def open_settings(page, pages, user) -> None:
    log_in_page(page, pages, user, "settings.html")
    page.wait_for_function("document.querySelector('input[name=name]').value !== ''")


def test_settings_page_changes_only_the_name_and_home_greets_with_it(pages, page, db, user):
    before = stored(db, user["id"])
    open_settings(page, pages, user)
    page.fill("input[name=name]", "Grace")
    page.click("button[type=submit]")
    # Whatever #message says while the request runs ("Saving…"), the outcome is "Saved: ...".
    text = text_when(page, "#message", lambda text: text.startswith("Saved"), "the page says Saved: name.")
    assert text == "Saved: name.", text
    assert stored(db, user["id"]) == ("Grace", *before[1:])
    page.goto(f"{pages.url}/home.html")
    page.wait_for_function("document.getElementById('greeting').textContent === 'Hello, Grace!'")


def test_settings_page_deletes_the_account_and_forgets_the_token(pages, page, db, user):
    open_settings(page, pages, user)
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete your account?" -> OK
    page.click("#delete")
    page.wait_for_url("**/signup.html")
    assert page.evaluate("localStorage.getItem('token')") is None
    assert stored(db, user["id"]) is None
