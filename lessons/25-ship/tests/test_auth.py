"""Logging in: POST /api/login, email and password in, a token out."""

from helpers import PASSWORD, bearer


def test_login_gives_a_token_for_me(client, user):
    r = client.post("/api/login", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "bearer"
    me = client.get("/api/me", headers=bearer(r.json()["access_token"]))
    assert me.json()["id"] == user.id


def test_login_with_a_wrong_password_is_401(client, user):
    r = client.post("/api/login", json={"email": user.email, "password": "wrong-password"})
    assert r.status_code == 401, r.text
    assert r.json() == {"detail": "Wrong email or password"}


def test_login_with_an_unknown_email_is_401(client):
    r = client.post("/api/login", json={"email": "nobody@example.com", "password": PASSWORD})
    assert r.status_code == 401, r.text
    assert r.json() == {"detail": "Wrong email or password"}
