"""Lesson 07: a Pydantic model checks the body; a broken rule answers 422 with FastAPI's `detail`.

Each Field rule is tried just inside and just outside its limit. 404s keep working, now as
{"detail": "User not found"} from HTTPException.
"""

import pytest

from helpers import assert_not_found, broken_fields, create_user, get_user

ALAN = {"name": "Alan", "role": "developer", "place": "London"}
NEVER_GIVEN = 10**9


def without(field: str) -> dict:
    return {k: v for k, v in ALAN.items() if k != field}


def test_create_answers_201(client):
    r = client.post("/api/users", json=ALAN)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": r.json()["id"], "message": "User profile saved!"}


def test_fetch_returns_the_profile(client):
    user_id = create_user(client, ALAN)
    assert get_user(client, user_id) == {"id": user_id, **ALAN}


@pytest.mark.parametrize("name", ["Al", "Alan Turin"], ids=["2-chars", "10-chars"])
def test_name_within_2_to_10_chars_is_accepted(client, name):
    r = client.post("/api/users", json={**ALAN, "name": name})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("name", ["A", "Alan Turing"], ids=["1-char", "11-chars"])
def test_name_outside_2_to_10_chars_is_422(client, name):
    r = client.post("/api/users", json={**ALAN, "name": name})
    assert broken_fields(r) == ["name"]


def test_name_must_be_a_string(client):
    r = client.post("/api/users", json={**ALAN, "name": 42})
    assert broken_fields(r) == ["name"]


@pytest.mark.parametrize("role", ["developer", "designer", "product-manager", "tester"])
def test_each_allowed_role_is_accepted(client, role):
    r = client.post("/api/users", json={**ALAN, "role": role})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("role", ["pilot", "Tester", ""])
def test_other_roles_are_422(client, role):
    r = client.post("/api/users", json={**ALAN, "role": role})
    assert broken_fields(r) == ["role"]


def test_place_of_2_chars_is_accepted(client):
    r = client.post("/api/users", json={**ALAN, "place": "UK"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("place", ["X", ""], ids=["1-char", "empty"])
def test_place_shorter_than_2_chars_is_422(client, place):
    r = client.post("/api/users", json={**ALAN, "place": place})
    assert broken_fields(r) == ["place"]


@pytest.mark.parametrize("field", ["name", "role", "place"])
def test_missing_field_is_422(client, field):
    r = client.post("/api/users", json=without(field))
    assert broken_fields(r) == [field]
    assert r.json()["detail"][0]["type"] == "missing", r.text


def test_422_detail_says_where_and_what(client):
    r = client.post("/api/users", json={**ALAN, "name": "A"})
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "name"], r.text
    assert error["type"] == "string_too_short", r.text
    assert error["msg"] == "String should have at least 2 characters", r.text


def test_422_lists_every_broken_rule(client):
    r = client.post("/api/users", json={"name": "A", "role": "pilot"})
    assert broken_fields(r) == ["name", "role", "place"]


def test_update_answers_the_new_profile(client):
    user_id = create_user(client, ALAN)
    r = client.put(f"/api/users/{user_id}", json={**ALAN, "role": "tester"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": user_id, **ALAN, "role": "tester"}


def test_bad_update_is_422_and_keeps_the_profile(client):
    user_id = create_user(client, ALAN)
    r = client.put(f"/api/users/{user_id}", json={**ALAN, "name": "Alan Turing"})
    assert broken_fields(r) == ["name"]
    assert client.get(f"/api/users/{user_id}").json() == {"id": user_id, **ALAN}


def test_unknown_id_get_is_404(client):
    r = client.get(f"/api/users/{NEVER_GIVEN}")
    assert_not_found(r)


def test_unknown_id_put_is_404(client):
    r = client.put(f"/api/users/{NEVER_GIVEN}", json=ALAN)
    assert_not_found(r)


def test_unknown_id_delete_is_404(client):
    r = client.delete(f"/api/users/{NEVER_GIVEN}")
    assert_not_found(r)


def test_deleted_user_is_404(client):
    user_id = create_user(client, ALAN)
    r = client.delete(f"/api/users/{user_id}")
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "User deleted"}
    r = client.get(f"/api/users/{user_id}")
    assert_not_found(r)


def test_ids_are_never_reused(client):
    first, second = create_user(client, ALAN), create_user(client, ALAN)
    r = client.delete(f"/api/users/{second}")
    assert r.status_code == 200, r.text
    third = create_user(client, ALAN)
    assert third == second + 1, (first, second, third)


def test_openapi_publishes_the_rules(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]["User"]
    name, role, place = (schema["properties"][f] for f in ("name", "role", "place"))
    assert (name["minLength"], name["maxLength"]) == (2, 10), schema
    assert role["enum"] == ["developer", "designer", "product-manager", "tester"], schema
    assert place["minLength"] == 2, schema
    assert schema["required"] == ["name", "role", "place"], schema


# --- Hardening (H3): input that is not text, oversized input, a truthful OpenAPI document ---

SURROGATE_BODY = '{"name": "Al\\ud800", "role": "developer", "place": "London"}'  # JSON for a lone surrogate


def test_lone_surrogate_is_422_not_500(client):
    r = client.post("/api/users", content=SURROGATE_BODY, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json() == {"detail": [{"type": "string_unicode", "loc": ["body", "name"],
                                    "msg": "Input should be a valid string, unable to parse raw data as a "
                                           "unicode string"}]}


def test_place_over_100_chars_is_422(client):
    assert broken_fields(client.post("/api/users", json={**ALAN, "place": "x" * 101})) == ["place"]
    assert client.post("/api/users", json={**ALAN, "place": "x" * 100}).status_code == 201


def test_422_does_not_echo_a_huge_input(client):
    r = client.post("/api/users", json={**ALAN, "place": "x" * 1_000_000})
    assert broken_fields(r) == ["place"]
    assert len(r.content) < 1000, len(r.content)


def test_openapi_documents_the_errors(client):
    openapi = client.get("/openapi.json").json()
    paths = openapi["paths"]
    assert set(paths["/api/users"]["post"]["responses"]) == {"201", "400", "422"}, paths
    for method in ("get", "put", "delete"):
        responses = paths["/api/users/{user_id}"][method]["responses"]
        assert {"404", "422"} <= set(responses), (method, responses)
    # The 404 is described by a model of yours (any name) with a `detail` string.
    not_found = paths["/api/users/{user_id}"]["get"]["responses"]["404"]
    name = not_found["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    error_model = openapi["components"]["schemas"][name]
    assert error_model["properties"]["detail"]["type"] == "string", error_model


def test_openapi_publishes_the_place_limit(client):
    place = client.get("/openapi.json").json()["components"]["schemas"]["User"]["properties"]["place"]
    assert (place["minLength"], place["maxLength"]) == (2, 100), place
