"""Lesson 21: /ws/chat, the coach's answers streamed over one WebSocket per page.

The sockets talk to a real uvicorn (the module's `pages` API) and the offline coach
(shared/coach.py). Order is shown by the order frames arrive in and by the coach's stats
(running, completed, cancelled streams), never by timing. Only the event loop's tests time
something: a cheap request while the app waits for a slow coach or for tables the test holds,
against bounds that are a quarter of that wait or more.
"""

import asyncio
import itertools
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import jwt
import pytest
from fastapi import WebSocketDisconnect
from fastapi.testclient import TestClient
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from websockets.asyncio.client import connect as connect_async
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from helpers import (
    LLM_FAILURES,
    PAUSE_SECONDS,
    WATCH_ANSWER,
    answer_times,
    answer_times_while_a_chat_waits_for_the_database,
    app_socket,
    bearer,
    earlier_messages_load_on_the_page,
    history_read_in_pages,
    insert_user,
    log_in_page,
    pool_exhausted,
    seconds_to_answer_while_held,
    tables_held,
    the_app_waits_for,
    token_for,
    wait_for,
)
from helpers import chat_history as history
from shared.coach import answer as coachs_answer
from test_17_crud_logging_depends import (  # noqa: F401  (lesson 17's test: the same PUT /api/me)
    test_a_change_to_an_account_deleted_meanwhile_is_401_not_500,
)
from test_18_ai_chat_openai import (  # noqa: F401  (lesson 18's test: the same /api/chat)
    test_no_database_connection_is_held_while_the_llm_thinks,
)
from test_20_sse_stream import (  # noqa: F401  (lesson 20's tests: the same stream)
    test_a_message_that_is_not_1_to_4000_characters_is_422,
    test_a_pool_with_no_free_connection_when_the_answer_is_stored_is_an_error_event,
)

QUESTION = "How do I answer 'Tell me about yourself'?"
TOKEN_DELAY = 0.01  # seconds per token for the tests that watch a stream while it runs
GAP = 0.6  # seconds between tokens while the event loop is watched (within OPENAI_TIMEOUT, 1 s here)
COACH_FAILED = {"type": "error", "detail": "The coach is unavailable, try again later"}
BUSY = {"type": "error", "detail": "An answer is still coming: send the next message after it is done"}
TOO_MANY = (1008, "Too many frames that are no question: wait for each answer")  # the flood's close
LOGIN_TIMEOUT = 1  # seconds a socket has for its first frame in these tests (WS_LOGIN_TIMEOUT)
MAX_FRAME = 64 * 1024  # characters in a frame, at most


@pytest.fixture(scope="session", autouse=True)
def llm_settings(coach_server):
    """Point the app at the offline coach before main.py is imported; "too slow" is 1 s here,
    and so is the time a socket has to send its token."""
    os.environ.update(coach_server.env, OPENAI_TIMEOUT="1", WS_LOGIN_TIMEOUT=str(LOGIN_TIMEOUT))


def socket_url(pages) -> str:
    return pages.api.replace("http://", "ws://") + "/ws/chat"


def receive(ws) -> dict:
    """The next frame, as JSON; fails the test when none comes within 10 s."""
    try:
        text = ws.recv(timeout=10)
    except TimeoutError:
        pytest.fail("no frame came within 10 s: the server sent nothing (no token, no done, no error frame) "
                    "after what the test sent last")
    return json.loads(text)


def frame_or_close(ws) -> dict:
    """The next frame, or {"closed": (code, reason)} when the server closes the socket instead."""
    try:
        return receive(ws)
    except ConnectionClosed as closed:
        return {"closed": closed.rcvd and (closed.rcvd.code, closed.rcvd.reason)}


@contextmanager
def socket_to(url: str):
    """A WebSocket to URL (ws://.../ws/chat), not logged in yet. A refused handshake fails the
    test with what a 403 there most often means."""
    try:
        ws = connect(url, open_timeout=10)
    except InvalidStatus as refused:
        status = refused.response.status_code
    else:
        with ws:
            yield ws
        return
    why = ": most often there is no WebSocket route there (@app.websocket)" if status == 403 else ""
    pytest.fail(f"the server refused the WebSocket at {url} with HTTP {status}{why}")


@contextmanager
def logged_in(pages, user):
    """An open socket whose first frame was the user's token; the server said ready."""
    with socket_to(socket_url(pages)) as ws:
        ws.send(json.dumps({"token": user["token"]}))
        assert receive(ws) == {"type": "ready"}
        yield ws


def close_of(ws) -> tuple[int, str]:
    """(code, reason) of the close frame the server sends next; any other frame fails the test."""
    with pytest.raises(ConnectionClosed) as closed:
        frame = ws.recv(timeout=10)
        pytest.fail(f"a frame came instead of a close: {frame}")
    assert closed.value.rcvd is not None, "the connection was cut without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


def ask(ws, message=QUESTION) -> tuple[list[str], dict]:
    """Sends one message; returns the token frames' contents and the frame that ended them."""
    ws.send(json.dumps({"message": message}))
    tokens = []
    while (frame := receive(ws))["type"] == "token":
        tokens.append(frame["content"])
    return tokens, frame


# --- streaming over the socket ----------------------------------------------------------------

def test_the_answer_comes_as_token_frames_then_done(pages, coach, user):
    with logged_in(pages, user) as ws:
        tokens, last = ask(ws)
    assert last == {"type": "done"}
    assert len(tokens) > 10
    [sent] = coach.requests()
    assert "".join(tokens) == coachs_answer(sent["messages"])
    assert "\n\n" in "".join(tokens)  # newlines and blank lines arrive intact


def test_the_first_token_arrives_while_the_coach_is_still_writing(pages, coach, user):
    coach.mode("pause", seconds=PAUSE_SECONDS)
    with logged_in(pages, user) as ws:
        ws.send(json.dumps({"message": QUESTION}))
        first = receive(ws)
        assert first["type"] == "token", f"no token came while the coach held the rest of its answer: {first}"
        assert coach.stats() == {"started": 1, "completed": 0, "cancelled": 0}
        coach.mode("ok")  # the coach writes the rest
        while receive(ws)["type"] == "token":
            pass
    assert coach.stats()["completed"] == 1


def test_many_messages_over_one_connection_with_memory(pages, coach, user):
    with logged_in(pages, user) as ws:
        assert ask(ws, "My name is Ada.")[1] == {"type": "done"}
        tokens, last = ask(ws, "What is my name?")
    assert last == {"type": "done"}
    assert "My name is Ada." in "".join(tokens)  # the coach quotes the message before
    assert [m["role"] for m in coach.requests()[1]["messages"]] == ["system", "user", "assistant", "user"]


def test_the_exchange_is_saved_after_the_answer(pages, coach, user):
    with logged_in(pages, user) as ws:
        tokens, _ = ask(ws)
    assert history(pages, user) == [("user", QUESTION), ("assistant", "".join(tokens))]


# --- logging in -------------------------------------------------------------------------------

@pytest.mark.parametrize("first_frame", [
    json.dumps({"token": "not-a-jwt"}),
    json.dumps({"token": token_for(1, minutes=-1)}),
    json.dumps({"token": jwt.encode({"sub": "1", "exp": 9999999999}, "another-secret-of-at-least-32-bytes!",
                                    algorithm="HS256")}),
    json.dumps({"message": QUESTION}),
    "not json",
], ids=["garbage", "expired", "wrong secret", "no token", "not json"])
def test_a_bad_or_missing_token_closes_the_socket_with_1008(pages, coach, first_frame):
    with socket_to(socket_url(pages)) as ws:
        ws.send(first_frame)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1008
    assert coach.requests() == []


def test_the_token_of_a_deleted_user_closes_the_socket_with_1008(pages, coach, user, db):
    with db.cursor() as cur:
        cur.execute("DELETE FROM users WHERE id = %s", (user["id"],))
    with socket_to(socket_url(pages)) as ws:
        ws.send(json.dumps({"token": user["token"]}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1008


def test_the_database_down_at_the_login_closes_the_socket_with_1011(live_api, closed_port, user):
    """The database down at the login closes the socket with 1011 (Database unavailable).
    Hint: the token is fine, but its user cannot be looked up: close with 1011 and the 503's
    detail as the reason, not 1008 (the page would log out) and not a traceback."""
    api = live_api(env={"DB_PORT": str(closed_port)})
    with socket_to(api.url.replace("http://", "ws://") + "/ws/chat") as ws:
        ws.send(json.dumps({"token": user["token"]}))
        assert close_of(ws) == (1011, "Database unavailable, try again later")


def test_a_socket_that_sends_no_token_is_closed_with_1008_within_the_bound(pages, coach):
    """A socket that sends no token within WS_LOGIN_TIMEOUT seconds is closed with 1008.
    Else it would stay open for as long as its client answers pings.
    Hint: wait for the first frame with a timeout (anyio.fail_after)."""
    with socket_to(socket_url(pages)) as ws:
        opened = time.monotonic()
        assert close_of(ws) == (1008, f"No token within {LOGIN_TIMEOUT} s")
        waited = time.monotonic() - opened
    assert waited < LOGIN_TIMEOUT + 2, waited


# --- failures keep the socket usable ------------------------------------------------------------

def test_the_llm_failing_sends_an_error_frame_and_the_socket_stays_usable(pages, coach, user):
    with logged_in(pages, user) as ws:
        coach.mode("error", after=3)
        tokens, last = ask(ws)
        assert (len(tokens), last) == (3, COACH_FAILED)
        coach.mode("ok")
        assert ask(ws)[1] == {"type": "done"}
    assert len(history(pages, user)) == 2  # only the exchange that was answered


@pytest.mark.parametrize("frame", [json.dumps({"message": ""}), json.dumps({"message": "x" * 4001}),
                                   json.dumps(["not", "an", "object"]), "not json"],
                         ids=["empty", "too long", "a list", "not json"])
def test_a_frame_that_is_no_message_gets_an_error_frame(pages, coach, user, frame):
    with logged_in(pages, user) as ws:
        ws.send(frame)
        assert receive(ws)["type"] == "error"
        assert ask(ws)[1] == {"type": "done"}


def test_more_than_ten_frames_in_a_row_that_are_no_question_close_the_socket_with_1008(pages, coach, user):
    """Over ten frames in a row that are no question close the socket with 1008; an answer resets the count.
    Each gets an error frame, many times its size: a client that sends thousands and reads none
    would fill the server's buffers until sending blocks. The page never sends them."""
    with logged_in(pages, user) as ws:
        for _ in range(9):
            ws.send("not a message")
            assert receive(ws)["type"] == "error"
        assert ask(ws)[1] == {"type": "done"}  # a question answered: the count starts again
        for sent in range(1, 11):
            ws.send("not a message")
            frame = frame_or_close(ws)
            assert frame.get("type") == "error", (
                f"frame {sent} after an answer got {frame}: a question answered starts the count again")
        ws.send("not a message")
        assert close_of(ws) == TOO_MANY


def test_messages_sent_mid_answer_count_as_frames_that_are_no_question(pages, coach, user):
    """Messages sent mid answer count as frames that are no question.

    Ten are told busy, the eleventh closes the socket with 1008. A busy frame is an error frame
    like the others: were they not counted, a client could send a message every moment an
    answer streams, and get an error frame back for each, for ever."""
    coach.mode("pause", seconds=PAUSE_SECONDS)  # the answer is still coming after the eleven messages
    refused, close = [], None  # the frames other than tokens; the close's (code, reason)
    with logged_in(pages, user) as ws:
        ws.send(json.dumps({"message": QUESTION}))
        assert receive(ws)["type"] == "token"
        for _ in range(11):
            ws.send(json.dumps({"message": "And another thing."}))
        while len(refused) <= 10 and (frame := frame_or_close(ws)) != {"type": "done"}:
            if "closed" in frame:
                close = frame["closed"]
                break
            if frame["type"] != "token":
                refused.append(frame)
    assert refused[:10] == [BUSY] * 10
    assert close == TOO_MANY, f"the eleventh message mid answer got {refused[10:] or 'nothing'}, not a close"


@pytest.mark.parametrize(("mode", "options"), LLM_FAILURES)
def test_the_llm_down_before_any_token_is_an_error_frame(pages, coach, user, mode, options):
    with logged_in(pages, user) as ws:
        coach.mode(mode, **options)
        assert ask(ws) == ([], COACH_FAILED)


def test_a_pool_with_no_free_connection_at_login_closes_the_socket_with_1011(client, coach, user):
    """A pool with no free connection at login closes the socket with 1011, as a database that is down.
    Hint: the pool gives up after its timeout with sqlalchemy.exc.TimeoutError, not an
    OperationalError (lesson 20's stream catches both too)."""
    with pool_exhausted(), app_socket(client) as ws:
        ws.send_json({"token": user["token"]})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert (closed.value.code, closed.value.reason) == (1011, "Database unavailable, try again later")


def test_an_answer_cut_short_before_the_llm_says_it_is_done_is_an_error_frame(pages, coach, user):
    """An answer cut short before the LLM says it is done is an error frame, and nothing is stored.
    Hint: the same stream as lesson 20's: no chunk with a finish_reason, no whole answer."""
    with logged_in(pages, user) as ws:
        coach.mode("cut", after=3)
        tokens, last = ask(ws)
        assert (len(tokens), last) == (3, COACH_FAILED)
    assert history(pages, user) == []


def test_an_account_deleted_mid_answer_gets_an_error_frame(pages, coach, user, db):
    coach.mode("pause", seconds=PAUSE_SECONDS)
    with logged_in(pages, user) as ws:
        ws.send(json.dumps({"message": QUESTION}))
        assert receive(ws)["type"] == "token"
        with db.cursor() as cur:
            cur.execute("DELETE FROM users WHERE id = %s", (user["id"],))
        coach.mode("ok")
        while (frame := receive(ws))["type"] == "token":
            pass
        assert frame == {"type": "error", "detail": "Invalid or expired token: log in again"}
        # The error frame is the question's last frame, as done is: the next frame answers the next
        # question, which the re-check refuses (the account is gone).
        ws.send(json.dumps({"message": QUESTION}))
        assert close_of(ws) == (1008, "Invalid or expired token")


def test_a_socket_closed_mid_answer_stops_the_llm_call(pages, coach, user):
    coach.mode("ok", token_delay=0.5)  # a whole answer would take far longer than the wait below
    with logged_in(pages, user) as ws:
        ws.send(json.dumps({"message": QUESTION}))
        assert receive(ws)["type"] == "token"
    wait_for(lambda: coach.stats()["cancelled"] >= 1, "the coach sees its stream cancelled", seconds=10)
    assert coach.stats()["completed"] == 0


# --- frames a socket refuses, and frames that come while it answers ----------------------------

@contextmanager
def socket_at(pages, user, login: bool):
    """A socket to the app, logged in as `user` or not yet (its next frame is the first)."""
    if login:
        with logged_in(pages, user) as ws:
            yield ws
    else:
        with socket_to(socket_url(pages)) as ws:
            yield ws


@pytest.mark.parametrize("login", [True, False], ids=["after the login", "as the first frame"])
def test_a_binary_frame_closes_the_socket_with_1003(pages, coach, user, login):
    """Hint: websocket.receive() gives the raw message: "text", or "bytes" for a binary frame."""
    with socket_at(pages, user, login) as ws:
        ws.send(b"\x00\x01 not text")
        assert close_of(ws) == (1003, "Binary frames are not accepted: send JSON text")


@pytest.mark.parametrize("login", [True, False], ids=["after the login", "as the first frame"])
def test_a_frame_over_the_size_limit_closes_the_socket_with_1009(pages, coach, user, login):
    with socket_at(pages, user, login) as ws:
        ws.send(json.dumps({"message": "x" * MAX_FRAME}))  # the frame: MAX_FRAME + 15 characters
        assert close_of(ws) == (1009, f"A frame may have at most {MAX_FRAME} characters")
    assert coach.requests() == []


def test_a_message_sent_mid_answer_is_told_busy_and_the_answer_goes_on(pages, coach, user):
    """Hint: read the frames in one task and answer in another (an anyio task group)."""
    coach.mode("pause", seconds=PAUSE_SECONDS)
    with logged_in(pages, user) as ws:
        ws.send(json.dumps({"message": QUESTION}))
        first = receive(ws)
        ws.send(json.dumps({"message": "And another thing."}))
        frames = [first, receive(ws)]  # while the coach holds the rest: the answer to the second
        coach.mode("ok")
        while (frame := receive(ws))["type"] != "done":
            frames.append(frame)
    assert [f for f in frames if f["type"] != "token"] == [BUSY]
    [sent] = coach.requests()  # the second message never reached the coach
    assert "".join(f["content"] for f in frames if f["type"] == "token") == coachs_answer(sent["messages"])


def test_pings_are_answered_while_an_answer_streams(live_api, coach, user):
    """Pings are answered while an answer streams: the app reads frames all along.
    uvicorn pings every 0.1 s here and gives up on a client after 0.5 s without its pong. Its
    pongs are read only while the app reads frames: a frame left unread mid-answer (a second
    message) stops them, and the socket is closed (1011) before its answer is done."""
    api = live_api(env={"UVICORN_WS_PING_INTERVAL": "0.1", "UVICORN_WS_PING_TIMEOUT": "0.5"})
    coach.mode("ok", token_delay=TOKEN_DELAY)  # an answer of about 1 s
    with socket_to(api.url.replace("http://", "ws://") + "/ws/chat") as ws:
        ws.send(json.dumps({"token": user["token"]}))
        assert receive(ws) == {"type": "ready"}
        ws.send(json.dumps({"message": QUESTION}))
        assert receive(ws)["type"] == "token"
        ws.send(json.dumps({"message": "And another thing."}))
        while receive(ws)["type"] != "done":  # tokens, and the busy error frame
            pass
    assert coach.stats()["completed"] == 1


# --- the login holds for every message, not only the first --------------------------------------

def test_a_socket_whose_token_has_expired_is_closed_with_1008_on_its_next_message(pages, coach, db):
    """Hint: check the token again (decode_token) before each answer, not only at login."""
    token = token_for(insert_user(db), minutes=2 / 60)  # 1 to 2 s left (exp is in whole seconds)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    with logged_in(pages, {"token": token}) as ws:
        wait_for(lambda: time.time() > expires, "the token expires", seconds=3)
        ws.send(json.dumps({"message": QUESTION}))
        assert close_of(ws) == (1008, "Invalid or expired token")
    assert coach.requests() == []


def test_a_deleted_accounts_socket_is_closed_with_1008_and_the_coach_is_not_asked(pages, coach, user, db):
    """A deleted account's socket is closed with 1008 and the coach is not asked."""
    with logged_in(pages, user) as ws:
        with db.cursor() as cur:
            cur.execute("DELETE FROM users WHERE id = %s", (user["id"],))
        ws.send(json.dumps({"message": QUESTION}))
        assert close_of(ws) == (1008, "Invalid or expired token")
    assert coach.requests() == []


# --- two at once --------------------------------------------------------------------------------

def test_two_chats_at_once_are_not_served_one_after_the_other(pages, coach, db, app):
    """B asks while A's answer is streaming; B's first token must come before A's last.
    Hint: nothing in the socket's loop may block the event loop (AsyncOpenAI, run_in_threadpool)."""
    coach.mode("ok", token_delay=TOKEN_DELAY)
    users = [token_for(insert_user(db, f"Two{name}")) for name in ("A", "B")]
    seen = []  # (who, frame type), in the order they arrived

    async def chat(who, token, may_start: asyncio.Event, started: asyncio.Event):
        async with connect_async(socket_url(pages), open_timeout=10) as ws:
            await ws.send(json.dumps({"token": token}))
            assert json.loads(await ws.recv()) == {"type": "ready"}
            await may_start.wait()
            await ws.send(json.dumps({"message": QUESTION}))
            while True:
                frame = json.loads(await ws.recv())
                seen.append((who, frame["type"]))
                started.set()
                if frame["type"] != "token":
                    return

    async def both():
        go, a_started, b_started = asyncio.Event(), asyncio.Event(), asyncio.Event()
        go.set()
        await asyncio.wait_for(asyncio.gather(chat("A", users[0], go, a_started),
                                              chat("B", users[1], a_started, b_started)), 20)

    # In a thread of its own: once this process has started the browser (Playwright's sync API),
    # its main thread has an event loop running, and asyncio.run() refuses to start another there.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, both()).result()
    assert seen.index(("B", "token")) < seen.index(("A", "done")), seen
    assert seen.count(("A", "done")) == seen.count(("B", "done")) == 1


def test_other_requests_are_answered_while_a_sockets_answer_streams(pages, coach, user):
    """Other requests are answered while a socket's answer streams.

    While the coach waits GAP s between tokens, GET /api/time, sent five times, must come back
    in well under the gap (half of them in under half of it; held up, each takes about all of
    it, and a busy machine's own delays stay well below half): a synchronous client would
    hold the event loop until the next token, and every request and socket with it.
    Hint: AsyncOpenAI, with `await` and `async for`: a synchronous OpenAI client's wait for the
    next token blocks the event loop, so everyone else waits with it."""
    coach.mode("ok", token_delay=GAP)
    with logged_in(pages, user) as ws:
        ws.send(json.dumps({"message": QUESTION}))
        assert receive(ws)["type"] == "token"  # the first: the coach writes the next in GAP s
        took = answer_times(f"{pages.api}/api/time", count=5, every=GAP / 3)
        after = receive(ws)
    assert after["type"] == "token", f"the answer was to go on meanwhile; the socket sent {after}"
    median = statistics.median(took)
    assert median < GAP / 2, (f"GET /api/time took {median:.2f} s (the middle of "
                              f"{', '.join(f'{t:.2f}' for t in took)}) while the coach waited {GAP} s "
                              "between tokens: the event loop waited with it")


def test_other_requests_are_answered_while_a_socket_waits_for_the_database(pages, coach, user, db, db_env):
    """Other requests are answered while a socket waits for the database.

    The test holds the users table, then the messages table, while a question comes in (the
    token's check and the history wait for them), then the messages table while the answer is
    stored: GET /api/time meanwhile must come back at once, not when the test lets go after 2 s.
    Hint: the database's calls block: run them in a worker thread (`await run_in_threadpool(...)`),
    never straight inside the socket's async handler."""
    coach.mode("ok", token_delay=0.005)  # about half a second before the answer is stored
    with logged_in(pages, user) as ws:
        took = answer_times_while_a_chat_waits_for_the_database(
            db, db_env, f"{pages.api}/api/time", lambda: ws.send(json.dumps({"message": QUESTION})))
        while (last := receive(ws))["type"] == "token":
            pass
    slow = {step: round(seconds, 1) for step, seconds in took.items() if seconds >= 1}
    assert slow == {}, f"seconds GET /api/time took while the socket waited for the database: {slow}"
    assert last == {"type": "done"}, last


def test_other_requests_are_answered_while_a_sockets_login_waits_for_the_database(pages, coach, user, db,
                                                                                  db_env):
    """Other requests are answered while a socket's login waits for the database.

    The test holds the users table while a socket sends its token (the login looks its account
    up): GET /api/time meanwhile must come back at once, not when the test lets go after 2 s.
    Hint: the login's lookup blocks like any database call: run it in a worker thread too."""
    with socket_to(socket_url(pages)) as ws:
        with tables_held(db_env, "users") as users:
            ws.send(json.dumps({"token": user["token"]}))
            wait_for(lambda: the_app_waits_for(db, "users"), "the socket's login waits for users")
            took = seconds_to_answer_while_held(f"{pages.api}/api/time", users)
        assert took < 1, (f"GET /api/time took {took:.1f} s while a socket's login waited for the "
                          "database: the event loop waited with it")
        assert receive(ws) == {"type": "ready"}


# --- the page -----------------------------------------------------------------------------------

def socket_ready_in_one_process(app, db) -> None:
    """Fails at once unless /ws/chat says ready to a logged-in socket within one process: the page
    can use the socket only once the API has one (and a red check launches no browser for it)."""
    token = token_for(insert_user(db))
    with TestClient(app) as client:
        try:
            with client.websocket_connect("/ws/chat") as ws:
                ws.send_json({"token": token})
                frame = ws.receive_json()
        except WebSocketDisconnect as closed:  # 1000 before any frame: most often no /ws/chat route
            frame = f"a close with {closed.code} before any frame (is there a /ws/chat route?)"
    if frame != {"type": "ready"}:
        pytest.fail(f"/ws/chat answered a logged-in socket with {frame} even in one process, not "
                    '{"type": "ready"}: the page can use the socket only once the API has one')


def on_the_page(app, db, request):
    """(pages, page), started once the API's socket says ready (socket_ready_in_one_process)."""
    socket_ready_in_one_process(app, db)
    return request.getfixturevalue("pages"), request.getfixturevalue("page")


def open_home(page, pages, user) -> list:
    """Opens home.html logged in as `user`; returns the list of WebSockets the page opens."""
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    log_in_page(page, pages, user, "home.html")
    page.wait_for_function("!document.querySelector('#ask button').disabled")
    return sockets


def send_and_wait(page, text: str, answers: int) -> None:
    page.fill("#ask textarea", text)
    page.click("#ask button[type=submit]")
    page.wait_for_function(f"document.querySelectorAll('#chat li.assistant').length === {answers} "
                           "&& !document.querySelector('#ask button').disabled")


def test_the_page_streams_the_answer_over_a_websocket_piece_by_piece(app, db, request, coach, user):
    pages, page = on_the_page(app, db, request)
    coach.mode("ok", token_delay=TOKEN_DELAY)
    sockets = open_home(page, pages, user)
    posted = []  # the page's POSTs to /api/chat or its stream: the question must go over the socket
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" and "/api/chat" in r.url
            else None)
    page.evaluate(WATCH_ANSWER)
    hostile = "<b>bold</b><img src=x onerror=\"window.pwned=1\"> yourself?"
    send_and_wait(page, hostile, 1)
    assert sockets == [socket_url(pages)]
    assert posted == [], "the page sent the question over HTTP, not over its socket"
    [sent] = coach.requests()
    expected = coachs_answer(sent["messages"])
    assert page.locator("#chat li").all_text_contents() == [hostile, expected]
    growing = [text for text in dict.fromkeys(page.evaluate("window.shown")) if expected.startswith(text)]
    assert len(growing) > 10, growing  # many partial answers, each a beginning of the whole
    assert page.locator("#chat b, #chat img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_the_page_reconnects_when_the_socket_drops(app, db, request, coach, user):
    pages, page = on_the_page(app, db, request)
    sockets = open_home(page, pages, user)
    page.evaluate("socket.close()")  # as if the network went away
    page.wait_for_function("socket.readyState === WebSocket.OPEN")
    send_and_wait(page, QUESTION, 1)
    assert len(sockets) == 2
    assert page.locator("#chat li.assistant").all_text_contents()[0].startswith('You wrote: "')


# Run in the page once it is open: from then on its timers run 50 times faster, and each new
# WebSocket records the delay of the timer that led to it (null: none since the last one). While
# window.unreachable is true, a new socket goes to a port where nothing listens, so it fails as a
# socket to a server that is down does: no open, a close with 1006.
UNREACHABLE_SERVER = """port => {
  const RealWebSocket = WebSocket, realSetTimeout = setTimeout;
  let lastTimer = null;
  window.waits = [];
  window.unreachable = true;
  window.setTimeout = (run, ms = 0, ...args) => realSetTimeout(() => {
    lastTimer = ms;
    typeof run === "function" ? run(...args) : eval(run);
  }, ms / 50);
  window.WebSocket = class extends RealWebSocket {
    constructor(url, protocols) {
      window.waits.push(lastTimer);
      lastTimer = null;
      super(window.unreachable ? `ws://127.0.0.1:${port}/ws/chat` : url, protocols);
    }
  };
}"""


def test_the_page_waits_longer_before_each_reconnect_while_the_server_is_down(app, db, request, coach, user,
                                                                               closed_port):
    """The page waits longer before each reconnect while the server is down.

    A page that reconnects at once, or always after the same moment, hammers a server that is
    down, and with every open page at the same time. (The test runs the page's timers 50 times
    faster, and reads the delay each reconnect waited.)"""
    pages, page = on_the_page(app, db, request)
    open_home(page, pages, user)
    page.evaluate(UNREACHABLE_SERVER, closed_port)
    page.evaluate("socket.close()")  # as if the network went away
    page.wait_for_function("window.waits.length >= 3")
    waits = page.evaluate("window.waits.slice(0, 3)")
    assert None not in waits, f"ms the page waited before each reconnect: {waits} (null: none, at once)"
    if any(later <= earlier for earlier, later in itertools.pairwise(waits)):
        pytest.fail(f"the page waited {waits} ms before each reconnect: not longer each time")
    page.evaluate("window.unreachable = false")  # the server is back
    send_and_wait(page, QUESTION, 1)
    assert page.locator("#chat li.assistant").all_text_contents()[0].startswith('You wrote: "')


def test_the_page_logs_out_when_the_socket_is_closed_with_1008(app, db, request, coach, user):
    """The page logs out when the socket is closed with 1008, instead of reconnecting.

    1008 says the token is no good (expired, or its account gone): another socket would only
    be closed the same way. The page removes the token and opens login.html.
    Hint: in the socket's close handler, look at event.code before reconnecting."""
    pages, page = on_the_page(app, db, request)
    sockets = open_home(page, pages, user)
    with db.cursor() as cur:
        cur.execute("DELETE FROM users WHERE id = %s", (user["id"],))
    page.fill("#ask textarea", QUESTION)
    page.click("#ask button[type=submit]")  # the token is checked again: closed with 1008
    try:
        # The socket's close and the page's move to login.html take a moment on a loaded machine
        # (the server checks the token in the database first): a bound of its own, generous.
        page.wait_for_url("**/login.html*", timeout=30_000)
    except PlaywrightTimeout:
        pytest.fail(f"the page stayed at {page.url} after the close with 1008 ({len(sockets)} sockets)")
    assert page.evaluate("localStorage.getItem('token')") is None
    assert len(sockets) == 1, f"the page opened {len(sockets)} sockets: it reconnected after the 1008"


# --- the history, a page at a time (lesson 19's keyset paging, kept) ---------------------------

def test_250_messages_read_in_pages_of_100_none_twice_none_lost(client, db, user):
    history_read_in_pages(client, db, user)


def test_a_history_limit_over_100_is_422(client, user):
    r = client.get("/api/chat/history?limit=101", headers=bearer(user["token"]))
    assert r.status_code == 422, r.text


def test_the_page_still_loads_earlier_messages_a_page_at_a_time(pages, page, db, user):
    """120 stored messages: the latest 50, then 50 more and the first 20 above them, one click
    on #earlier each, as text; then the button goes."""
    earlier_messages_load_on_the_page(pages, page, db, user)
