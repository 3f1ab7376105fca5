"""The first endpoints of the course: the time, and the database's time."""


def test_time_greets_by_name(client):
    r = client.get("/api/time?name=Ada")
    assert r.status_code == 200, r.text
    assert r.json()["message"].startswith("Hi Ada! It's ")


def test_test_db_answers_with_the_databases_time(client):
    r = client.get("/api/test-db")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"time"}
