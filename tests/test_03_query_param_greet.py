"""Lesson 03: GET /api/time?name=alan greets by name; without a name it answers as in 02."""

import re
from datetime import datetime, timedelta

from webclient import web

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
CLOSE_ENOUGH = timedelta(seconds=5)


def greeting_for(name: str) -> re.Pattern:
    return re.compile(f"Hi {re.escape(name)}! It's ({TIME})")


def test_without_name_answers_the_time(client):
    r = client.get("/api/time")
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["time"], r.text
    assert re.fullmatch(TIME, r.json()["time"]), r.text


def test_name_gets_a_greeting(client):
    r = client.get("/api/time?name=alan")
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["message"], r.text
    assert greeting_for("alan").fullmatch(r.json().get("message", "")), r.text


def test_greeting_tells_the_current_time(client):
    before = datetime.now()
    r = client.get("/api/time", params={"name": "alan"})
    after = datetime.now()
    greeting = greeting_for("alan").fullmatch(r.json().get("message", ""))
    assert greeting, r.text
    told = datetime.strptime(greeting[1], "%Y-%m-%d %H:%M:%S")
    assert before - CLOSE_ENOUGH <= told <= after + CLOSE_ENOUGH, r.text


def test_name_with_a_space(client):
    r = client.get("/api/time", params={"name": "Ada Lovelace"})
    assert greeting_for("Ada Lovelace").fullmatch(r.json().get("message", "")), r.text


def test_percent_encoded_name_is_decoded(client):
    r = client.get("/api/time?name=Ren%C3%A9e")
    assert greeting_for("Renée").fullmatch(r.json().get("message", "")), r.text


def test_name_with_an_ampersand(client):
    r = client.get("/api/time", params={"name": "Tom & Jerry"})
    assert greeting_for("Tom & Jerry").fullmatch(r.json().get("message", "")), r.text


def test_name_with_url_characters(client):
    r = client.get("/api/time", params={"name": "a+b=c?#/"})
    assert greeting_for("a+b=c?#/").fullmatch(r.json().get("message", "")), r.text


def test_empty_name_is_like_no_name(client):
    r = client.get("/api/time?name=")
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["time"], r.text


def test_openapi_lists_name_as_optional_query_param(client):
    r = client.get("/openapi.json")
    parameters = r.json()["paths"]["/api/time"]["get"]["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in parameters] == [("name", "query", False)], r.text


def test_swagger_ui_is_served(client):
    r = client.get("/docs")
    assert r.status_code == 200, r.text
    assert "swagger-ui" in r.text


def test_uvicorn_decodes_the_name(live_api):
    api = live_api()
    r = web.get(api.url + "/api/time", params={"name": "Zoë & co"})
    assert r.status_code == 200, r.text
    assert greeting_for("Zoë & co").fullmatch(r.json().get("message", "")), r.text
