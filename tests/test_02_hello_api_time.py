"""Lesson 02: GET /api/time answers the current time as "YYYY-MM-DD HH:MM:SS"."""

import re
from datetime import datetime, timedelta

from webclient import web

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
TIME_PATTERN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
# The clock may tick between our reading and the app's, and the app drops the fraction of a
# second: a few seconds either side is "now" for this test, even across a minute or midnight.
CLOSE_ENOUGH = timedelta(seconds=5)


def test_time_answers_200(client):
    r = client.get("/api/time")
    assert r.status_code == 200, r.text


def test_time_answers_json(client):
    r = client.get("/api/time")
    assert r.headers["content-type"] == "application/json", r.text


def test_time_has_only_the_time_key(client):
    r = client.get("/api/time")
    assert list(r.json()) == ["time"], r.text


def test_time_has_the_format(client):
    r = client.get("/api/time")
    assert TIME_PATTERN.fullmatch(r.json()["time"]), r.text
    datetime.strptime(r.json()["time"], TIME_FORMAT)


def test_time_is_now(client):
    before = datetime.now()
    r = client.get("/api/time")
    after = datetime.now()
    answered = datetime.strptime(r.json()["time"], TIME_FORMAT)
    assert before - CLOSE_ENOUGH <= answered <= after + CLOSE_ENOUGH, r.text


def test_time_is_only_for_get(client):
    """Time is only for GET"""
    r = client.post("/api/time")
    assert r.status_code == 405, r.text


def test_uvicorn_serves_the_app(live_api):
    api = live_api()
    r = web.get(api.url + "/api/time")
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["time"], r.text
    assert TIME_PATTERN.fullmatch(r.json()["time"]), r.text


def test_requirements_pin_fastapi_and_uvicorn(lesson):
    """Requirements pin FastAPI and Uvicorn"""
    lines = (lesson.path / "requirements.txt").read_text().split()
    pinned = {line.split("==")[0].lower() for line in lines if re.fullmatch(r"[\w.\[\]-]+==[\w.]+", line)}
    assert {"fastapi", "uvicorn[standard]"} <= pinned, lines
