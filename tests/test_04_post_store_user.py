"""Lesson 04: POST /api/users stores a profile in memory; GET /api/users/{id} returns it.

The users dict lives as long as the app: other tests' users are in it too, so no test assumes
which id it gets; each one creates what it needs and reads the id from the answer.
"""

import pytest

from helpers import create_user, get_user

ALAN = {"name": "Alan", "role": "developer", "place": "London"}
GRACE = {"name": "Grace", "role": "designer", "place": "New York"}


def create(client, profile) -> int:
    return create_user(client, profile, status=200)  # 201 Created comes with lesson 06


def test_create_answers_id_and_message(client):
    r = client.post("/api/users", json=ALAN)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": r.json()["id"], "message": "User profile saved!"}
    assert type(r.json()["id"]) is int, r.text


def test_fetch_returns_the_profile_with_its_id(client):
    user_id = create(client, ALAN)
    assert get_user(client, user_id) == {"id": user_id, **ALAN}


def test_two_creates_get_different_ids(client):
    assert create(client, ALAN) != create(client, ALAN)


def test_ids_are_unique(client):
    ids = [create(client, ALAN) for _ in range(5)]
    assert len(set(ids)) == 5, ids


def test_each_user_keeps_its_own_profile(client):
    alan, grace = create(client, ALAN), create(client, GRACE)
    assert client.get(f"/api/users/{alan}").json() == {"id": alan, **ALAN}
    assert client.get(f"/api/users/{grace}").json() == {"id": grace, **GRACE}


def test_non_ascii_text_round_trips(client):
    profile = {"name": "Zoë", "role": "designer", "place": "São Paulo"}
    user_id = create(client, profile)
    r = client.get(f"/api/users/{user_id}")
    assert r.json() == {"id": user_id, **profile}, r.text


def test_path_id_must_be_a_number(client):
    r = client.get("/api/users/alan")
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["path", "user_id"], r.text


def test_body_must_be_a_json_object(client):
    r = client.post("/api/users", json=["Alan", "developer", "London"])
    assert r.status_code == 422, r.text


def test_openapi_shows_the_body_and_the_path_param(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "requestBody" in paths["/api/users"]["post"], paths
    [param] = paths["/api/users/{user_id}"]["get"]["parameters"]
    assert (param["name"], param["in"], param["schema"]["type"]) == ("user_id", "path", "integer"), param


# --- Hardening (H3): a profile that could never be sent back is refused, not stored ---

NOT_SENDABLE = {
    "lone-surrogate": '{"name": "Al\\ud800", "role": "developer", "place": "London"}',
    "nested-surrogate": '{"name": "Alan", "role": {"x": ["\\udc00"]}, "place": "London"}',
    "nan": '{"name": "Alan", "role": NaN, "place": "London"}',
}


@pytest.mark.parametrize("body", NOT_SENDABLE.values(), ids=NOT_SENDABLE.keys())
def test_profile_that_cannot_be_sent_back_is_400(client, body):
    before = create(client, ALAN)
    r = client.post("/api/users", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert list(r.json()) == ["detail"] and isinstance(r.json()["detail"], str), r.text  # any words
    assert create(client, ALAN) == before + 1  # the refused profile took no id: nothing stored
