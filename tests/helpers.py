"""Small helpers more than one lesson's tests use (fixtures live in conftest.py)."""

import time

import pytest


def keys_in(data) -> set:
    """Every key of every object anywhere in a JSON value."""
    if isinstance(data, dict):
        return set(data).union(*(keys_in(v) for v in data.values()))
    if isinstance(data, list):
        return set().union(*(keys_in(v) for v in data))
    return set()


def strings_in(data) -> list:
    """Every string (keys and values) anywhere in a JSON value, JSON escapes undone."""
    if isinstance(data, dict):
        return [*data, *strings_in(list(data.values()))]
    if isinstance(data, list):
        return [s for item in data for s in strings_in(item)]
    return [data] if isinstance(data, str) else []


def stored_hash(db, user_id: int) -> str | None:
    with db.cursor() as cur:
        cur.execute("SELECT password_hash FROM users WHERE id = %s", (user_id,))
        return cur.fetchone()[0]


def cut_off_the_apps_connections(db) -> None:
    """What a database restart does to the app: every connection it holds is closed by the server."""
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    with db.cursor() as cur:
        cur.execute(f"SELECT pg_terminate_backend(pid) {others}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cur.execute(f"SELECT count(*) {others}")
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.05)
    pytest.fail("the app's connections did not end within 10 s")
