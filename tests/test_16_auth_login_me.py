"""Lesson 16: signup, login with a JWT, GET /api/me; the open user endpoints are gone.

bcrypt is slow on purpose (a few tenths of a second per hash or check), so most tests share one
signed-up user (`ada`, made once per module) and make their bad tokens with PyJWT directly.
"""

import base64
import importlib.util
import json
import os
import sys
from datetime import UTC, datetime

import jwt
import pytest

from helpers import JWT_SECRET as SECRET  # the secret conftest gives the app
from helpers import (
    SIGNUP_FORM,
    alembic,
    bearer,
    exit_or_listen,
    insert_user,
    needs_pages,
    open_page,
    token_for,
)

os.environ.pop("EXPIRY_MINUTES", None)  # the default, 60, whatever the shell says

ADA = {"name": "Ada", "email": "ada@example.com", "password": "secret123"}
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def signup(client, user) -> dict:
    r = client.post("/api/users", json=user)
    assert r.status_code == 201, r.text
    return r.json()


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def ada(app) -> dict:
    """Ada, signed up once for the module: {"id", "name", "email"}."""
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        return signup(client, ADA)


@pytest.fixture(scope="module")
def ada_login(app, ada) -> dict:
    """Ada's answer from POST /api/login, once for the module."""
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        r = client.post("/api/login", json={"email": ADA["email"], "password": ADA["password"]})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def ada_token(ada_login) -> str:
    return ada_login["access_token"]


# --- signup ---------------------------------------------------------------------------------

def test_signup_is_201_with_id_name_and_email(client):
    r = client.post("/api/users", json={"name": "Bo", "email": "bo@example.com", "password": "secret123"})
    assert r.status_code == 201, r.text
    assert r.json() == {"id": r.json()["id"], "name": "Bo", "email": "bo@example.com"}


def test_email_already_taken_is_409(client, ada):
    r = client.post("/api/users", json={**ADA, "name": "Other"})
    assert r.status_code == 409, r.text
    assert r.json() == {"detail": "Email already registered"}


def test_email_taken_in_another_case_is_409(client, ada):
    r = client.post("/api/users", json={**ADA, "email": "ADA@Example.COM"})
    assert r.status_code == 409, r.text


def test_email_is_stored_in_lower_case(client, db):
    user = signup(client, {"name": "Cy", "email": "Cy.Lee@Example.com", "password": "secret123"})
    assert user["email"] == "cy.lee@example.com", user
    with db.cursor() as cur:
        cur.execute("SELECT email FROM users WHERE id = %s", (user["id"],))
        assert cur.fetchone() == ("cy.lee@example.com",)


# --- login ----------------------------------------------------------------------------------

def test_login_returns_a_bearer_token(ada_login):
    assert ada_login == {"access_token": ada_login["access_token"], "token_type": "bearer"}


def test_login_email_is_not_case_sensitive(client, ada):
    r = client.post("/api/login", json={"email": "Ada@EXAMPLE.com", "password": ADA["password"]})
    assert r.status_code == 200, r.text


# The same answer for both: the login does not tell which emails have an account.
@pytest.mark.parametrize("email, password", [(ADA["email"], "wrong-password"),
                                             ("nobody@example.com", ADA["password"])],
                         ids=["wrong password", "unknown email"])
def test_wrong_password_or_unknown_email_is_the_same_401(client, ada, email, password):
    r = client.post("/api/login", json={"email": email, "password": password})
    assert r.status_code == 401, r.text
    assert (r.json(), r.headers["WWW-Authenticate"]) == ({"detail": "Wrong email or password"}, "Bearer")


def test_user_without_a_password_cannot_log_in(client, db):
    insert_user(db, "Old", "old@example.com")  # a lesson-10 user: no password_hash
    r = client.post("/api/login", json={"email": "old@example.com", "password": "anything"})
    assert r.status_code == 401, r.text


def test_login_with_a_password_too_long_for_bcrypt_is_422(client):
    r = client.post("/api/login", json={"email": ADA["email"], "password": "é" * 40})  # 80 bytes
    assert r.status_code == 422, r.text


def test_token_is_hs256_with_the_user_id_as_sub_and_exp_in_60_minutes(ada, ada_token):
    assert jwt.get_unverified_header(ada_token)["alg"] == "HS256"
    claims = jwt.decode(ada_token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(ada["id"]), claims
    minutes_left = (claims["exp"] - datetime.now(UTC).timestamp()) / 60
    assert 55 < minutes_left <= 60, claims


def test_token_says_when_it_was_issued_and_lives_60_minutes_from_then(ada_token):
    claims = jwt.decode(ada_token, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 60 * 60, claims
    assert datetime.now(UTC).timestamp() - claims["iat"] < 5 * 60, claims


def test_token_lifetime_follows_expiry_minutes(app, monkeypatch):
    import main

    # EXPIRY_MINUTES is read from the environment when the app starts: change it where it lives.
    monkeypatch.setattr(sys.modules[main.create_token.__module__], "EXPIRY_MINUTES", 5)
    claims = jwt.decode(main.create_token(7), SECRET, algorithms=["HS256"])
    minutes_left = (claims["exp"] - datetime.now(UTC).timestamp()) / 60
    assert 4 < minutes_left <= 5, claims


# --- GET /api/me ----------------------------------------------------------------------------

def test_me_returns_the_user_of_the_token(client, ada, ada_token):
    r = client.get("/api/me", headers=bearer(ada_token))
    assert r.status_code == 200, r.text
    assert r.json() == ada


def test_me_without_a_token_is_401(client):
    r = client.get("/api/me")
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == "Bearer"


FAR_FUTURE = 4102444800  # 2100-01-01 as a Unix time: a claim no test waits for
YEAR_9999 = datetime(9999, 12, 31, tzinfo=UTC)
NOW = int(datetime.now(UTC).timestamp())
WRONG_SECRET = "another-secret-also-32-bytes-long!!"
UNSIGNED = b64({"alg": "none", "typ": "JWT"})


def signed(claims: dict) -> str:
    """A token with exactly these claims, signed with the app's own secret."""
    return jwt.encode(claims, SECRET, algorithm="HS256")


def tampered(token: str) -> str:
    """The same signature over a payload that now claims to be user 1."""
    header, _, signature = token.split(".")
    return ".".join([header, b64({"sub": "1", "exp": FAR_FUTURE}), signature])


BAD_AUTHORIZATION = {
    "expired": lambda ada, token: f"Bearer {token_for(ada['id'], minutes=-1)}",
    "tampered": lambda ada, token: f"Bearer {tampered(token)}",
    "wrong secret": lambda ada, token: f"Bearer {token_for(ada['id'], secret=WRONG_SECRET)}",
    "alg none": lambda ada, token: f"Bearer {UNSIGNED}.{b64({'sub': str(ada['id']), 'exp': FAR_FUTURE})}.",
    "no exp": lambda ada, token: f"Bearer {signed({'sub': str(ada['id']), 'iat': NOW})}",
    "no sub": lambda ada, token: f"Bearer {signed({'iat': NOW, 'exp': FAR_FUTURE})}",
    "no iat": lambda ada, token: f"Bearer {signed({'sub': str(ada['id']), 'exp': FAR_FUTURE})}",
    # Each of these is signed with the app's secret, yet lives longer than any token it makes.
    "exp in the year 9999": lambda ada, token: f"Bearer {token_for(ada['id'], exp=YEAR_9999)}",
    "issued 2 hours ago, exp ahead": lambda ada, token: f"Bearer {token_for(ada['id'], iat=NOW - 7200)}",
    "sub not a number": lambda ada, token: f"Bearer {token_for('ada')}",
    "sub beyond any id": lambda ada, token: f"Bearer {token_for(10**12)}",
    "no such user": lambda ada, token: f"Bearer {token_for(2_147_483_647)}",
    "garbage": lambda ada, token: "Bearer not-a-token",
    "three dots of garbage": lambda ada, token: "Bearer a.b.c",
    "scheme but no token": lambda ada, token: "Bearer",
    "another scheme": lambda ada, token: f"Basic {token}",
    "token without a scheme": lambda ada, token: token,
}


@pytest.mark.parametrize("kind", BAD_AUTHORIZATION)
def test_every_bad_token_is_401(client, ada, ada_token, kind):
    r = client.get("/api/me", headers={"Authorization": BAD_AUTHORIZATION[kind](ada, ada_token)})
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == "Bearer"


# create_token writes sub as str(user_id): "7". int() reads each of these as 7 too.
@pytest.mark.parametrize("written", [" {id} ", "+{id}", "0{id}", "{id}\n", "{arabic}"],
                         ids=["spaces", "plus sign", "leading zero", "newline", "arabic digits"])
def test_a_sub_not_written_the_way_the_app_writes_ids_is_401(client, ada, written):
    arabic = str(ada["id"]).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    r = client.get("/api/me", headers=bearer(token_for(written.format(id=ada["id"], arabic=arabic))))
    assert r.status_code == 401, r.text


def test_token_of_a_deleted_user_is_401(client, db):
    user_id = insert_user(db, "Gone", "gone@example.com")
    token = token_for(user_id)
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    with db.cursor() as cur:
        cur.execute("DELETE FROM users WHERE id = %s", (user_id,))
    r = client.get("/api/me", headers=bearer(token))
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == "Bearer"


# --- Swagger's Authorize button -------------------------------------------------------------

def test_openapi_says_me_needs_a_token(client):
    openapi = client.get("/openapi.json").json()
    [requirement] = openapi["paths"]["/api/me"]["get"]["security"]
    assert set(requirement) <= set(openapi["components"]["securitySchemes"]), openapi["components"]


def test_a_token_sent_the_way_swagger_sends_it_works(client, ada, ada_token):
    """Swagger UI reads the security scheme from /openapi.json and sends what it says."""
    openapi = client.get("/openapi.json").json()
    [name] = openapi["paths"]["/api/me"]["get"]["security"][0]
    scheme = openapi["components"]["securitySchemes"][name]
    if scheme["type"] == "oauth2":  # Swagger posts a form to tokenUrl, then sends the token
        form = {"username": ADA["email"], "password": ADA["password"]}
        token = client.post(scheme["flows"]["password"]["tokenUrl"], data=form).json()["access_token"]
    else:  # http bearer: you paste the token from /api/login into the Authorize box
        assert (scheme["type"], scheme["scheme"].lower()) == ("http", "bearer"), scheme
        token = ada_token
    r = client.get("/api/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["email"] == ADA["email"]


# --- the open user endpoints of 13-15 are closed --------------------------------------------

@pytest.mark.parametrize("method, path", [("GET", "/api/users"), ("GET", "/api/users/{id}"),
                                          ("PUT", "/api/users/{id}"), ("DELETE", "/api/users/{id}")])
def test_nobody_can_list_read_change_or_delete_users_by_id(client, ada, db, method, path):
    r = client.request(method, path.format(id=ada["id"]), json={"name": "Mallory", "email": "m@example.com"})
    assert r.status_code in (404, 405), r.text
    with db.cursor() as cur:
        cur.execute("SELECT name FROM users WHERE id = %s", (ada["id"],))
        assert cur.fetchone() == ("Ada",)


# --- JWT_SECRET -----------------------------------------------------------------------------

def test_app_refuses_to_start_without_jwt_secret(lesson, db_env):
    """uvicorn exits with one line that names JWT_SECRET, and no traceback."""
    code, output = exit_or_listen(lesson.uvicorn, lesson.path, {**os.environ, "JWT_SECRET": ""})
    if code is None:
        pytest.fail(f"the app started without JWT_SECRET: {output}")
    lines = output.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "JWT_SECRET" in lines[0], lines


def test_a_secret_too_short_for_hs256_stops_the_app_too(app, monkeypatch):
    """The module that reads JWT_SECRET, run again with 9 bytes of secret: it stops (SystemExit)."""
    import main

    monkeypatch.setenv("JWT_SECRET", "too-short")
    reads_the_secret = sys.modules[main.create_token.__module__].__file__  # auth.py here
    spec = importlib.util.spec_from_file_location("again", reads_the_secret)
    with pytest.raises(SystemExit, match="JWT_SECRET"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


# --- the migration: emails become unique ----------------------------------------------------

def test_migration_keeps_every_user_when_15_let_an_email_in_twice(lesson, app, db):
    alembic(lesson.path, "downgrade", "0002")  # back to lesson 15: no UNIQUE, any case
    try:
        ids = [insert_user(db, name, email) for name, email in
               [("Dup1", "dup@example.com"), ("Dup2", "Dup@Example.com"), ("Dup3", "dup@example.com"),
                ("Mixed", "Mixed.Case@Example.com")]]
        output = alembic(lesson.path, "upgrade", "head")
    except BaseException:
        alembic(lesson.path, "upgrade", "head")  # leave the database at head for the other tests
        raise
    with db.cursor() as cur:
        cur.execute("SELECT id, name, email FROM users WHERE id = ANY(%s) ORDER BY id", (ids,))
        rows = cur.fetchall()
    # The oldest keeps the email (in lower case); the later ones stay, without an email.
    assert rows == [(ids[0], "Dup1", "dup@example.com"), (ids[1], "Dup2", None), (ids[2], "Dup3", None),
                    (ids[3], "Mixed", "mixed.case@example.com")]
    assert f"{[ids[1], ids[2]]}" in output, output  # and the log names them


def test_models_and_migrations_agree(lesson, app):
    assert "No new upgrade operations detected" in alembic(lesson.path, "check")


def test_the_database_keeps_emails_unique(app, db):
    """The database keeps emails unique (a unique constraint or index on users.email)"""
    with db.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'users'")
        indexes = [row[0] for row in cur.fetchall()]
    assert any("UNIQUE" in index and "email" in index for index in indexes), indexes


# --- the pages: signup -> login -> greeting -------------------------------------------------

def test_signup_then_login_greets_the_user_by_name(pages, page):
    needs_pages(pages, "login.html", "home.html")
    open_page(page, f"{pages.url}/signup.html", *SIGNUP_FORM)
    page.fill("input[name=name]", "<i>Al</i>")  # shown as text, never as HTML
    page.fill("input[name=email]", "al@example.com")
    page.fill("input[name=password]", "secret123")
    page.click("button[type=submit]")
    page.wait_for_url("**/login.html*")
    assert page.input_value("input[name=email]") == "al@example.com"
    page.fill("input[name=password]", "secret123")
    page.click("button[type=submit]")
    page.wait_for_url("**/home.html")
    page.wait_for_function("document.getElementById('greeting').textContent.startsWith('Hello, ')")
    assert page.text_content("#greeting") == "Hello, <i>Al</i>!"
    assert page.locator("#greeting i").count() == 0


def test_logging_out_forgets_the_token(pages, page, ada, ada_token):
    open_page(page, f"{pages.url}/login.html")
    page.evaluate("token => localStorage.setItem('token', token)", ada_token)
    open_page(page, f"{pages.url}/home.html", "#greeting", "#logout")
    page.wait_for_function("document.getElementById('greeting').textContent === 'Hello, Ada!'")
    page.click("#logout")
    page.wait_for_url("**/login.html")
    assert page.evaluate("localStorage.getItem('token')") is None


def test_home_without_a_valid_token_goes_to_the_login_page(pages, page):
    open_page(page, f"{pages.url}/login.html")
    page.evaluate("localStorage.setItem('token', 'expired-or-forged')")
    open_page(page, f"{pages.url}/home.html")
    page.wait_for_url("**/login.html")
    assert page.evaluate("localStorage.getItem('token')") is None
