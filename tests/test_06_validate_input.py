"""Lesson 06: hand-written validation answers 400 {"error": ...}; unknown ids answer 404.

Every bad profile is tried on POST and on PUT, and must come back with its exact message.
"""

import pytest

from helpers import create_user, get_user

ALAN = {"name": "Alan", "role": "developer", "place": "London"}
NEVER_GIVEN = 10**9

NAME_PROBLEM = "name must be a string"
ROLE_PROBLEM = "role must be one of: developer, designer, product-manager"
PLACE_PROBLEM = "place must be a non-empty string"


def without(field: str) -> dict:
    return {k: v for k, v in ALAN.items() if k != field}


BAD_PROFILES = [
    pytest.param(without("name"), NAME_PROBLEM, id="name-missing"),
    pytest.param({**ALAN, "name": 42}, NAME_PROBLEM, id="name-a-number"),
    pytest.param({**ALAN, "name": None}, NAME_PROBLEM, id="name-null"),
    pytest.param({**ALAN, "name": ["Alan"]}, NAME_PROBLEM, id="name-a-list"),
    pytest.param(without("role"), ROLE_PROBLEM, id="role-missing"),
    pytest.param({**ALAN, "role": "tester"}, ROLE_PROBLEM, id="role-tester"),
    pytest.param({**ALAN, "role": "pilot"}, ROLE_PROBLEM, id="role-unknown"),
    pytest.param({**ALAN, "role": "Developer"}, ROLE_PROBLEM, id="role-wrong-case"),
    pytest.param({**ALAN, "role": ["developer"]}, ROLE_PROBLEM, id="role-a-list"),
    pytest.param(without("place"), PLACE_PROBLEM, id="place-missing"),
    pytest.param({**ALAN, "place": ""}, PLACE_PROBLEM, id="place-empty"),
    pytest.param({**ALAN, "place": "   "}, PLACE_PROBLEM, id="place-whitespace"),
    pytest.param({**ALAN, "place": 7}, PLACE_PROBLEM, id="place-a-number"),
    pytest.param({**ALAN, "place": None}, PLACE_PROBLEM, id="place-null"),
]


def test_create_answers_201(client):
    r = client.post("/api/users", json=ALAN)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": r.json()["id"], "message": "User profile saved!"}


@pytest.mark.parametrize("role", ["developer", "designer", "product-manager"])
def test_each_allowed_role_is_accepted(client, role):
    r = client.post("/api/users", json={**ALAN, "role": role})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(("profile", "problem"), BAD_PROFILES)
def test_bad_create_is_400(client, profile, problem):
    r = client.post("/api/users", json=profile)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": problem}


@pytest.mark.parametrize(("profile", "problem"), BAD_PROFILES)
def test_bad_update_is_400(client, profile, problem):
    user_id = create_user(client, ALAN)
    r = client.put(f"/api/users/{user_id}", json=profile)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": problem}


def test_bad_update_keeps_the_profile(client):
    user_id = create_user(client, ALAN)
    client.put(f"/api/users/{user_id}", json={**ALAN, "role": "tester"})
    assert get_user(client, user_id) == {"id": user_id, **ALAN}


def test_good_update_is_200(client):
    user_id = create_user(client, ALAN)
    r = client.put(f"/api/users/{user_id}", json={**ALAN, "role": "designer"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": user_id, **ALAN, "role": "designer"}


def test_unknown_id_get_is_404(client):
    r = client.get(f"/api/users/{NEVER_GIVEN}")
    assert r.status_code == 404, r.text
    assert r.json() == {"error": "User not found"}


def test_unknown_id_put_is_404(client):
    r = client.put(f"/api/users/{NEVER_GIVEN}", json=ALAN)
    assert r.status_code == 404, r.text
    assert r.json() == {"error": "User not found"}


def test_unknown_id_delete_is_404(client):
    r = client.delete(f"/api/users/{NEVER_GIVEN}")
    assert r.status_code == 404, r.text
    assert r.json() == {"error": "User not found"}


def test_deleted_user_is_404(client):
    user_id = create_user(client, ALAN)
    r = client.delete(f"/api/users/{user_id}")
    assert r.status_code == 200, r.text
    r = client.get(f"/api/users/{user_id}")
    assert r.status_code == 404, r.text
    assert r.json() == {"error": "User not found"}


def test_ids_are_never_reused(client):
    first, second = create_user(client, ALAN), create_user(client, ALAN)
    r = client.delete(f"/api/users/{second}")
    assert r.status_code == 200, r.text
    third = create_user(client, ALAN)
    assert third == second + 1, (first, second, third)


# --- Hardening (H3): length limits and text that is not text, on POST and PUT ---

TOO_LONG = [
    pytest.param({**ALAN, "name": "x" * 101}, "name must be at most 100 characters", id="name-101"),
    pytest.param({**ALAN, "place": "x" * 101}, "place must be at most 100 characters", id="place-101"),
]
SURROGATES = [
    pytest.param('{"name": "Al\\ud800", "role": "developer", "place": "London"}', "name", id="name"),
    pytest.param('{"name": "Alan", "role": "developer", "place": "\\udc00x"}', "place", id="place"),
]


@pytest.mark.parametrize(("profile", "problem"), TOO_LONG)
def test_text_over_100_chars_is_400(client, profile, problem):
    r = client.post("/api/users", json=profile)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": problem}
    r = client.put(f"/api/users/{create_user(client, ALAN)}", json=profile)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": problem}


def test_text_of_100_chars_is_accepted(client):
    create_user(client, {**ALAN, "name": "x" * 100, "place": "y" * 100})


@pytest.mark.parametrize(("body", "field"), SURROGATES)
def test_lone_surrogate_is_400(client, body, field):
    headers = {"Content-Type": "application/json"}
    r = client.post("/api/users", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": f"{field} must be valid Unicode text"}
    r = client.put(f"/api/users/{create_user(client, ALAN)}", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": f"{field} must be valid Unicode text"}
