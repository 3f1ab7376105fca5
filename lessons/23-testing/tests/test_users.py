"""Signing up, and the logged-in user's own account: /api/users and /api/me."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from pydantic import SecretStr
from sqlalchemy import text

from helpers import PASSWORD, bearer, make_token


def test_signup_creates_the_user(client):
    r = client.post("/api/users", json={"name": "Ada", "email": "Ada@Example.com", "password": PASSWORD})
    assert r.status_code == 201, r.text
    # Exactly these keys: no password, and no hash of it either.
    assert r.json() == {"id": r.json()["id"], "name": "Ada", "email": "ada@example.com"}


def test_signup_with_a_taken_email_is_409(client, user):
    r = client.post("/api/users", json={"name": "Bob", "email": user.email, "password": PASSWORD})
    assert r.status_code == 409, r.text
    assert r.json() == {"detail": "Email already registered"}


def test_signup_with_a_short_password_is_422(client):
    r = client.post("/api/users", json={"name": "Ada", "email": "ada@example.com", "password": "12345"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "password"]


def test_me_is_the_logged_in_user(client, user, auth):
    r = client.get("/api/me", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": user.id, "name": "Ada", "email": user.email}


def test_me_without_a_token_is_401(client):
    r = client.get("/api/me")
    assert r.status_code == 401, r.text
    assert r.json() == {"detail": "Not logged in"}


def test_me_with_an_expired_token_is_401(client, user, settings):
    expired = make_token(user.id, settings, age=timedelta(minutes=settings.EXPIRY_MINUTES + 1))
    r = client.get("/api/me", headers=bearer(expired))
    assert r.status_code == 401, r.text
    assert r.json() == {"detail": "Invalid or expired token: log in again"}


def test_me_with_a_token_signed_by_another_key_is_401(client, user, settings):
    other_key = settings.model_copy(update={"JWT_SECRET": SecretStr("not-the-apps-secret-and-32-bytes-long")})
    forged = make_token(user.id, other_key)
    r = client.get("/api/me", headers=bearer(forged))
    assert r.status_code == 401, r.text


def test_update_me_changes_only_what_is_sent(client, user, auth):
    r = client.put("/api/me", headers=auth, json={"name": "Grace"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": user.id, "name": "Grace", "email": user.email}
    assert client.get("/api/me", headers=auth).json()["name"] == "Grace"


def test_update_me_with_a_new_password_changes_the_login(client, user, auth):
    r = client.put("/api/me", headers=auth, json={"password": "new-password"})
    assert r.status_code == 200, r.text
    login = {"email": user.email, "password": "new-password"}
    assert client.post("/api/login", json=login).status_code == 200
    assert client.post("/api/login", json={**login, "password": PASSWORD}).status_code == 401


def test_update_me_to_a_taken_email_is_409(client, make_user, auth):
    other = make_user("Bob")
    r = client.put("/api/me", headers=auth, json={"email": other.email})
    assert r.status_code == 409, r.text
    assert r.json() == {"detail": "Email already registered"}


def test_update_me_of_an_account_deleted_meanwhile_is_401(client, database, user, auth):
    # Another tab deletes the account while this PUT is under way, after its token was checked.
    # The test holds the user's row (FOR UPDATE) until the PUT waits to write it, then deletes
    # the account and lets go: the PUT's UPDATE finds no row.
    with database.connect() as holder, database.connect() as watcher, ThreadPoolExecutor(1) as pool:
        holder.execute(text("SELECT id FROM users WHERE id = :id FOR UPDATE"), {"id": user.id})
        answer = pool.submit(client.put, "/api/me", headers=auth, json={"name": "Grace"})
        waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        deadline = time.monotonic() + 10
        while not answer.done() and time.monotonic() < deadline:
            if watcher.execute(waiting).scalar():
                break
            watcher.rollback()  # a transaction sees pg_stat_activity as it was at its start
            time.sleep(0.01)
        holder.execute(text("DELETE FROM users WHERE id = :id"), {"id": user.id})
        holder.commit()
        r = answer.result(timeout=10)
    assert r.status_code == 401, r.text


def test_delete_me_deletes_the_account(client, user, auth):
    r = client.delete("/api/me", headers=auth)
    assert r.status_code == 204, r.text
    # The token is still well signed, but its user is gone.
    assert client.get("/api/me", headers=auth).status_code == 401
    assert client.post("/api/login", json={"email": user.email, "password": PASSWORD}).status_code == 401
