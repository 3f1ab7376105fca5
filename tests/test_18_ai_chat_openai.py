"""Lesson 18: POST /api/chat asks an LLM through the official openai client; a chat box on home.html.

The LLM here is the offline coach (shared/coach.py, the `coach` fixture): it records what it
received and can be told to fail, to hang or to cut the connection. Nothing leaves the machine.
"""

import logging
import os
import threading
import uuid

import pytest

from helpers import CHAT_BOX, bearer, log_in_page, text_when, user_with_token, wait_until_the_coach_is_asked
from shared.coach import answer as coachs_answer
from test_17_crud_logging_depends import (  # noqa: F401  (lesson 17's test: the same PUT /api/me)
    test_a_change_to_an_account_deleted_meanwhile_is_401_not_500,
)
from webclient import web

QUESTION = "How do I answer 'Tell me about yourself'?"
MODEL = "coach-for-tests"  # the app must use whatever model OPENAI_MODEL names
ASKED_AGAIN = "the LLM was asked more than once: the client tries once (max_retries=0)"


@pytest.fixture(scope="session", autouse=True)
def llm_settings(coach_server):
    """Point the app at the offline coach before main.py is imported. A short timeout, so
    that "too slow" takes one second here, not thirty."""
    os.environ.update(coach_server.env, OPENAI_MODEL=MODEL, OPENAI_TIMEOUT="1")


@pytest.fixture
def user(app, db, coach) -> dict:
    """A fresh user (straight into the table) and a token for them: {"id", "token"}.
    The coach is reset for the test: normal answers, nothing recorded."""
    return user_with_token(db)


def chat(client, user, message=QUESTION):
    return client.post("/api/chat", headers=bearer(user["token"]), json={"message": message})


# --- the reply and what the LLM was sent ----------------------------------------------------

def test_the_reply_is_the_llms_answer(client, coach, user):
    """The reply is the LLM's answer"""
    r = chat(client, user)
    assert r.status_code == 200, r.text
    [sent] = coach.requests()
    assert r.json() == {"reply": coachs_answer(sent["messages"])}


def test_the_llm_gets_a_system_prompt_then_the_users_message(client, coach, user):
    """The LLM gets a system prompt, then the user's message"""
    r = chat(client, user)
    assert r.status_code == 200, r.text
    [sent] = coach.requests()
    assert [m["role"] for m in sent["messages"]] == ["system", "user"], sent
    assert "interview" in sent["messages"][0]["content"].lower(), sent["messages"][0]
    assert sent["messages"][1]["content"] == QUESTION
    assert sent["model"] == MODEL, sent


def test_each_question_is_a_new_conversation(client, coach, user):
    """No memory yet (that is lesson 19): the second question is sent on its own."""
    chat(client, user, "My name is Ada.")
    chat(client, user, "What is my name?")
    second = coach.requests()[1]["messages"]
    assert [m["content"] for m in second[1:]] == ["What is my name?"], second


# --- who may chat, and what ------------------------------------------------------------------

def test_chat_needs_a_login(client, coach):
    r = client.post("/api/chat", json={"message": QUESTION})
    assert r.status_code == 401, r.text
    assert coach.requests() == []


@pytest.mark.parametrize("message", ["", "   \n ", "x" * 4001, "a\x00b", 42, None],
                         ids=["empty", "only spaces", "4001 characters", "NUL", "number", "null"])
def test_a_message_that_is_not_1_to_4000_characters_of_text_is_422(client, coach, user, message):
    r = chat(client, user, message)
    assert r.status_code == 422, r.text
    assert coach.requests() == []


def test_a_message_of_4000_characters_is_fine(client, user):
    r = chat(client, user, "x" * 4000)
    assert r.status_code == 200, r.text


# --- when the LLM fails -----------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "options"), [
    pytest.param("error", {}, id="answers 500"),
    pytest.param("drop", {}, id="cuts the connection"),
    pytest.param("junk", {}, id="answers a page, not JSON"),
    pytest.param("odd", {"shape": "choices"}, id="answers choices that are not a list"),
    pytest.param("odd", {"shape": "number"}, id="answers a number, not text"),
    pytest.param("odd", {"shape": "nul"}, id="answers text with a NUL character"),
    pytest.param("odd", {"shape": "broken"}, id="answers JSON cut short"),
])
def test_the_llm_failing_is_a_502_with_a_short_detail(client, coach, user, mode, options):
    """The LLM failing is a 502 with a short detail.

    An error answer, a connection cut, or a 200 that is no answer: a page from something in
    between, or JSON whose inside is not an answer's. Hint: the openai client builds its objects
    from any JSON without checking them (for a page it hands back its text, not a
    ChatCompletion; a body that is not JSON raises a ValueError): check that the content is text
    that Postgres can store (no NUL character)."""
    coach.mode(mode, **options)
    r = chat(client, user)
    assert r.status_code == 502, r.text
    assert r.json() == {"detail": "The coach is unavailable, try again later"}
    assert len(coach.requests()) == 1, ASKED_AGAIN


def test_the_llm_slower_than_openai_timeout_is_a_504(client, coach, user):
    """The LLM slower than OPENAI_TIMEOUT is a 504.
    The tests set OPENAI_TIMEOUT to 1 s before the app starts."""
    coach.mode("slow")
    r = chat(client, user)
    assert r.status_code == 504, r.text
    assert r.json() == {"detail": "The coach took too long to answer, try again"}
    assert len(coach.requests()) == 1, ASKED_AGAIN


def test_no_database_connection_is_held_while_the_llm_thinks(client, coach, db, user):
    """While the coach is thinking, the request's session has given its connection back: no
    connection of the app sits in an open transaction. Hint: get_current_user ends its read
    (db.commit(), lesson 17); any other read before the call needs db.close() after it."""
    coach.mode("slow", seconds=0.5)
    waiting = threading.Thread(target=chat, args=(client, user))  # answers 200 or 504: not the point
    waiting.start()
    try:
        wait_until_the_coach_is_asked(coach, waiting)
        with db.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND state = 'idle in transaction'")
            assert cur.fetchone() == (0,)
    finally:
        waiting.join()


def test_no_llm_listening_is_a_502(live_api, closed_port, user):
    api = live_api(env={"OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port}/v1"})
    r = web.post(f"{api.url}/api/chat", json={"message": QUESTION}, headers=bearer(user["token"]),
                 timeout=10)
    assert r.status_code == 502, r.text
    assert "Traceback" not in r.text


def test_the_log_holds_neither_the_message_nor_the_key(client, coach, user, caplog):
    caplog.set_level(logging.INFO)
    secret_question = f"my secret question {uuid.uuid4().hex}"
    assert chat(client, user, secret_question).status_code == 200
    coach.mode("error")
    assert chat(client, user, secret_question).status_code == 502
    assert caplog.records, "the app logs its chats"
    assert secret_question not in caplog.text and os.environ["OPENAI_API_KEY"] not in caplog.text


# --- the chat box -----------------------------------------------------------------------------

def test_the_chat_box_shows_the_question_and_the_answer_as_text(pages, page, coach, user):
    """What the user types and what the coach answers are shown as text: markup in them is
    never turned into HTML, and scripts in them never run.
    Hint: set textContent, never innerHTML."""
    hostile = "<b>bold</b><img src=x onerror=\"window.pwned=1\"><script>window.pwned=1</script> ok?"
    log_in_page(page, pages, user, "home.html", *CHAT_BOX)
    page.fill("#ask textarea", hostile)
    page.click("#ask button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#chat li').length === 2 "
                           "&& !document.querySelector('#chat li:last-child').textContent.startsWith('…')")
    question, answer = page.locator("#chat li").all_text_contents()
    assert question == hostile
    assert answer.startswith(f'You wrote: "{hostile}"'), answer
    assert "\n\n" in answer, "the answer keeps its blank lines"
    assert page.locator("#chat b, #chat img, #chat script").count() == 0
    assert page.evaluate("window.pwned") is None


def test_the_chat_box_says_when_the_coach_fails(pages, page, coach, user):
    log_in_page(page, pages, user, "home.html", *CHAT_BOX)
    coach.mode("error")
    page.fill("#ask textarea", QUESTION)
    page.click("#ask button[type=submit]")
    expected = "The coach could not answer: The coach is unavailable, try again later"
    # Whatever #message says while the coach thinks, the outcome is the coach's failure.
    text = text_when(page, "#message", lambda text: text.startswith("The coach could not answer"),
                     f"#message says {expected!r}")
    assert text == expected, text
