"""Lesson 05: PUT /api/users/{id} replaces a profile, DELETE removes it; ids are never reused.

In this lesson an unknown id still crashes the app (lesson 06 turns that into a 404), so the
tests only ask that such a request does not succeed, the way a real server would answer it.
"""

import pytest
from fastapi.testclient import TestClient

from helpers import create_user

ALAN = {"name": "Alan", "role": "developer", "place": "London"}
GRACE = {"name": "Grace", "role": "designer", "place": "New York"}
MOVED = {"name": "Alan T.", "role": "product-manager", "place": "Manchester"}
NEVER_GIVEN = 10**9


@pytest.fixture
def server(app):
    """Like `client`, but a crash in the app comes back as a 500 answer, as uvicorn sends it."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def create(client, profile) -> int:
    return create_user(client, profile, status=200)  # 201 Created comes with lesson 06


def delete(client, user_id: int) -> None:
    r = client.delete(f"/api/users/{user_id}")
    assert r.status_code == 200, r.text


def test_put_answers_the_new_profile(client):
    user_id = create(client, ALAN)
    r = client.put(f"/api/users/{user_id}", json=MOVED)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": user_id, **MOVED}


def test_get_after_put_shows_the_new_profile(client):
    user_id = create(client, ALAN)
    r = client.put(f"/api/users/{user_id}", json=MOVED)
    assert r.status_code == 200, r.text
    r = client.get(f"/api/users/{user_id}")
    assert r.json() == {"id": user_id, **MOVED}, r.text


def test_put_changes_only_that_user(client):
    alan, grace = create(client, ALAN), create(client, GRACE)
    r = client.put(f"/api/users/{alan}", json=MOVED)
    assert r.status_code == 200, r.text
    r = client.get(f"/api/users/{grace}")
    assert r.json() == {"id": grace, **GRACE}, r.text


def test_put_does_not_create_a_user(server):
    r = server.put(f"/api/users/{NEVER_GIVEN}", json=ALAN)
    assert r.is_error, r.text
    r = server.get(f"/api/users/{NEVER_GIVEN}")
    assert r.is_error, r.text


def test_delete_answers_a_message(client):
    user_id = create(client, ALAN)
    r = client.delete(f"/api/users/{user_id}")
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "User deleted"}


def test_deleted_user_is_gone(server):
    user_id = create(server, ALAN)
    delete(server, user_id)
    r = server.get(f"/api/users/{user_id}")
    assert r.is_error, r.text


def test_deleted_user_cannot_be_deleted_again(server):
    user_id = create(server, ALAN)
    delete(server, user_id)
    r = server.delete(f"/api/users/{user_id}")
    assert r.is_error, r.text


def test_delete_leaves_other_users(client):
    alan, grace = create(client, ALAN), create(client, GRACE)
    delete(client, alan)
    r = client.get(f"/api/users/{grace}")
    assert r.json() == {"id": grace, **GRACE}, r.text


def test_id_of_deleted_newest_user_is_not_reused(client):
    first, second = create(client, ALAN), create(client, GRACE)
    delete(client, second)
    third = create(client, ALAN)
    assert third == second + 1, (first, second, third)


def test_id_of_deleted_older_user_is_not_reused(client):
    first, second = create(client, ALAN), create(client, GRACE)
    delete(client, first)
    third = create(client, ALAN)
    assert third == second + 1, (first, second, third)


# --- Hardening (H3): a PUT cannot store what could never be sent back ---


def test_put_of_a_lone_surrogate_is_400_and_keeps_the_profile(client):
    user_id = create(client, ALAN)
    body = '{"name": "Al\\ud800", "role": "developer", "place": "London"}'
    r = client.put(f"/api/users/{user_id}", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert list(r.json()) == ["detail"] and isinstance(r.json()["detail"], str), r.text  # any words
    assert client.get(f"/api/users/{user_id}").json() == {"id": user_id, **ALAN}
