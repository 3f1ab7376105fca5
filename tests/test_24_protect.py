"""Lesson 24: the app protected, against floods, stolen tokens, huge bodies and slow hashes.

Lesson 21's black-box tests run here unchanged, and those of lesson 22 that still hold (the
imports below); three of 22's change with this lesson and are adapted here (the paths in /docs,
one LLM client, the LLM's usage). Then the folder's own suite, and the lesson's own tests: rate
limits that every worker sees and a restart keeps, 429 with Retry-After that tells nobody which
emails exist, the chat's budgets (HTTP, stream and socket together, and the tokens the LLM
reports), the history capped by size, 413 before a body is read, tokens that end (a new password
or email, logout, logout everywhere, and the sockets of that user), hashing with bounded
concurrency, a chat that holds no thread while the LLM thinks, a cap on open chats, security
headers, and the pages under their Content Security Policy.
"""

import functools
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import bcrypt
import jwt
import pytest
from fastapi import WebSocketDisconnect
from fastapi.testclient import TestClient
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from helpers import (
    BROWSER_WAIT_MS,
    JWT_SECRET,
    ReusedTab,
    Servers,
    app_socket,
    bearer,
    deleted_while_the_app_waits,
    insert_user,
    log_in_page,
    token_for,
    wait_for,
)
from shared.coach import answer as coachs_answer
from shared.coach import text_of, tokens_of
from shared.ground.testenv import NO_CERTIFICATES
from test_21_websocket import *  # noqa: F403  (lesson 21's tests: still valid here)
from test_21_websocket import close_of, receive
from test_22_bigger_app import (  # noqa: F401  (lesson 22's tests that still hold)
    CannedCoach,
    socket_answer,
    test_a_bad_setting_stops_the_app_with_one_line_naming_it,
    test_an_llm_without_a_key_answers_502_when_swapped_in,
    test_cors_origins_come_from_the_settings,
    test_dependency_overrides_swap_the_settings_of_login_endpoints_and_socket,
    test_only_app_db_makes_a_database_engine,
    test_only_config_reads_the_environment,
    test_post_api_chat_still_answers_502_when_the_llm_fails_or_sends_a_page,
    test_settings_are_read_once_and_typed,
    test_the_app_is_a_package_with_a_module_per_concern_and_a_router_per_topic,
    test_the_environment_wins_over_dot_env_which_wins_over_the_defaults,
    test_two_bad_settings_are_named_in_the_same_line,
    test_uvicorn_stops_with_one_line_when_jwt_secret_is_short,
)
from test_22_bigger_app import events as sse_events
from webclient import web

PASSWORD = "correct-horse"
ASKED = "How do I prepare for a system design interview?"
TOO_MANY_LOGINS = "Too many failed logins: try again later"
TOO_MANY_SIGNUPS = "Too many signups from this address: try again later"
TOO_MANY_MESSAGES = "Too many messages: try again later"
NO_TOKENS_LEFT = "The coach's daily budget for you is used up: try again later"
TOO_MANY_OPEN = "Too many open chats: close one and try again"
MAX_BODY_BYTES = 65536
TOO_LARGE = f"The request body may have at most {MAX_BODY_BYTES} bytes"
WRONG_CURRENT = "Current password is wrong"
REVOKED = "Invalid or expired token: log in again"
ADDRESSES = (f"198.51.100.{n}" for n in itertools.count(1))  # a client address of its own per test


@pytest.fixture(scope="session", autouse=True)
def protect_settings(llm_settings):
    """Cheap hashes, and budgets no test reaches by accident (every test comes from one address);
    the tests that are about a budget set a small one for themselves."""
    os.environ.update(BCRYPT_ROUNDS="4", LOGIN_FAILURES_PER_ADDRESS="100000", SIGNUPS_PER_ADDRESS="100000",
                      CHATS_PER_MINUTE="100000", CHATS_PER_DAY="100000", CHAT_TOKENS_PER_DAY="100000000")


@pytest.fixture
def overrides(app):
    """app.dependency_overrides, emptied again after the test (as in lesson 22's tests)."""
    yield app.dependency_overrides
    app.dependency_overrides.clear()


def client_from(app, address: str | None = None) -> TestClient:
    """A TestClient whose requests come from an address of their own (the per-address budgets)."""
    return TestClient(app, client=(address or next(ADDRESSES), 50000))


def sign_up(client, password: str = PASSWORD) -> str:
    """A new account through the API; returns its email."""
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    r = client.post("/api/users", json={"name": "Ada", "email": email, "password": password})
    assert r.status_code == 201, r.text
    return email


def log_in(client, email: str, password: str = PASSWORD) -> str:
    r = client.post("/api/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def with_settings(overrides, **changes):
    """The app's settings with some changed, for every endpoint (dependency_overrides)."""
    from app.config import get_settings

    changed = get_settings().model_copy(update=changes)
    overrides[get_settings] = lambda: changed


def usage_of(messages: list[dict]) -> int:
    """The tokens the offline coach reports for its answer to MESSAGES (shared/coach.py)."""
    prompt = sum(len(text_of(m["content"]).split()) for m in messages)
    return prompt + len(tokens_of(coachs_answer(messages)))


def seconds_to_retry(r) -> int:
    assert re.fullmatch(r"[1-9]\d*", r.headers.get("retry-after", "")), r.headers
    return int(r.headers["retry-after"])


# --- rate limits that every worker sees ----------------------------------------------------------

def server_output(proc) -> str:
    """What a server started with Servers has printed since the last call (read without waiting)."""
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class TwoWorkers:
    """The app in one uvicorn with two worker processes (--workers 2), started when a test first
    asks for its .url: each test first shows in one process, for a fraction of the cost, that what
    it counts across the workers is there at all. Two new interpreters that import the app are
    the costly part: make check LESSON=24 on lesson 23's folder started them for nothing."""

    def __init__(self, lesson):
        self.lesson, self.servers, self.printed = lesson, Servers(), []

    @functools.cached_property
    def url(self) -> str:
        argv = [sys.executable, "-m", "uvicorn", self.lesson.app, "--workers", "2",
                "--host", "127.0.0.1", "--port", "{port}"]
        # Not the supervisor but its workers listen, each a new interpreter that imports the app
        # first: on a machine busy with other tests, that took more than the default 15 s.
        port, self.proc = self.servers.start(argv, cwd=self.lesson.path, what="two workers", timeout=60)
        wait_for(lambda: self.log().count("Application startup complete") == 2, "both workers started",
                 seconds=30)
        return f"http://127.0.0.1:{port}"

    def log(self) -> str:
        self.printed.append(server_output(self.proc))
        return "".join(self.printed)


@pytest.fixture(scope="module")
def two_workers(lesson, app, db_env, coach_server):
    """The app in two worker processes, once a test asks for its .url (TwoWorkers): .url, .log()."""
    workers = TwoWorkers(lesson)
    try:
        yield workers
    finally:
        workers.servers.stop_all()


def locked_in_one_process(app) -> None:
    """Fails at once unless a sixth wrong password for one account gets 429 within one process."""
    with client_from(app) as client:
        email = sign_up(client)
        statuses = [client.post("/api/login", json={"email": email, "password": "wrong-password"}).status_code
                    for _ in range(6)]
    if statuses[-1] != 429:
        pytest.fail(f"six wrong passwords for one account got {statuses} even in one process: the "
                    "sixth must get 429 there first (see \"The sixth failure gets 429\")")


def twenty_wrong_passwords(two_workers, db) -> Counter:
    """Twenty wrong passwords for one new account, sent at once to the two workers: the statuses."""
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    insert_user(db, email=email, password_hash=bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode())

    def wrong_password(_):
        r = web.post(f"{two_workers.url}/api/login", json={"email": email, "password": "wrong-password"},
                     timeout=30)  # a connection of its own each time: either worker may take it
        return r.status_code

    with ThreadPoolExecutor(10) as pool:
        return Counter(pool.map(wrong_password, range(20)))


def test_five_failed_logins_are_counted_across_two_workers(app, two_workers, db):
    """Five failed logins per account in 15 minutes, counted where every worker sees them: the rest get 429.
    Twenty wrong passwords for one account, sent at once to one uvicorn with two workers, get
    five 401s in total, not five per worker."""
    locked_in_one_process(app)
    assert twenty_wrong_passwords(two_workers, db) == {401: 5, 429: 15}
    pids = set(re.findall(r"\[(\d+)\][^\n]*? app\.\S+: (?:login failed|rate limit)", two_workers.log()))
    assert pids, "no log line [<pid>] ... app.<logger>: login failed / rate limit: check the log format"
    assert len(pids) == 2, f"one worker answered them all: {pids}"


def test_a_restart_keeps_the_count_of_failed_logins(app, fresh_app):
    """A restart keeps the count: the limits live in the database, not in the process.
    Hint: a dict in memory is one process's, and starts empty again; count in a table, with one
    atomic statement per hit (INSERT ... ON CONFLICT DO UPDATE ... RETURNING)."""
    address = next(ADDRESSES)
    with client_from(app, address) as client:
        email = sign_up(client)
        wrong = {"email": email, "password": "wrong-password"}
        for _ in range(5):
            assert client.post("/api/login", json=wrong).status_code == 401
    with client_from(fresh_app(), address) as restarted:  # the app made again, as after a restart
        r = restarted.post("/api/login", json=wrong)
    assert r.status_code == 429, r.text


def test_a_locked_login_gets_the_same_429_whether_the_email_exists_or_not(app):
    """The sixth failure gets 429 and Retry-After, the same answer whether the email has an account or not."""
    with client_from(app) as client:
        answers = []
        for email in (sign_up(client), f"nobody.{uuid.uuid4().hex[:8]}@example.com"):
            for _ in range(5):
                r = client.post("/api/login", json={"email": email, "password": "wrong-password"})
                assert r.status_code == 401, r.text
            answers.append(client.post("/api/login", json={"email": email, "password": "wrong-password"}))
    for r in answers:
        assert r.status_code == 429, r.text
        assert r.json() == {"detail": TOO_MANY_LOGINS}
        assert 15 * 60 - 60 < seconds_to_retry(r) <= 15 * 60
    assert answers[0].headers.keys() == answers[1].headers.keys()


def test_a_locked_account_refuses_even_the_right_password_until_the_window_ends(app):
    """A locked account refuses even the right password (429), until its window ends.
    Else the 429 would be a hint: the limit would only stop wrong guesses, and a right one would
    still get through."""
    with client_from(app) as client:
        email = sign_up(client)
        for _ in range(5):
            client.post("/api/login", json={"email": email, "password": "wrong-password"})
        r = client.post("/api/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 429, r.text
    assert r.json() == {"detail": TOO_MANY_LOGINS}


def test_failed_logins_from_one_address_have_a_budget_of_their_own(app, overrides):
    """Failed logins from one client address have a larger budget of their own (LOGIN_FAILURES_PER_ADDRESS).
    Guessing one password for many accounts runs into it, while another address can still log in."""
    with_settings(overrides, LOGIN_FAILURES_PER_ADDRESS=3)
    with client_from(app) as guesser, client_from(app) as other:
        email = sign_up(other)
        for _ in range(3):
            guess = {"email": f"{uuid.uuid4().hex[:12]}@example.com", "password": "Summer2026!"}
            assert guesser.post("/api/login", json=guess).status_code == 401
        r = guesser.post("/api/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 429 and r.json() == {"detail": TOO_MANY_LOGINS}, r.text
        assert other.post("/api/login", json={"email": email, "password": PASSWORD}).status_code == 200


def test_a_login_refused_for_its_address_does_not_count_against_the_account_it_names(app, overrides):
    """A login refused for its address does not count against the account it names.
    An address that is over its budget can neither lock other people's accounts nor add a
    counter for every new email it types. Hint: count the address first, and the account only
    when the address is within its budget."""
    with_settings(overrides, LOGIN_FAILURES_PER_ADDRESS=1)
    with client_from(app) as guesser, client_from(app) as owner:
        email = sign_up(owner)
        wrong = {"email": email, "password": "wrong-password"}
        assert guesser.post("/api/login", json=wrong).status_code == 401  # the address's one failure
        for _ in range(5):
            r = guesser.post("/api/login", json=wrong)
            assert r.status_code == 429 and r.json() == {"detail": TOO_MANY_LOGINS}, r.text
    with_settings(overrides, LOGIN_FAILURES_PER_ADDRESS=100)
    with client_from(app) as owner:  # a new address: only the account's own budget is left
        statuses = [owner.post("/api/login", json=wrong).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]


def test_signups_from_one_address_have_a_budget(app, overrides):
    """Signups from one client address have a budget (SIGNUPS_PER_ADDRESS): then 429 with Retry-After."""
    with_settings(overrides, SIGNUPS_PER_ADDRESS=2, SIGNUP_WINDOW_SECONDS=3600)
    with client_from(app) as client:
        sign_up(client)
        sign_up(client)
        r = client.post("/api/users", json={"name": "Bo", "email": f"bo.{uuid.uuid4().hex[:8]}@example.com",
                                            "password": PASSWORD})
    assert r.status_code == 429, r.text
    assert r.json() == {"detail": TOO_MANY_SIGNUPS}
    assert 3600 - 60 < seconds_to_retry(r) <= 3600
    with client_from(app) as elsewhere:
        sign_up(elsewhere)


# --- the chat's budgets -------------------------------------------------------------------------

def socket_frames(client, token: str, message: str = ASKED) -> list[dict]:
    """The frames one question gets over an in-process socket, up to done or an error."""
    with app_socket(client) as ws:
        ws.send_json({"token": token})
        assert ws.receive_json() == {"type": "ready"}
        ws.send_json({"message": message})
        frames = [ws.receive_json()]
        while frames[-1]["type"] == "token":
            frames.append(ws.receive_json())
    return frames


def test_the_chat_budget_per_minute_counts_http_stream_and_socket_together(app, overrides, coach, user):
    """A user's questions per minute (CHATS_PER_MINUTE) count /api/chat, the stream and the socket together.
    Over the budget: 429 with Retry-After from /api/chat and the stream, and an error frame with
    "retry_after" over the socket; the coach is not asked."""
    with_settings(overrides, CHATS_PER_MINUTE=3)
    headers = bearer(user["token"])
    with TestClient(app) as client:
        assert client.post("/api/chat", json={"message": ASKED}, headers=headers).status_code == 200
        r = client.post("/api/chat/stream", json={"message": ASKED}, headers=headers)
        assert sse_events(r.text)[-1] == ("done", {})
        assert socket_frames(client, user["token"])[-1] == {"type": "done"}
        asked = len(coach.requests())
        for path in ("/api/chat", "/api/chat/stream"):
            r = client.post(path, json={"message": ASKED}, headers=headers)
            assert r.status_code == 429 and r.json() == {"detail": TOO_MANY_MESSAGES}, r.text
            assert seconds_to_retry(r) <= 60
        [frame] = socket_frames(client, user["token"])
    assert frame["type"] == "error" and frame["detail"] == TOO_MANY_MESSAGES, frame
    assert 1 <= frame["retry_after"] <= 60
    assert len(coach.requests()) == asked


def test_the_chat_budget_per_day_holds_for_a_day(app, overrides, coach, user):
    """A user's questions per day (CHATS_PER_DAY) have a budget too, with a Retry-After of up to a day."""
    with_settings(overrides, CHATS_PER_DAY=1)
    headers = bearer(user["token"])
    with TestClient(app) as client:
        assert client.post("/api/chat", json={"message": ASKED}, headers=headers).status_code == 200
        r = client.post("/api/chat", json={"message": ASKED}, headers=headers)
    assert r.status_code == 429 and r.json() == {"detail": TOO_MANY_MESSAGES}, r.text
    assert 24 * 3600 - 60 < seconds_to_retry(r) <= 24 * 3600


def test_the_daily_token_budget_counts_the_tokens_the_llm_reports(app, overrides, coach, db):
    """The LLM's tokens per user and day (CHAT_TOKENS_PER_DAY) are counted from the usage the LLM reports.
    An answer that takes the budget past its end is still given (its size is known only at the
    end); the next question gets 429. The stream asks for its usage too (include_usage).
    Hint: refuse a question only once the tokens used today are over the budget (used > budget,
    not >=: with exactly the budget used, one more question is still asked); the tokens come from
    completion.usage.total_tokens, and with stream=True from the last chunk (no choices) that
    stream_options={"include_usage": True} adds."""
    with TestClient(app) as client:
        # What the first question of a new user costs, as the coach counts it: the same every time.
        client.post("/api/chat", json={"message": ASKED}, headers=bearer(token_for(insert_user(db))))
        used = usage_of(coach.requests()[-1]["messages"])
        cases = [("/api/chat", used, 200), ("/api/chat", used - 1, 429),
                 ("/api/chat/stream", used, 200), ("/api/chat/stream", used - 1, 429)]
        for path, budget, next_status in cases:
            with_settings(overrides, CHAT_TOKENS_PER_DAY=budget)
            headers = bearer(token_for(insert_user(db)))
            assert client.post(path, json={"message": ASKED}, headers=headers).status_code == 200
            r = client.post("/api/chat", json={"message": ASKED}, headers=headers)
            assert r.status_code == next_status, (path, budget, r.text)
    assert r.json() == {"detail": NO_TOKENS_LEFT}
    assert coach.requests()[-1]["stream_options"] == {"include_usage": True}


def test_the_history_sent_to_the_llm_is_capped_by_size(app, coach, user, db):
    """The history sent with a question is capped by size: the newest that fit in HISTORY_CHARACTERS (16000).
    Of the latest 20 messages, only the newest whose characters add up to no more than that."""
    with db.cursor() as cur:
        for n in range(5):
            cur.execute("INSERT INTO messages (user_id, role, content) VALUES (%s, %s, %s)",
                        (user["id"], ("user", "assistant")[n % 2], str(n) * 5000))
    with TestClient(app) as client:
        r = client.post("/api/chat", json={"message": ASKED}, headers=bearer(user["token"]))
    assert r.status_code == 200, r.text
    sent = coach.requests()[-1]["messages"]
    assert [m["content"][0] for m in sent[1:-1]] == ["2", "3", "4"]  # the newest three: 15000 characters
    assert sent[-1] == {"role": "user", "content": ASKED}


# --- bodies too large ---------------------------------------------------------------------------

def raw_answer(api: str, request: bytes) -> tuple[bytes, bytes]:
    """Sends REQUEST as it is over a new connection to the API at api (http://host:port) and
    returns the answer's head and body; the connection stays open meanwhile, sending nothing
    more: an answer that came waited for no more of the body. An app that waits for the rest
    fails after 1.5 s (the 413 comes in milliseconds; a red check need not wait longer)."""
    host, port = api.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=1.5) as conn:
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                raise AssertionError(f"no answer within 1.5 s, only {answer!r}: the app waits for the rest "
                                     "of the body instead of answering 413 at once") from None
            assert chunk, f"the connection closed without an answer: {answer!r}"
            answer += chunk
    head, body = answer.split(b"\r\n\r\n", 1)
    return head, body


POST_CHAT = b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def too_large_in_one_process(app) -> None:
    """Fails at once unless a body one byte over the limit gets 413 within one process: a live
    server that waits for the rest of a body fails only after raw_answer's timeout."""
    with TestClient(app) as client:
        r = client.post("/api/chat", content=b"x" * (MAX_BODY_BYTES + 1),
                        headers={"Content-Type": "application/json"})
    if r.status_code != 413:
        pytest.fail(f"a body of {MAX_BODY_BYTES + 1} bytes got {r.status_code} {r.text[:200]} even in one "
                    "process, not 413: limit the body first (MAX_BODY_BYTES)")


def test_a_large_body_gets_413_before_it_is_read_even_without_a_token(app, request):
    """A body over MAX_BODY_BYTES (65536) gets 413 before it is read, whatever the endpoint, logged in or not.
    The request says 300 MB in its Content-Length and sends one byte of them: the answer comes
    at once, with no token looked at and nothing more waited for.
    Hint: a pure ASGI middleware that looks at Content-Length before the app reads anything."""
    too_large_in_one_process(app)
    pages = request.getfixturevalue("pages")  # its live servers, once the limit is there at all
    head, body = raw_answer(pages.api, POST_CHAT + b"Content-Length: 300000000\r\n\r\n{")
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert json.loads(body) == {"detail": TOO_LARGE}


def test_a_body_sent_in_chunks_gets_413_once_it_grows_too_large(app, request):
    """A body sent in chunks, with no Content-Length, gets 413 as soon as they add up to more than the limit.
    70 chunks of 1 KiB, and no end: the answer comes without the rest."""
    too_large_in_one_process(app)
    pages = request.getfixturevalue("pages")
    chunks = b"400\r\n" + b"x" * 1024 + b"\r\n"
    head, body = raw_answer(pages.api, POST_CHAT + b"Transfer-Encoding: chunked\r\n\r\n" + chunks * 70)
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert json.loads(body) == {"detail": TOO_LARGE}


def test_openapi_lists_the_413_on_every_operation_with_a_body_or_without(app):
    """OpenAPI lists the 413 on every operation, with a body or without: the limit runs before any endpoint.
    Hint: FastAPI(responses=...) adds an entry to every operation; `"model": Problem` gives it the
    schema of the other errors."""
    with TestClient(app) as client:
        paths = client.get("/openapi.json").json()["paths"]
    missing = [f"{method.upper()} {path}" for path, operations in paths.items()
               for method, operation in operations.items() if "413" not in operation["responses"]]
    assert missing == []
    assert paths["/api/me"]["get"]["responses"]["413"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"}


# --- tokens that can be taken back --------------------------------------------------------------

def test_a_new_password_ends_every_token_issued_before(app):
    """A new password ends every token issued before it (401), in every browser; a new login works."""
    with client_from(app) as client:
        email = sign_up(client)
        here, elsewhere = log_in(client, email), log_in(client, email)
        r = client.put("/api/me", json={"password": "new-horse", "current_password": PASSWORD},
                       headers=bearer(here))
        assert r.status_code == 200, r.text
        for token in (here, elsewhere):
            r = client.get("/api/me", headers=bearer(token))
            assert r.status_code == 401 and r.json() == {"detail": REVOKED}, r.text
        assert client.get("/api/me", headers=bearer(log_in(client, email, "new-horse"))).status_code == 200


def test_a_new_email_ends_every_token_issued_before(app):
    """A new email ends every token issued before it (401) too."""
    with client_from(app) as client:
        email = sign_up(client)
        token = log_in(client, email)
        new_email = f"new.{email}"
        change = {"email": new_email, "current_password": PASSWORD}
        r = client.put("/api/me", json=change, headers=bearer(token))
        assert r.status_code == 200 and r.json()["email"] == new_email, r.text
        assert client.get("/api/me", headers=bearer(token)).status_code == 401
        assert client.get("/api/me", headers=bearer(log_in(client, new_email))).status_code == 200


def test_changing_the_email_or_password_needs_the_current_password(app):
    """Changing the email or password needs current_password: 422 without it, 403 when it is wrong.
    A wrong one counts as a failed login of the account. A new name alone needs none, and ends no token."""
    with client_from(app) as client:
        email = sign_up(client)
        token = log_in(client, email)
        for change in ({"email": f"new.{email}"}, {"password": "new-horse"}):
            r = client.put("/api/me", json=change, headers=bearer(token))
            assert r.status_code == 422, r.text
            wrong = {**change, "current_password": "not-my-password"}
            r = client.put("/api/me", json=wrong, headers=bearer(token))
            assert r.status_code == 403 and r.json() == {"detail": WRONG_CURRENT}, r.text
        r = client.put("/api/me", json={"name": "Ada L"}, headers=bearer(token))
        assert r.status_code == 200 and r.json()["name"] == "Ada L", r.text
        assert client.get("/api/me", headers=bearer(token)).json()["email"] == email  # nothing else changed
        failed_login = {"email": email, "password": "wrong-password"}
        for _ in range(3):  # 2 wrong current passwords + 3 failed logins: the account's 5
            client.post("/api/login", json=failed_login)
        assert client.post("/api/login", json=failed_login).status_code == 429


def test_logout_ends_this_token_and_no_other(app):
    """POST /api/logout answers 204 and ends the token it was sent with (401 after); others stay valid."""
    with client_from(app) as client:
        email = sign_up(client)
        here, elsewhere = log_in(client, email), log_in(client, email)
        r = client.post("/api/logout", headers=bearer(here))
        assert r.status_code == 204, r.text
        for r in (client.get("/api/me", headers=bearer(here)),
                  client.post("/api/logout", headers=bearer(here))):
            assert r.status_code == 401 and r.json() == {"detail": REVOKED}, r.text
        assert client.get("/api/me", headers=bearer(elsewhere)).status_code == 200


def test_logout_everywhere_ends_every_token(app):
    """POST /api/logout-all answers 204 and ends every token of the user (401 after); a new login works."""
    with client_from(app) as client:
        email = sign_up(client)
        here, elsewhere = log_in(client, email), log_in(client, email)
        assert client.post("/api/logout-all", headers=bearer(elsewhere)).status_code == 204
        for token in (here, elsewhere):
            assert client.get("/api/me", headers=bearer(token)).status_code == 401
        assert client.get("/api/me", headers=bearer(log_in(client, email))).status_code == 200


def test_an_open_socket_is_closed_with_1008_when_its_user_logs_out_everywhere(live_api, coach, user):
    """An open socket is closed with 1008 when its user logs out everywhere, within SOCKET_RECHECK_SECONDS.
    Hint: while it waits for the next frame, the socket checks its token again every
    SOCKET_RECHECK_SECONDS (anyio.move_on_at), with the same function as every request."""
    api = live_api(env={"SOCKET_RECHECK_SECONDS": "0.5"})
    with connect(api.url.replace("http://", "ws://") + "/ws/chat", open_timeout=10) as ws:
        ws.send(json.dumps({"token": user["token"]}))
        assert receive(ws) == {"type": "ready"}
        r = web.post(f"{api.url}/api/logout-all", headers=bearer(user["token"]), timeout=10)
        assert r.status_code == 204, r.text
        assert close_of(ws) == (1008, "Invalid or expired token")


def test_a_token_without_an_id_or_a_version_is_refused(app, user):
    """A token without jti (its id) or ver (the user's token version) is refused: 401."""
    with TestClient(app) as client:
        for missing in ("jti", "ver"):
            claims = jwt.decode(token_for(user["id"]), JWT_SECRET, algorithms=["HS256"])
            del claims[missing]
            r = client.get("/api/me", headers=bearer(jwt.encode(claims, JWT_SECRET, algorithm="HS256")))
            assert r.status_code == 401, (missing, r.text)


@pytest.mark.parametrize("change", ["PUT /api/me", "POST /api/logout-all"])
def test_a_change_to_an_account_deleted_meanwhile_is_a_401_not_a_500(app, db_env, db, user, change):
    """A profile change or a logout everywhere whose account is deleted meanwhile gets the 401, not a 500.
    Hint: the row is gone: an UPDATE through the ORM finds no row, and the commit raises
    StaleDataError (sqlalchemy.orm.exc); reading the object after a rollback raises
    ObjectDeletedError. Whatever your code meets there, the answer is the 401."""
    def request():
        with TestClient(app) as client:
            if change == "PUT /api/me":
                return client.put("/api/me", json={"name": "Ada L"}, headers=bearer(user["token"]))
            return client.post("/api/logout-all", headers=bearer(user["token"]))

    r = deleted_while_the_app_waits(db_env, db, user["id"], request)
    assert r.status_code == 401 and r.json() == {"detail": REVOKED}, r.text


@pytest.mark.parametrize("kind", ["stream", "socket"])
def test_a_chat_whose_account_is_deleted_as_it_takes_its_seat_is_refused(app, db_env, db, coach, user, kind):
    """A stream or socket whose account is deleted as it takes its seat is refused (401 / 1008), not a 500.
    Hint: the seat's row points at the user (a foreign key): its INSERT raises IntegrityError."""
    def request():
        with TestClient(app) as client:
            if kind == "stream":
                return client.post("/api/chat/stream", json={"message": ASKED}, headers=bearer(user["token"]))
            with app_socket(client) as ws:
                ws.send_json({"token": user["token"]})
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_json()
                return closed.value

    answer = deleted_while_the_app_waits(db_env, db, user["id"], request)
    if kind == "stream":
        assert answer.status_code == 401 and answer.json() == {"detail": REVOKED}, answer.text
    else:
        assert (answer.code, answer.reason) == (1008, "Invalid or expired token")


# --- nothing one kind of request does starves the rest -------------------------------------------

def test_at_most_hashes_at_once_passwords_are_hashed_at_the_same_time(app, monkeypatch):
    """At most HASHES_AT_ONCE (1) passwords are hashed at the same time, however many signups come at once.
    Hint: an anyio.CapacityLimiter, and anyio.to_thread.run_sync(..., limiter=...) in an async
    endpoint: a signup waiting for its turn then holds no worker thread either."""
    from app import security

    lock, hashing, most = threading.Lock(), [0], [0]
    real_hash = security.pwd_context.hash

    def counted_hash(password, **options):
        with lock:
            hashing[0] += 1
            most[0] = max(most[0], hashing[0])
        try:
            time.sleep(0.05)
            return real_hash(password, **options)
        finally:
            with lock:
                hashing[0] -= 1

    monkeypatch.setattr(security.pwd_context, "hash", counted_hash)
    with client_from(app) as client, ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: sign_up(client), range(6)))
    assert most == [1]


def test_a_chat_waiting_for_the_llm_holds_no_worker_thread(app, overrides, coach, db):
    """/api/chat holds no worker thread while the LLM thinks: it awaits AsyncOpenAI in an async endpoint.
    Three chats wait for a coach that hangs; meanwhile no thread of the pool is taken."""
    import anyio.to_thread

    from app.config import get_settings
    from app.deps import get_llm
    from app.llm import LLM

    llm = LLM(get_settings().model_copy(update={"OPENAI_TIMEOUT": 20}))
    overrides[get_llm] = lambda: llm
    coach.mode("slow", seconds=20)
    with TestClient(app) as client, ThreadPoolExecutor(3) as pool:
        tokens = [token_for(insert_user(db)) for _ in range(3)]
        chats = [pool.submit(client.post, "/api/chat", json={"message": ASKED}, headers=bearer(token))
                 for token in tokens]
        wait_for(lambda: len(coach.requests()) == 3, "the three chats reach the coach")
        held = []  # threads of the pool in use, a few times while the three wait
        for _ in range(5):
            held.append(client.portal.call(
                lambda: anyio.to_thread.current_default_thread_limiter().borrowed_tokens))
            time.sleep(0.05)
        coach.mode("ok")  # the three get their answers now
        assert [c.result().status_code for c in chats] == [200, 200, 200]
    assert min(held) == 0, held  # (a thread may be lent for a moment to something else)


# --- budgets on what a user holds open -----------------------------------------------------------

def seats_taken_in_one_process(app) -> None:
    """Fails at once unless a user's fourth socket is closed within one process."""
    with client_from(app) as client, ExitStack() as held:
        token = log_in(client, sign_up(client))
        for _ in range(3):
            ws = held.enter_context(app_socket(client))
            ws.send_json({"token": token})
            assert ws.receive_json() == {"type": "ready"}
        with app_socket(client) as fourth:
            fourth.send_json({"token": token})
            try:
                frame = fourth.receive_json()
            except WebSocketDisconnect:
                return
    pytest.fail(f"a user's fourth socket got {frame} even in one process, not a close with 1013: it "
                "must be closed there before two workers are tried")


def test_a_user_holds_at_most_three_chats_open_across_workers(app, two_workers, coach, user):
    """A user holds at most OPEN_CHATS_PER_USER (3) streams and sockets open at once, over all workers.
    A fourth socket is closed with 1013 (try again later) and the reason; a stream gets 429; once
    they close, a new one opens."""
    seats_taken_in_one_process(app)
    url = two_workers.url.replace("http://", "ws://") + "/ws/chat"

    def open_socket(stack: ExitStack):
        ws = stack.enter_context(connect(url, open_timeout=10))
        ws.send(json.dumps({"token": user["token"]}))
        return ws

    with ExitStack() as first_three:
        for _ in range(3):
            assert receive(open_socket(first_three)) == {"type": "ready"}
        with ExitStack() as fourth:
            assert close_of(open_socket(fourth)) == (1013, TOO_MANY_OPEN)
        r = web.post(f"{two_workers.url}/api/chat/stream", json={"message": ASKED},
                     headers=bearer(user["token"]), timeout=10)
        assert r.status_code == 429 and r.json() == {"detail": TOO_MANY_OPEN}, r.text
    # The three closed: their seats are free again, once the server has seen them go.
    deadline = time.monotonic() + 10
    while True:
        with ExitStack() as again:
            try:
                assert receive(open_socket(again)) == {"type": "ready"}
                break
            except ConnectionClosed as closed:
                assert closed.rcvd.code == 1013 and time.monotonic() < deadline, closed
        time.sleep(0.1)


# --- headers and pages --------------------------------------------------------------------------

def test_every_answer_carries_security_headers(app, user):
    """Every answer carries the headers X-Content-Type-Options, Referrer-Policy and Content-Security-Policy.
    X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer; an API answer is data, so its
    Content-Security-Policy is "default-src 'none'; frame-ancestors 'none'". The body limit's own
    413 too: the headers' middleware is outside it."""
    too_large = b"x" * (MAX_BODY_BYTES + 1)
    with TestClient(app) as client:
        for r in (client.get("/api/me", headers=bearer(user["token"])), client.get("/api/me"),
                  client.post("/api/login", json={}),
                  client.post("/api/users", content=too_large, headers={"Content-Type": "application/json"})):
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


@pytest.fixture(scope="module")
def csp_free_tab(browser):
    with ReusedTab(browser, BROWSER_WAIT_MS, bypass_csp=True) as tab:
        yield tab


@pytest.fixture
def page(csp_free_tab):
    """A page for lesson 21's page tests that does not enforce the pages' Content Security
    Policy: those tests wait with page.wait_for_function("<expression>"), which Playwright keeps
    evaluating as a string, and that is what the policy forbids ('unsafe-eval'). This lesson's
    own page tests use strict_page. (A tab of the module's own, reset after each test.)"""
    with csp_free_tab.lent() as page:
        yield page


@pytest.fixture
def strict_page(tab):
    """(page, blocked): a page under the pages' own Content Security Policy (the module's usual
    tab), and what that policy blocked, as the browser's console reports it. Its waits are
    written as functions, "() => ...": Playwright evaluates such a string once, as the policy
    allows."""
    with tab.lent() as page:
        blocked = []
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        yield page, blocked


@contextmanager
def naming_what_the_policy_blocked(blocked: list[str]):
    """A page under a strict policy that never gets where a test waits for it was most often
    stopped by that policy (an inline script, or the API's address missing from connect-src):
    a wait that times out in this block fails with what the policy blocked, when it blocked
    anything."""
    try:
        yield
    except PlaywrightTimeout:
        assert blocked == [], "the page's own Content-Security-Policy blocked what the page needed"
        raise


INJECT_INLINE_SCRIPT = """() => {
  const script = document.createElement("script");
  script.textContent = "window.injected = true";
  document.body.append(script);
  return window.injected === true;
}"""


GREETED = "() => document.getElementById('greeting').textContent.startsWith('Hello, ')"
READY_TO_SEND = "() => !document.querySelector('#ask button').disabled"
PROFILE_SHOWN = "() => document.querySelector('input[name=name]').value === 'Ada'"


def in_the_browser(request):
    """(pages, (page, blocked)): the live servers and a page under the pages' own policy
    (strict_page), started only now. What a page test can show without a browser (the page's
    file, the API in one process) comes first: a red check launches no browser for it."""
    return request.getfixturevalue("pages"), request.getfixturevalue("strict_page")


def declares_a_policy(lesson, path: str) -> None:
    html = (lesson.path / "frontend" / path).read_text()
    if not re.search(r"<meta[^>]*http-equiv\s*=\s*[\"']?content-security-policy", html, re.IGNORECASE):
        pytest.fail(f'frontend/{path} declares no <meta http-equiv="Content-Security-Policy" content="...">')


def ended_in_one_process(app, path: str) -> None:
    """Fails at once unless POST PATH ends the token that sent it, within one process."""
    with client_from(app) as client:
        token = log_in(client, sign_up(client))
        r = client.post(path, headers=bearer(token))
        me = client.get("/api/me", headers=bearer(token))
    if me.status_code != 401:
        pytest.fail(f"POST {path} answered {r.status_code} and the token still got {me.status_code} from "
                    "GET /api/me, even through the API alone: the button can end it only once the API does")


def message_says(*texts: str) -> str:
    """JavaScript: #message shows one of TEXTS."""
    shown = "document.getElementById('message').textContent"
    return f"() => {json.dumps(texts)}.some(text => {shown}.includes(text))"


@pytest.mark.parametrize("path", ["signup.html", "login.html", "home.html", "settings.html"])
def test_each_page_works_under_a_content_security_policy_that_stops_inline_scripts(lesson, request, coach,
                                                                                   user, path):
    """Each page works under a Content-Security-Policy (a <meta http-equiv>) that stops inline scripts.
    Hint: move each page's <script> and <style> into files of their own (script-src 'self'), and
    let connect-src reach the API and its socket on any port of localhost and 127.0.0.1 (the tests
    run the API on a port of their own, which only config.js knows)."""
    declares_a_policy(lesson, path)
    pages, (page, blocked) = in_the_browser(request)
    with naming_what_the_policy_blocked(blocked):
        log_in_page(page, pages, user, path)
        if path == "home.html":  # the page reached the API and the socket: the greeting, and Send enabled
            page.wait_for_function(GREETED)
            page.wait_for_function(READY_TO_SEND)
        if path == "settings.html":  # the page reached the API: the form holds the profile
            page.wait_for_function(PROFILE_SHOWN)
    assert blocked == []
    assert page.evaluate(INJECT_INLINE_SCRIPT) is False


def test_the_home_pages_log_out_button_ends_the_token(app, request, coach, user):
    """The home page's #logout button ends the token for real (POST /api/logout) and goes to login.html."""
    ended_in_one_process(app, "/api/logout")
    pages, (page, blocked) = in_the_browser(request)
    with naming_what_the_policy_blocked(blocked):
        log_in_page(page, pages, user, "home.html")
        page.wait_for_function(GREETED)
        page.click("#logout")
        page.wait_for_url("**/login.html")
    assert web.get(f"{pages.api}/api/me", headers=bearer(user["token"]), timeout=10).status_code == 401


def test_the_home_pages_log_out_everywhere_button_ends_every_token(app, request, coach, user):
    """The home page's #logout-all button ends every token of the user (POST /api/logout-all) and goes
    to login.html."""
    ended_in_one_process(app, "/api/logout-all")
    pages, (page, blocked) = in_the_browser(request)
    elsewhere = token_for(user["id"])  # the same user, on another device
    with naming_what_the_policy_blocked(blocked):
        log_in_page(page, pages, user, "home.html", "#logout-all")
        page.wait_for_function(GREETED)
        page.click("#logout-all")
        page.wait_for_url("**/login.html")
    for token in (user["token"], elsewhere):
        assert web.get(f"{pages.api}/api/me", headers=bearer(token), timeout=10).status_code == 401


def test_the_settings_page_asks_for_the_current_password_and_logs_in_again(app, request, coach):
    """The settings page sends input[name=current_password] and logs in again after a new password."""
    with client_from(app) as client:
        token = log_in(client, sign_up(client))
        r = client.put("/api/me", json={"password": "new-horse"}, headers=bearer(token))
    if r.status_code == 200:
        pytest.fail("PUT /api/me took a new password without current_password, even through the API alone: "
                    "the page can ask for it only once the API does")
    pages, (page, blocked) = in_the_browser(request)
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    account = {"name": "Ada", "email": email, "password": PASSWORD}
    assert web.post(f"{pages.api}/api/users", json=account, timeout=10).status_code == 201
    old = web.post(f"{pages.api}/api/login", json=account, timeout=10).json()["access_token"]
    with naming_what_the_policy_blocked(blocked):
        log_in_page(page, pages, {"token": old}, "settings.html", "input[name=current_password]")
        page.wait_for_function(PROFILE_SHOWN)
        page.fill("input[name=password]", "new-horse")
        page.fill("input[name=current_password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_function(message_says("Saved: password."))
    new = page.evaluate("localStorage.getItem('token')")
    assert new != old
    assert web.get(f"{pages.api}/api/me", headers=bearer(old), timeout=10).status_code == 401
    assert web.get(f"{pages.api}/api/me", headers=bearer(new), timeout=10).json()["email"] == email


def test_the_login_page_says_so_when_there_were_too_many_failed_logins(app, request):
    """The login page shows the 429's detail in #message when there were too many failed logins."""
    locked_in_one_process(app)
    pages, (page, blocked) = in_the_browser(request)
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    for _ in range(5):
        web.post(f"{pages.api}/api/login", json={"email": email, "password": "wrong-password"}, timeout=10)
    with naming_what_the_policy_blocked(blocked):
        page.goto(f"{pages.url}/login.html?email={email}")
        page.fill("input[name=password]", "wrong-password")
        page.click("button[type=submit]")
        # An API with no limit yet answers 401: the page shows that detail, and the test fails at once.
        page.wait_for_function(message_says(TOO_MANY_LOGINS, "Wrong email or password"))
    assert TOO_MANY_LOGINS in page.text_content("#message"), page.text_content("#message")


# --- the folder's own tests (lesson 23 on) ------------------------------------------------------

def test_the_folders_own_tests_pass(lesson, db_env):
    """The folder's own tests (tests/, from lesson 23) pass, grown with tests of this lesson.
    They run as you run them, `pytest` in the folder, on a test database of their own; one of
    them at least asks /api/logout (or /api/logout-all), and one expects a 429."""
    suite = " ".join(path.read_text() for path in (lesson.path / "tests").glob("test_*.py"))
    assert "/api/logout" in suite, "no test in tests/ asks /api/logout or /api/logout-all"
    assert "429" in suite, "no test in tests/ expects a 429"
    # The environment a shell gives it, and what every test process here adds (testenv.py).
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    env.update(NO_CERTIFICATES)
    env.update(db_env, TEST_DB_NAME=f"{db_env['DB_NAME']}_own")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "-o",
                           "addopts="], cwd=lesson.path, env=env, capture_output=True, text=True, timeout=300)
    # pytest's summary lines first ("FAILED tests/test_x.py::test_y - why"): which test, and why.
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    assert done.returncode == 0, "\n".join(failed) + "\n" + done.stdout[-3000:] + done.stderr[-2000:]


# --- lesson 22's tests whose contract this lesson changes, adapted ------------------------------

def test_the_docs_list_every_endpoint_grouped_by_router_tags(app):
    """/docs lists the paths of lesson 22 and /api/logout, /api/logout-all (tag auth)."""
    paths = app.openapi()["paths"]
    tags = {(path, method): op.get("tags") for path, ops in paths.items() for method, op in ops.items()}
    assert set(paths) == {"/api/time", "/api/test-db", "/api/users", "/api/me", "/api/login", "/api/logout",
                          "/api/logout-all", "/api/chat", "/api/chat/stream", "/api/chat/history"}
    assert tags[("/api/logout", "post")] == tags[("/api/logout-all", "post")] == ["auth"]
    assert all(tags.values()), tags


def test_the_llm_client_is_made_at_startup_and_closed_at_shutdown(app):
    """The lifespan puts an LLM in app.state.llm; its one client, an AsyncOpenAI, closes at shutdown."""
    from openai import AsyncOpenAI

    with TestClient(app):
        llm = app.state.llm
        assert isinstance(llm.client, AsyncOpenAI) and not llm.client.is_closed()
    assert llm.client.is_closed()


class CountingCoach(CannedCoach):
    """Lesson 22's canned coach, with this lesson's LLM methods: async ask, and the usage filled in."""

    async def ask(self, messages: list[dict], usage) -> str:
        usage.tokens = 7
        return super().ask(messages)

    async def stream(self, messages: list[dict], usage):
        usage.tokens = 7
        async for piece in super().stream(messages):
            yield piece


def test_dependency_overrides_swap_the_llm_for_chat_stream_and_socket(app, overrides, coach, user):
    """dependency_overrides[get_llm] swaps the LLM (async ask, stream, each with a Usage) everywhere.
    /api/chat, the stream and /ws/chat all answer with the canned coach; the real one is not asked."""
    from app.deps import get_llm

    canned = CountingCoach()
    overrides[get_llm] = lambda: canned
    with TestClient(app) as client:
        r = client.post("/api/chat", json={"message": ASKED}, headers=bearer(user["token"]))
        assert r.status_code == 200 and r.json() == {"reply": "Practise out loud."}, r.text
        r = client.post("/api/chat/stream", json={"message": ASKED}, headers=bearer(user["token"]))
        assert sse_events(r.text)[-1] == ("done", {}), r.text
        assert socket_answer(client, user["token"]) == "Practise out loud."
    assert coach.requests() == []
    assert len(canned.asked) == 3
