"""Lesson 06: hand-written validation answers 400 {"error": ...}; unknown ids answer 404.

Every bad profile is tried on POST and on PUT, and must come back as {"error": ...} with a
message that names the broken field (the words are yours: "role must be one of: ...").
"""

import pytest

from helpers import create_user, get_user

ALAN = {"name": "Alan", "role": "developer", "place": "London"}
NEVER_GIVEN = 10**9


def without(field: str) -> dict:
    return {k: v for k, v in ALAN.items() if k != field}


def assert_refused(r, field: str) -> None:
    """400 {"error": "<text>"}, the text naming the field (in any words, any letter case)."""
    assert r.status_code == 400, r.text
    assert list(r.json()) == ["error"], r.text
    assert field in r.json()["error"].lower(), f"the error text should name {field!r}: {r.text}"


BAD_PROFILES = [
    pytest.param(without("name"), "name", id="name-missing"),
    pytest.param({**ALAN, "name": 42}, "name", id="name-a-number"),
    pytest.param({**ALAN, "name": None}, "name", id="name-null"),
    pytest.param({**ALAN, "name": ["Alan"]}, "name", id="name-a-list"),
    pytest.param(without("role"), "role", id="role-missing"),
    pytest.param({**ALAN, "role": "tester"}, "role", id="role-tester"),
    pytest.param({**ALAN, "role": "pilot"}, "role", id="role-unknown"),
    pytest.param({**ALAN, "role": "Developer"}, "role", id="role-wrong-case"),
    pytest.param({**ALAN, "role": ["developer"]}, "role", id="role-a-list"),
    pytest.param(without("place"), "place", id="place-missing"),
    pytest.param({**ALAN, "place": ""}, "place", id="place-empty"),
    pytest.param({**ALAN, "place": "   "}, "place", id="place-whitespace"),
    pytest.param({**ALAN, "place": 7}, "place", id="place-a-number"),
    pytest.param({**ALAN, "place": None}, "place", id="place-null"),
]


def test_create_answers_201(client):
    r = client.post("/api/users", json=ALAN)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": r.json()["id"], "message": "User profile saved!"}


@pytest.mark.parametrize("role", ["developer", "designer", "product-manager"])
def test_each_allowed_role_is_accepted(client, role):
    r = client.post("/api/users", json={**ALAN, "role": role})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(("profile", "field"), BAD_PROFILES)
def test_bad_create_is_400(client, profile, field):
    r = client.post("/api/users", json=profile)
    assert_refused(r, field)


@pytest.mark.parametrize(("profile", "field"), BAD_PROFILES)
def test_bad_update_is_400(client, profile, field):
    user_id = create_user(client, ALAN)
    r = client.put(f"/api/users/{user_id}", json=profile)
    assert_refused(r, field)


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
    pytest.param({**ALAN, "name": "x" * 101}, "name", id="name-101"),
    pytest.param({**ALAN, "place": "x" * 101}, "place", id="place-101"),
]
SURROGATES = [
    pytest.param('{"name": "Al\\ud800", "role": "developer", "place": "London"}', "name", id="name"),
    pytest.param('{"name": "Alan", "role": "developer", "place": "\\udc00x"}', "place", id="place"),
]


@pytest.mark.parametrize(("profile", "field"), TOO_LONG)
def test_text_over_100_chars_is_400(client, profile, field):
    r = client.post("/api/users", json=profile)
    assert_refused(r, field)
    r = client.put(f"/api/users/{create_user(client, ALAN)}", json=profile)
    assert_refused(r, field)


def test_text_of_100_chars_is_accepted(client):
    create_user(client, {**ALAN, "name": "x" * 100, "place": "y" * 100})


@pytest.mark.parametrize(("body", "field"), SURROGATES)
def test_lone_surrogate_is_400(client, body, field):
    headers = {"Content-Type": "application/json"}
    r = client.post("/api/users", content=body, headers=headers)
    assert_refused(r, field)
    r = client.put(f"/api/users/{create_user(client, ALAN)}", content=body, headers=headers)
    assert_refused(r, field)
