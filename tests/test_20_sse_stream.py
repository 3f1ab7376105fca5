"""Lesson 20: POST /api/chat/stream sends the coach's answer token by token as Server-Sent Events.

The streams run against a real uvicorn (the module's `pages` API) and the offline coach
(shared/coach.py), whose stats say whether a stream to it is still running, completed, or was
cancelled because its client went away: that is how these tests see order, never by timing.
Only the event loop's tests time something: a cheap request while the app waits for a slow
coach or for tables the test holds, against bounds that are a quarter of that wait or more.
"""

import itertools
import json
import os
import statistics
import threading
import time
from contextlib import ExitStack

import httpx2
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from helpers import (
    PAUSE_SECONDS,
    WATCH_ANSWER,
    answer_times,
    answer_times_while_a_chat_waits_for_the_database,
    bearer,
    earlier_messages_load_on_the_page,
    history_read_in_pages,
    log_in_page,
    pool_exhausted,
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
from webclient import web

QUESTION = "How do I answer 'Tell me about yourself'?"
TOKEN_DELAY = 0.01  # seconds per token for the tests that watch a stream while it runs
GAP = 0.6  # seconds between tokens while the event loop is watched (within OPENAI_TIMEOUT, 1 s here)


@pytest.fixture(scope="session", autouse=True)
def llm_settings(coach_server):
    """Point the app at the offline coach before main.py is imported; "too slow" is 1 s here."""
    os.environ.update(coach_server.env, OPENAI_TIMEOUT="1")


def lines_of(response):
    """The lines of a streamed response as they come; a 10 s wait for the next fails the test."""
    lines = response.iter_lines()
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except httpx2.ReadTimeout:
            pytest.fail("no event came within 10 s: the stream sent nothing (no token, no done, no error "
                        "event) after what came last")
        yield line


def open_stream(pages, user, message=QUESTION):
    """The response of POST /api/chat/stream, to be used in a `with` block and read as it comes."""
    return web.stream("POST", f"{pages.api}/api/chat/stream", json={"message": message},
                      headers=bearer(user["token"]), timeout=10)


def events(response):
    """Yields each event of an SSE response as (name, data) as soon as it is complete; fails the
    test when nothing comes for 10 s (open_stream's timeout)."""
    name = "message"
    for line in lines_of(response):
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))
        elif line == "":
            name = "message"


def chat_stream(pages, user, message=QUESTION) -> list:
    with open_stream(pages, user, message) as r:
        assert r.status_code == 200, r.read()
        return list(events(r))


# --- the stream -------------------------------------------------------------------------------

def test_the_answer_comes_as_an_event_stream_of_tokens_then_done(pages, coach, user):
    with open_stream(pages, user) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream"), r.headers
        received = list(events(r))
    *tokens, last = received
    assert last == ("done", {})
    assert len(tokens) > 10 and {name for name, _ in tokens} == {"message"}, received
    [sent] = coach.requests()
    assert "".join(data["token"] for _, data in tokens) == coachs_answer(sent["messages"])


def test_the_first_token_arrives_while_the_coach_is_still_writing(pages, coach, user):
    """Tokens are relayed one by one as the coach writes them, not collected into one answer.
    Hint: yield each chunk of the stream=True answer as its own event."""
    coach.mode("pause", seconds=PAUSE_SECONDS)
    with open_stream(pages, user) as r:
        received = events(r)
        first = next(received)
        assert first[0] == "message", f"no token came while the coach held the rest of its answer: {first}"
        assert coach.stats() == {"started": 1, "completed": 0, "cancelled": 0}
        coach.mode("ok")  # the coach writes the rest
        rest = list(received)
    assert rest[-1] == ("done", {}) and len(rest) > 10
    assert coach.stats()["completed"] == 1


def test_an_answer_with_newlines_and_blank_lines_arrives_identical(pages, coach, user):
    """Hint: JSON-encode each token; a raw newline inside `data:` would end the event."""
    *tokens, _ = chat_stream(pages, user)
    [sent] = coach.requests()
    expected = coachs_answer(sent["messages"])
    assert "\n\n" in expected
    assert "".join(data["token"] for _, data in tokens) == expected


def test_the_exchange_is_saved_once_the_stream_ends(pages, coach, user):
    coach.mode("pause", seconds=PAUSE_SECONDS)
    with open_stream(pages, user) as r:
        received = events(r)
        next(received)
        assert history(pages, user) == [], ("stored while the stream still runs, or the first token came "
                                            "only once the whole answer was stored")
        coach.mode("ok")
        tokens = [data["token"] for name, data in received if name == "message"]
    [sent] = coach.requests()
    assert history(pages, user) == [("user", QUESTION), ("assistant", coachs_answer(sent["messages"]))]
    assert tokens  # the rest of the answer came too


def test_the_conversation_so_far_goes_to_the_coach(pages, coach, user):
    chat_stream(pages, user, "My name is Ada.")
    chat_stream(pages, user, "What is my name?")
    second = coach.requests()[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"], second
    assert second[1]["content"] == "My name is Ada."


# --- failures ---------------------------------------------------------------------------------

def test_the_llm_failing_mid_way_ends_the_stream_with_an_error_event(pages, coach, user):
    coach.mode("error", after=3)
    *tokens, last = chat_stream(pages, user)
    assert len(tokens) == 3 and last == ("error", {"detail": "The coach is unavailable, try again later"})
    assert history(pages, user) == []  # half an answer is not stored


def test_the_connection_to_the_llm_dropping_mid_way_is_an_error_event(pages, coach, user):
    coach.mode("drop", after=3)
    *_, last = chat_stream(pages, user)
    assert last == ("error", {"detail": "The coach is unavailable, try again later"})


def test_an_answer_cut_short_before_the_llm_says_it_is_done_is_an_error_event(pages, coach, user):
    """An answer cut short before the LLM says it is done is an error event, and nothing is stored.
    Hint: the openai client raises nothing when a stream stops cleanly before its last chunk;
    only that chunk, with a finish_reason ("stop"), says the answer is whole. No finish_reason:
    the same error event as the LLM failing mid-way."""
    coach.mode("cut", after=3)
    *tokens, last = chat_stream(pages, user)
    assert len(tokens) == 3 and last == ("error", {"detail": "The coach is unavailable, try again later"})
    assert history(pages, user) == []  # half an answer is not stored


@pytest.mark.parametrize(("mode", "options", "detail"), [
    ("error", {}, "The coach is unavailable, try again later"),
    ("junk", {}, "The coach is unavailable, try again later"),  # a page where the stream should be
    ("slow", {}, "The coach took too long to answer, try again"),
    # JSON, but no chunk of an answer: choices that are not a list, a number, a NUL character
    ("odd", {"shape": "choices"}, "The coach is unavailable, try again later"),
    ("odd", {"shape": "number"}, "The coach is unavailable, try again later"),
    ("odd", {"shape": "nul"}, "The coach is unavailable, try again later"),
])
def test_the_llm_failing_before_any_token_is_an_error_event(pages, coach, user, mode, options, detail):
    """The 200 is sent before the model is asked: its failure can only be told in the stream.
    Hint: the openai client builds a chunk's objects from any JSON without checking them: check
    that each piece is text Postgres can store, as lesson 18's ask() does for a whole answer."""
    coach.mode(mode, **options)
    assert chat_stream(pages, user) == [("error", {"detail": detail})]
    assert history(pages, user) == []


def test_a_pool_with_no_free_connection_when_the_answer_is_stored_is_an_error_event(client, coach, user):
    """A pool with no free connection when the answer is stored is an error event, not a cut stream.
    Hint: the pool gives up after its timeout with sqlalchemy.exc.TimeoutError, not an
    OperationalError: the database is as good as down, and the stream says so. Whatever else
    the stream does with the database after that meets the same full pool."""
    coach.mode("ok", token_delay=0.01)  # a second or so for the whole answer
    exhausted, answered = ExitStack(), threading.Event()
    # A question of this test's own: a stream an earlier test left may reach the coach now too,
    # and the pool must not fill before this one has its first token.
    question = f"{QUESTION} ({os.getpid()}-{time.monotonic_ns()})"

    def asked() -> bool:
        return any(body["messages"][-1]["content"] == question for body in coach.requests())

    def exhaust_once_the_coach_answers():
        # An app that never asks the coach (no stream yet) has answered: nothing to wait for.
        wait_for(lambda: answered.is_set() or asked(), "the coach starts its answer")
        if not answered.is_set():
            exhausted.enter_context(pool_exhausted())

    watcher = threading.Thread(target=exhaust_once_the_coach_answers)
    watcher.start()
    try:
        r = client.post("/api/chat/stream", json={"message": question}, headers=bearer(user["token"]))
    finally:
        answered.set()
        watcher.join()
        exhausted.close()
    assert r.status_code == 200, r.text
    assert list(events(r))[-1] == ("error", {"detail": "Database unavailable, try again later"}), r.text


def test_a_client_that_goes_away_stops_the_llm_call(pages, coach, user):
    """Nobody is reading any more: the app closes its stream to the LLM, which stops writing.
    Hint: AsyncOpenAI (a synchronous client blocks the event loop, and nothing can cancel it),
    and `async with` its stream, so that leaving the generator closes it."""
    coach.mode("ok", token_delay=0.5)  # a whole answer would take far longer than the wait below
    with open_stream(pages, user) as r:
        next(events(r))
    wait_for(lambda: coach.stats()["cancelled"] >= 1, "the coach sees its stream cancelled", seconds=10)
    assert coach.stats()["completed"] == 0
    assert history(pages, user) == []


def test_a_client_that_leaves_before_the_first_token_stops_the_llm_call(live_api, coach, user):
    """The coach is slow to start (5 s to its first token); the client leaves before it comes.
    Hint: wait for the first token inside the stream, where FastAPI cancels the generator
    when the client goes away; awaited before the response starts, nobody cancels it."""
    api = live_api(env={"OPENAI_TIMEOUT": "30"})  # 5 s to the first token is not "too slow" here
    coach.mode("ok", token_delay=5)
    with web.stream("POST", f"{api.url}/api/chat/stream", json={"message": QUESTION},
                    headers=bearer(user["token"]), timeout=3) as r:
        assert r.status_code == 200, r.read()
        wait_for(lambda: coach.stats()["started"] == 1, "the coach starts its answer")
    wait_for(lambda: coach.stats()["cancelled"] == 1, "the coach sees its stream cancelled", seconds=2)
    assert coach.stats() == {"started": 1, "completed": 0, "cancelled": 1}


def test_an_account_deleted_mid_stream_ends_it_with_an_error_event(pages, coach, user, db):
    coach.mode("pause", seconds=PAUSE_SECONDS)
    with open_stream(pages, user) as r:
        received = events(r)
        next(received)
        with db.cursor() as cur:
            cur.execute("DELETE FROM users WHERE id = %s", (user["id"],))
        coach.mode("ok")
        last = list(received)[-1]
    assert last == ("error", {"detail": "Invalid or expired token: log in again"})


def test_other_requests_are_answered_while_a_stream_runs(pages, coach, user):
    """Other requests are answered while a stream runs.

    While the coach waits GAP s between tokens, GET /api/time, sent five times, must come back
    in well under the gap (half of them in under half of it; held up, each takes about all of
    it, and a busy machine's own delays stay well below half): a synchronous client would
    hold the event loop until the next token, and every request with it.
    Hint: AsyncOpenAI, with `await` and `async for`: a synchronous OpenAI client's wait for the
    next token blocks the event loop, so every other request waits with it."""
    coach.mode("ok", token_delay=GAP)
    with open_stream(pages, user) as r:
        received = events(r)
        next(received)  # the first token: the coach writes the next in GAP s
        me = web.get(f"{pages.api}/api/me", headers=bearer(user["token"]), timeout=30)
        assert me.status_code == 200, me.text
        took = answer_times(f"{pages.api}/api/time", count=5, every=GAP / 3)
        after = next(received, None)
    assert after is not None and after[0] == "message", f"the stream was to go on meanwhile; it sent {after}"
    median = statistics.median(took)
    assert median < GAP / 2, (f"GET /api/time took {median:.2f} s (the middle of "
                              f"{', '.join(f'{t:.2f}' for t in took)}) while the coach waited {GAP} s "
                              "between tokens: the event loop waited with it")


def test_other_requests_are_answered_while_the_stream_waits_for_the_database(pages, coach, user, db, db_env):
    """Other requests are answered while the stream waits for the database.

    The test holds the users table, then the messages table, while a stream starts (its login
    check and its history wait for them), then the messages table while it stores the answer:
    GET /api/time meanwhile must come back at once, not when the test lets go after 2 s.
    Hint: the database's calls block: run them in a worker thread (`await run_in_threadpool(...)`,
    or a plain `def` dependency), never straight inside the async endpoint."""
    coach.mode("ok", token_delay=0.005)  # about half a second before the answer is stored
    got = []

    def chat():
        try:
            got.extend(chat_stream(pages, user))
        except Exception as error:  # shown by the asserts below, not lost in the thread
            got.append(("failed", " / ".join(str(error).splitlines()[:2])))

    def ended() -> str:
        return "" if stream.is_alive() else str(got[-1][1] if got and got[-1][0] == "failed" else got)

    stream = threading.Thread(target=chat)
    try:
        took = answer_times_while_a_chat_waits_for_the_database(
            db, db_env, f"{pages.api}/api/time", stream.start, ended)
    finally:
        if stream.ident is not None:
            stream.join(timeout=30)
    slow = {step: round(seconds, 1) for step, seconds in took.items() if seconds >= 1}
    assert slow == {}, f"seconds GET /api/time took while the stream waited for the database: {slow}"
    assert got[-1] == ("done", {}), got


def test_the_openapi_document_describes_the_stream_as_server_sent_events(app):
    """The OpenAPI document lists the stream's 200 and exactly the errors it answers before it starts.
    FastAPI writes the 200 of an EventSourceResponse generator itself."""
    operation = app.openapi()["paths"]["/api/chat/stream"]["post"]
    events_schema = operation["responses"]["200"]["content"]["text/event-stream"]["itemSchema"]
    assert {"data", "event"} <= set(events_schema["properties"])
    assert set(operation["responses"]) == {"200", "400", "401", "422", "503"}


def test_the_openapi_document_gives_the_streams_errors_as_json(app):
    """The OpenAPI document gives the stream's errors as JSON.

    They come before the stream starts, as {"detail": ...}: not text/event-stream (the route's
    media type, which FastAPI would use for a `model`)."""
    document = app.openapi()
    responses = document["paths"]["/api/chat/stream"]["post"]["responses"]
    media_types = {status: list(response["content"]) for status, response in responses.items()}
    assert media_types == {"200": ["text/event-stream"], "400": ["application/json"],
                           "401": ["application/json"], "422": ["application/json"],
                           "503": ["application/json"]}
    for status in ["400", "401", "503"]:
        schema = responses[status]["content"]["application/json"]["schema"]
        if "$ref" in schema:  # a model of the document's own, "#/components/schemas/<name>"
            schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        assert schema["properties"]["detail"]["type"] == "string", schema
        assert schema["required"] == ["detail"], schema


def test_the_stream_needs_a_login(pages, coach):
    r = web.post(f"{pages.api}/api/chat/stream", json={"message": QUESTION}, timeout=10)
    assert r.status_code == 401, r.text
    assert coach.requests() == []


@pytest.mark.parametrize("message", ["", "   ", "x" * 4001])
def test_a_message_that_is_not_1_to_4000_characters_is_422(pages, coach, user, message):
    """A message that is not 1 to 4000 characters is a 422 with one error for the one broken rule.
    Hint: a body checked by the stream's dependency is not taken by the endpoint too: FastAPI
    would check it twice, and list the error twice."""
    r = web.post(f"{pages.api}/api/chat/stream", json={"message": message},
                 headers=bearer(user["token"]), timeout=10)
    assert r.status_code == 422, r.text
    assert [error["loc"] for error in r.json()["detail"]] == [["body", "message"]], r.text


# --- the page ---------------------------------------------------------------------------------

def open_home(page, pages, user) -> None:
    log_in_page(page, pages, user, "home.html")
    page.wait_for_function("!document.querySelector('#ask button').disabled")


def test_the_answer_appears_on_the_page_piece_by_piece(pages, page, coach, user):
    """Hint: read response.body with getReader() and add each token as it arrives."""
    coach.mode("ok", token_delay=TOKEN_DELAY)
    open_home(page, pages, user)
    page.evaluate(WATCH_ANSWER)
    hostile = "<b>bold</b><img src=x onerror=\"window.pwned=1\"> yourself?"
    page.fill("#ask textarea", hostile)
    page.click("#ask button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#chat li').length === 2 "
                           "&& !document.querySelector('#ask button').disabled")
    [sent] = coach.requests()
    expected = coachs_answer(sent["messages"])
    assert page.locator("#chat li").all_text_contents() == [hostile, expected]
    growing = [text for text in dict.fromkeys(page.evaluate("window.shown")) if expected.startswith(text)]
    assert len(growing) > 10, growing  # many partial answers, each a beginning of the whole
    assert page.locator("#chat b, #chat img").count() == 0
    assert page.evaluate("window.pwned") is None


# The page tests below answer the page's stream themselves. They still take `coach`, reset: an
# earlier lesson's page sends its question to the coach (POST /api/chat), which a test before
# may have left slow, and a red check would wait for it.

def test_the_page_ignores_comments_such_as_keep_alive_pings(pages, page, coach, user):
    """The page skips the `: ping` comments that FastAPI sends during a quiet 15 s, and shows the answer.
    FastAPI sends one while nothing else is sent for 15 s (a slow model), so that no proxy closes
    a quiet connection. Hint: skip every block without a `data:` line (`: ping` is a comment, not
    a token): read a token only from a block's `data:` line."""
    body = (': ping\n\ndata: {"token": "Hi"}\n\n: ping\n\n'
            'data: {"token": " there"}\n\nevent: done\ndata: {}\n\n')

    def answer_with_pings(route):
        if route.request.method == "OPTIONS":  # the CORS preflight: the live API answers it
            route.continue_()
        else:
            route.fulfill(status=200, body=body, headers={"Content-Type": "text/event-stream",
                                                          "Access-Control-Allow-Origin": pages.url})

    page.route(f"{pages.api}/api/chat/stream", answer_with_pings)
    open_home(page, pages, user)
    page.fill("#ask textarea", QUESTION)
    page.click("#ask button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#chat li').length === 2 "
                           "&& !document.querySelector('#ask button').disabled")
    assert page.locator("#chat li").all_text_contents() == [QUESTION, "Hi there"]


# Run in the page once it is open: from then on, its POST to /api/chat/stream gets a 200 whose
# body is the given pieces of bytes, handed over one by one (20 ms apart), as the network may
# cut a stream anywhere (window.streamAsked says it came). The page's other requests go to the API
# as before.
STREAM_IN_PIECES = """pieces => {
  const realFetch = window.fetch;
  window.fetch = (url, options) => {
    if (!String(url).endsWith("/api/chat/stream")) {
      return realFetch(url, options);
    }
    window.streamAsked = true;
    const body = new ReadableStream({
      async start(controller) {
        for (const piece of pieces) {
          controller.enqueue(new Uint8Array(piece));
          await new Promise((wait) => setTimeout(wait, 20));
        }
        controller.close();
      },
    });
    return Promise.resolve(new Response(body, { headers: { "Content-Type": "text/event-stream" } }));
  };
}"""


NO_STREAM = "the page did not POST its question to /api/chat/stream"


def cut(body: bytes, *at: int) -> list[list[int]]:
    """BODY cut at the byte offsets AT: the pieces, each as a list of bytes (for the page)."""
    ends = [0, *at, len(body)]
    return [list(body[start:end]) for start, end in itertools.pairwise(ends)]


def test_the_page_copes_with_events_split_across_network_pieces(pages, page, coach, user):
    """The page copes with events split across network pieces.

    The test hands the page a stream cut in the middle of a `data:` line, between the two
    newlines that end an event, and inside a character of two and one of four bytes (UTF-8).
    Hint: keep what comes after the last blank line until the next piece completes it, and
    decode with TextDecoderStream (or decoder.decode(value, {stream: true})), which keeps half a
    character for the next piece."""
    body = ('data: {"token": "Hi"}\n\n'
            'data: {"token": " café"}\n\n'
            'data: {"token": " 🙂"}\n\n'
            'event: done\ndata: {}\n\n').encode()
    middle_of_data = body.index(b'"token"') + 4
    between_newlines = body.index(b"\n\n") + 1
    inside_e_acute = body.index("é".encode()) + 1
    inside_smiley = body.index("🙂".encode()) + 2
    open_home(page, pages, user)
    pieces = cut(body, middle_of_data, between_newlines, inside_e_acute, inside_smiley)
    page.evaluate(STREAM_IN_PIECES, pieces)
    page.fill("#ask textarea", QUESTION)
    page.click("#ask button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#chat li').length === 2 "
                           "&& !document.querySelector('#ask button').disabled")
    assert page.evaluate("window.streamAsked === true"), NO_STREAM
    assert page.locator("#chat li").all_text_contents() == [QUESTION, "Hi café 🙂"]


def test_an_error_event_mid_answer_is_shown_as_the_coach_failing(pages, page, coach, user):
    """An error event mid answer is shown as the coach failing: `The coach could not answer: <detail>`.

    After a token, the stream the test hands the page ends with `event: error`; the page says so
    in #message (docs/api.md, the pages); what it does with the half answer is up to you."""
    detail = "The coach is unavailable, try again later"
    body = f'data: {{"token": "Half an"}}\n\nevent: error\ndata: {{"detail": "{detail}"}}\n\n'.encode()
    open_home(page, pages, user)
    page.evaluate(STREAM_IN_PIECES, cut(body))
    page.fill("#ask textarea", QUESTION)
    page.click("#ask button[type=submit]")
    page.wait_for_function("window.streamAsked === true || (document.querySelectorAll('#chat li').length >= 2"
                           " && !document.querySelector('#ask button').disabled)")
    assert page.evaluate("window.streamAsked === true"), NO_STREAM
    try:
        page.wait_for_function("document.getElementById('message').textContent.trim() !== ''", timeout=3000)
    except PlaywrightTimeout:
        pytest.fail("#message stayed empty for 3 s after the stream's error event")
    assert page.text_content("#message") == f"The coach could not answer: {detail}"


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
