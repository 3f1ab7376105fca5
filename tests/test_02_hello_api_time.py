"""Lesson 02: GET /api/time answers the current time as "YYYY-MM-DD HH:MM:SS"."""

from datetime import datetime


def test_time_has_the_format(client):
    r = client.get("/api/time")
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["time"]
    datetime.strptime(r.json()["time"], "%Y-%m-%d %H:%M:%S")
