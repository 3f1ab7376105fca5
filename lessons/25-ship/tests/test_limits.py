"""The limits of lesson 24: budgets that end in 429, the history's size, bodies too large.

This module's `settings` (it replaces conftest's for the tests here) makes every budget small,
so that a test reaches it in a few requests.
"""

import pytest

from app.config import Settings
from helpers import PASSWORD, TEST_SECRET

TOO_MANY_LOGINS = {"detail": "Too many failed logins: try again later"}


@pytest.fixture
def settings() -> Settings:
    return Settings(JWT_SECRET=TEST_SECRET, EXPIRY_MINUTES=5, LOGIN_FAILURES_PER_ACCOUNT=2,
                    LOGIN_FAILURES_PER_ADDRESS=4, SIGNUPS_PER_ADDRESS=1, CHATS_PER_MINUTE=2,
                    CHAT_TOKENS_PER_DAY=150, HISTORY_CHARACTERS=30)


def fail_login(client, email: str):
    return client.post("/api/login", json={"email": email, "password": "wrong-password"})


def test_login_is_429_after_too_many_failures_with_retry_after(client, user):
    assert [fail_login(client, user.email).status_code for _ in range(3)] == [401, 401, 429]
    r = fail_login(client, user.email)
    assert r.json() == TOO_MANY_LOGINS
    assert 0 < int(r.headers["Retry-After"]) <= 15 * 60


def test_a_locked_login_looks_the_same_for_an_unknown_email(client, user):
    for email in (user.email, "nobody@example.com"):
        fail_login(client, email)
        fail_login(client, email)
    answers = [fail_login(client, email) for email in (user.email, "nobody@example.com")]
    assert [(r.status_code, r.json()) for r in answers] == [(429, TOO_MANY_LOGINS)] * 2


def test_a_locked_account_refuses_the_right_password_too(client, user):
    fail_login(client, user.email)
    fail_login(client, user.email)
    assert client.post("/api/login", json={"email": user.email, "password": PASSWORD}).status_code == 429


def test_a_right_password_does_not_count_as_a_failure(client, user):
    for _ in range(3):
        assert client.post("/api/login", json={"email": user.email, "password": PASSWORD}).status_code == 200
    assert fail_login(client, user.email).status_code == 401


def test_failures_from_one_address_are_limited_across_accounts(client):
    statuses = [fail_login(client, f"guess{n}@example.com").status_code for n in range(5)]
    assert statuses == [401, 401, 401, 401, 429]


def test_signups_from_one_address_are_limited(client):
    new = {"name": "Ada", "email": "ada@example.com", "password": PASSWORD}
    assert client.post("/api/users", json=new).status_code == 201
    r = client.post("/api/users", json={**new, "email": "bob@example.com"})
    assert r.status_code == 429, r.text
    assert r.json() == {"detail": "Too many signups from this address: try again later"}


def test_chat_is_429_after_the_questions_of_a_minute(client, auth, llm):
    statuses = [client.post("/api/chat", headers=auth, json={"message": "Hi"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert len(llm.asked) == 2  # the third never reached the LLM


def test_the_stream_and_the_chat_share_the_budget(client, auth):
    assert client.post("/api/chat/stream", headers=auth, json={"message": "Hi"}).status_code == 200
    assert client.post("/api/chat", headers=auth, json={"message": "Hi"}).status_code == 200
    assert client.post("/api/chat/stream", headers=auth, json={"message": "Hi"}).status_code == 429


def test_the_token_budget_counts_what_the_llm_reports(client, auth, llm, settings):
    settings.CHATS_PER_MINUTE = 10
    llm.used = 100  # each answer reports 100 tokens; the budget is 150
    statuses = [client.post("/api/chat", headers=auth, json={"message": "Hi"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # the second answer crossed the line, the third is refused


def test_the_history_sent_is_cut_to_its_size(client, auth, llm, settings):
    settings.CHATS_PER_MINUTE = 10
    client.post("/api/chat", headers=auth, json={"message": "First question, long enough"})
    client.post("/api/chat", headers=auth, json={"message": "Second"})
    system, *history, question = llm.asked[-1]
    # 30 characters: the answer to the first question (33) does not fit, so nothing before it is sent.
    assert history == [] and question == {"role": "user", "content": "Second"}


def test_a_body_over_the_limit_is_413_before_the_token_is_looked_at(client):
    r = client.post("/api/chat", content=b"x" * 70_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json() == {"detail": "The request body may have at most 65536 bytes"}


def test_answers_carry_the_security_headers(client):
    r = client.get("/api/me")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
