"""Tokens that end: logout, logout everywhere, a new password or email; and the sockets."""

import pytest
from starlette.websockets import WebSocketDisconnect

from helpers import PASSWORD, bearer


def log_in(client, email: str, password: str = PASSWORD) -> dict:
    r = client.post("/api/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return bearer(r.json()["access_token"])


def test_logout_ends_this_token_only(client, user):
    here, elsewhere = log_in(client, user.email), log_in(client, user.email)
    assert client.post("/api/logout", headers=here).status_code == 204
    assert client.get("/api/me", headers=here).status_code == 401
    assert client.get("/api/me", headers=elsewhere).status_code == 200


def test_logout_everywhere_ends_every_token(client, user):
    here, elsewhere = log_in(client, user.email), log_in(client, user.email)
    assert client.post("/api/logout-all", headers=here).status_code == 204
    assert client.get("/api/me", headers=here).status_code == 401
    assert client.get("/api/me", headers=elsewhere).status_code == 401
    assert client.get("/api/me", headers=log_in(client, user.email)).status_code == 200


@pytest.mark.parametrize("change", [{"password": "new-password"}, {"email": "new@example.com"}])
def test_a_new_password_or_email_ends_the_old_tokens(client, user, change):
    token = log_in(client, user.email)
    r = client.put("/api/me", headers=token, json={**change, "current_password": PASSWORD})
    assert r.status_code == 200, r.text
    assert client.get("/api/me", headers=token).status_code == 401


def test_a_new_password_needs_the_current_one(client, user, auth):
    assert client.put("/api/me", headers=auth, json={"password": "new-password"}).status_code == 422
    r = client.put("/api/me", headers=auth, json={"password": "new-password", "current_password": "not-mine"})
    assert r.status_code == 403, r.text
    assert r.json() == {"detail": "Current password is wrong"}
    assert client.get("/api/me", headers=auth).status_code == 200  # nothing changed, the token holds


def test_a_new_name_needs_no_password_and_ends_no_token(client, auth):
    assert client.put("/api/me", headers=auth, json={"name": "Grace"}).status_code == 200
    assert client.get("/api/me", headers=auth).status_code == 200


def test_a_logged_out_token_cannot_open_a_socket(client, user):
    token = log_in(client, user.email)
    client.post("/api/logout", headers=token)
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"token": token["Authorization"].removeprefix("Bearer ")})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008


def test_an_open_socket_closes_when_its_user_logs_out_everywhere(client, user, settings):
    settings.SOCKET_RECHECK_SECONDS = 0.1
    token = log_in(client, user.email)
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"token": token["Authorization"].removeprefix("Bearer ")})
        assert ws.receive_json() == {"type": "ready"}
        assert client.post("/api/logout-all", headers=token).status_code == 204
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008
