"""Health checks and request ids: what the proxy, Docker and the logs rely on."""

import re

from sqlalchemy import text

REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def test_healthz_says_ok(client):
    r = client.get("/healthz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok"}


def test_readyz_is_ready_on_a_migrated_database(client):
    r = client.get("/readyz")
    assert r.status_code == 200, r.text


def test_readyz_is_503_while_the_schema_is_behind(client, database):
    with database.begin() as conn:
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        r = client.get("/readyz")
    finally:
        with database.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
    assert r.status_code == 503, r.text
    assert "alembic upgrade head" in r.json()["detail"]


def test_a_request_id_comes_back_as_sent(client):
    sent = "0123456789abcdef0123456789abcdef"
    assert client.get("/healthz", headers={"X-Request-ID": sent}).headers["X-Request-ID"] == sent


def test_a_request_without_an_id_or_with_a_bad_one_gets_a_new_one(client):
    made = client.get("/healthz").headers["X-Request-ID"]
    replaced = client.get("/healthz", headers={"X-Request-ID": "<script>"}).headers["X-Request-ID"]
    assert REQUEST_ID.fullmatch(made) and REQUEST_ID.fullmatch(replaced)
    assert made != replaced
