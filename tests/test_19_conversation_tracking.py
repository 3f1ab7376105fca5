"""Lesson 19: messages stored per user (Message, ForeignKey, relationship both ways); the coach
gets the latest 20 with each question; GET /api/chat/history a page at a time (keyset paging:
limit, before); the page shows the conversation and loads earlier messages.

The LLM is the offline coach (the `coach` fixture): it records what it was sent, and its answer
quotes the user's previous message, so memory shows in the reply.
"""

import os
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from helpers import (
    SIGNUP_FORM,
    alembic,
    bearer,
    earlier_messages_load_on_the_page,
    history_page,
    history_read_in_pages,
    insert_messages,
    log_in_page,
    open_page,
    shown_once_loaded,
    user_with_token,
    wait_until_the_coach_is_asked,
)
from test_17_crud_logging_depends import (  # noqa: F401  (lesson 17's test: the same PUT /api/me)
    test_a_change_to_an_account_deleted_meanwhile_is_401_not_500,
)
from test_18_ai_chat_openai import (  # noqa: F401  (lesson 18's test: the same /api/chat)
    test_no_database_connection_is_held_while_the_llm_thinks,
)
from webclient import web


@pytest.fixture(scope="session", autouse=True)
def llm_settings(coach_server):
    """Point the app at the offline coach before main.py is imported."""
    os.environ.update(coach_server.env, OPENAI_TIMEOUT="5")


@pytest.fixture
def user(app, db, coach) -> dict:
    """A fresh user; the coach is reset for the test (normal answers, nothing recorded)."""
    return user_with_token(db)


def chat(client, user, message):
    r = client.post("/api/chat", headers=bearer(user["token"]), json={"message": message})
    assert r.status_code == 200, r.text
    return r.json()["reply"]


def stored(db, user_id) -> list[tuple]:
    """(role, content) of a user's messages as the table holds them, in id order."""
    with db.cursor() as cur:
        cur.execute("SELECT role, content FROM messages WHERE user_id = %s ORDER BY id", (user_id,))
        return cur.fetchall()


# --- memory -----------------------------------------------------------------------------------

def test_the_question_and_the_answer_are_stored(client, db, user):
    reply = chat(client, user, "My name is Ada.")
    assert stored(db, user["id"]) == [("user", "My name is Ada."), ("assistant", reply)]


@pytest.mark.parametrize("shape", ["number", "nul"], ids=["a number, not text", "text with a NUL character"])
def test_an_answer_that_is_no_text_is_a_502_and_nothing_is_stored(client, coach, db, user, shape):
    """An LLM answer that is no text we can store is a 502, and nothing is stored (no 500 half-way).
    Hint: lesson 18's ask() checks the content before anything is stored: Postgres refuses a NUL
    character, and a number is no text."""
    coach.mode("odd", shape=shape)
    r = client.post("/api/chat", headers=bearer(user["token"]), json={"message": "My name is Ada."})
    assert r.status_code == 502, r.text
    assert r.json() == {"detail": "The coach is unavailable, try again later"}
    assert stored(db, user["id"]) == []


def test_the_second_question_is_sent_after_the_first_exchange(client, coach, user):
    first = chat(client, user, "My name is Ada.")
    second = chat(client, user, "What is my name?")
    sent = coach.requests()[-1]["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "My name is Ada."), ("assistant", first), ("user", "What is my name?")]
    assert sent[0]["role"] == "system", sent[0]
    assert 'Before it you said: "My name is Ada."' in second, second


def test_only_the_latest_20_messages_are_sent_oldest_first(client, coach, db, user):
    with db.cursor() as cur:
        for n in range(30):
            cur.execute("INSERT INTO messages (user_id, role, content) VALUES (%s, %s, %s)",
                        (user["id"], "user" if n % 2 == 0 else "assistant", f"message {n}"))
    chat(client, user, "And now?")
    sent = coach.requests()[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", *["user", "assistant"] * 10, "user"]
    assert [m["content"] for m in sent[1:]] == [f"message {n}" for n in range(10, 30)] + ["And now?"]


def test_a_question_the_coach_did_not_answer_is_not_stored(client, coach, db, user):
    coach.mode("error")
    r = client.post("/api/chat", headers=bearer(user["token"]), json={"message": "Hello?"})
    assert r.status_code == 502, r.text
    assert stored(db, user["id"]) == []


# --- the history ------------------------------------------------------------------------------

def test_history_lists_role_content_and_time_oldest_first(client, user):
    started = datetime.now(UTC)
    replies = [chat(client, user, "First question"), chat(client, user, "Second question")]
    r = client.get("/api/chat/history", headers=bearer(user["token"]))
    assert r.status_code == 200, r.text
    history = r.json()
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", "First question"), ("assistant", replies[0]),
        ("user", "Second question"), ("assistant", replies[1])]
    times = [datetime.fromisoformat(m["created_at"]) for m in history]
    naive = [m["created_at"] for m, time in zip(history, times, strict=True) if time.tzinfo is None]
    assert not naive, f"created_at without a time zone: {naive[0]} (DateTime(timezone=True) gives one)"
    assert times == sorted(times) and times[0] >= started - timedelta(seconds=5), times
    assert all(set(m) == {"id", "role", "content", "created_at"} for m in history), history
    assert [m["id"] for m in history] == sorted(m["id"] for m in history), history


def test_history_is_the_latest_50_messages_by_default(client, db, user):
    ids = insert_messages(db, user["id"], 60)
    page = history_page(client, user)
    assert [m["id"] for m in page] == ids[10:]
    assert [m["content"] for m in page] == [f"message {n}" for n in range(10, 60)]


def test_before_gives_the_limit_messages_just_before_that_id(client, db, user):
    ids = insert_messages(db, user["id"], 10)
    assert [m["id"] for m in history_page(client, user, f"?limit=3&before={ids[5]}")] == ids[2:5]


def test_250_messages_read_in_pages_of_100_none_twice_none_lost(client, db, user):
    history_read_in_pages(client, db, user)


@pytest.mark.parametrize("query", ["?limit=101", "?limit=0", "?limit=-5", "?limit=ten", "?before=0"])
def test_a_limit_over_100_or_a_page_that_cannot_be_is_422(client, user, query):
    r = client.get(f"/api/chat/history{query}", headers=bearer(user["token"]))
    assert r.status_code == 422, r.text


def test_the_openapi_document_states_the_page_limits(client):
    operation = client.get("/openapi.json").json()["paths"]["/api/chat/history"]["get"]
    schemas = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}
    limit = schemas["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 100, 50), limit
    assert schemas["before"]["anyOf"][0]["minimum"] == 1, schemas["before"]


def test_before_never_reaches_another_users_messages(client, db, user):
    other = user_with_token(db)
    insert_messages(db, other["id"], 5)
    assert history_page(client, user, "?before=2147483647") == []


def test_history_starts_empty(client, user):
    r = client.get("/api/chat/history", headers=bearer(user["token"]))
    assert r.status_code == 200, r.text
    assert r.json() == []


def test_history_needs_a_login(client):
    r = client.get("/api/chat/history")
    assert r.status_code == 401, r.text


def test_users_never_see_each_others_history(client, coach, db, user):
    chat(client, user, "Ada's secret plan")
    other = user_with_token(db)
    r = client.get("/api/chat/history", headers=bearer(other["token"]))
    assert r.json() == [], r.text
    chat(client, other, "Hello")
    sent = coach.requests()[-1]["messages"]
    assert [m["content"] for m in sent[1:]] == ["Hello"], sent


# --- deleting a user --------------------------------------------------------------------------

def test_deleting_an_account_after_chatting_deletes_its_messages(client, db, user):
    chat(client, user, "Hello")
    r = client.delete("/api/me", headers=bearer(user["token"]))
    assert r.status_code == 204, r.text
    assert stored(db, user["id"]) == []


def test_the_database_itself_deletes_a_deleted_users_messages(client, db, user):
    """ON DELETE CASCADE: even a DELETE that bypasses the app leaves no orphaned messages."""
    chat(client, user, "Hello")
    with db.cursor() as cur:
        cur.execute("DELETE FROM users WHERE id = %s", (user["id"],))
    assert stored(db, user["id"]) == []


def test_an_account_deleted_while_the_coach_thinks_gets_a_401_not_a_500(client, coach, db, user):
    """The answer has no user to belong to any more: the foreign key refuses it, and the
    request ends like any other with a token whose user is gone.
    Hint: a rollback expires what the session loaded; keep what you need (the user's id) before it."""
    coach.mode("slow", seconds=0.5)
    answers = []

    def ask():
        try:
            answers.append(client.post("/api/chat", headers=bearer(user["token"]), json={"message": "Hi"}))
        except Exception as error:  # a server error, raised by the TestClient
            answers.append(error)

    waiting = threading.Thread(target=ask)
    waiting.start()
    wait_until_the_coach_is_asked(coach, waiting)
    with db.cursor() as cur:
        cur.execute("DELETE FROM users WHERE id = %s", (user["id"],))
    waiting.join()
    [r] = answers
    assert not isinstance(r, Exception), repr(r)
    assert r.status_code == 401, r.text


# --- the models and the migration -------------------------------------------------------------

def test_the_relationship_works_from_both_sides(app):
    """back_populates on both sides: setting either end updates the other, before any flush."""
    import models

    ada, bo = models.User(name="Ada"), models.User(name="Bo")
    appended, assigned = models.Message(role="user", content="a"), models.Message(role="user", content="b")
    ada.messages.append(appended)
    assigned.user = bo
    assert appended.user is ada
    assert bo.messages == [assigned]


def test_the_models_and_the_migrations_agree(app, lesson):
    assert "No new upgrade operations detected" in alembic(lesson.path, "check")


def messages_table(db):
    with db.cursor() as cur:
        cur.execute("SELECT to_regclass('messages')::text")
        return cur.fetchone()[0]


def test_an_index_keeps_each_users_messages_in_id_order(app, db):
    """What keyset paging needs to read one page and nothing else: an index on (user_id, id)."""
    with db.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'messages'")
        definitions = [row[0] for row in cur.fetchall()]
    assert any(d.endswith("(user_id, id)") for d in definitions), definitions


def test_the_last_migration_creates_the_messages_table_and_its_downgrade_drops_it(app, lesson, db):
    assert messages_table(db) == "messages"
    alembic(lesson.path, "downgrade", "-1")
    assert messages_table(db) is None
    alembic(lesson.path, "upgrade", "head")
    assert messages_table(db) == "messages"


# --- the page ---------------------------------------------------------------------------------

def test_the_page_shows_the_stored_conversation_as_text(pages, page, client, user):
    """Opening the home page shows the conversation so far, oldest first, as text: markup in
    a message is shown, never run. Hint: GET /api/chat/history on open, textContent."""
    hostile = "<b>bold</b><img src=x onerror=\"window.pwned=1\"><script>window.pwned=1</script> ok?"
    reply = chat(client, user, hostile)
    log_in_page(page, pages, user, "home.html", "#chat")
    shown_once_loaded(page, "document.querySelectorAll('#chat li').length === 2", "the stored exchange")
    assert page.locator("#chat li").all_text_contents() == [hostile, reply]
    assert page.locator("#chat b, #chat img, #chat script").count() == 0
    assert page.evaluate("window.pwned") is None


def test_the_page_loads_earlier_messages_a_page_at_a_time(pages, page, db, user):
    """120 stored messages: the page shows the latest 50 and a "load earlier" button; each click
    puts the 50 before them above, as text, until the first message is shown and the button goes.
    Hint: GET /api/chat/history?before=<the oldest id shown>, prepend, hide on a short page."""
    earlier_messages_load_on_the_page(pages, page, db, user)


def test_sign_up_log_in_chat_twice_and_reload_in_the_browser(pages, page, coach):
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    open_page(page, f"{pages.url}/signup.html", *SIGNUP_FORM)
    page.fill("input[name=name]", "Ada")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "secret123")
    page.click("button[type=submit]")
    page.wait_for_url("**/login.html?email=*")  # signed up: the login page, email filled in
    page.fill("input[name=password]", "secret123")
    page.click("button[type=submit]")
    page.wait_for_url("**/home.html")
    answered = "!document.querySelector('#chat li:last-child').textContent.startsWith('…')"
    for n, question in enumerate(["I interview for a Python job.", "What should I practise?"], 1):
        page.wait_for_function("!document.querySelector('#ask button').disabled")
        page.fill("#ask textarea", question)
        page.click("#ask button[type=submit]")
        page.wait_for_function(f"document.querySelectorAll('#chat li.assistant').length === {n} "
                               f"&& {answered}")
    page.reload()
    shown_once_loaded(page, "document.querySelectorAll('#chat li').length === 4", "the two stored exchanges")
    texts = page.locator("#chat li").all_text_contents()
    assert texts[0] == "I interview for a Python job." and texts[2] == "What should I practise?", texts
    assert 'Before it you said: "I interview for a Python job."' in texts[3], texts[3]
    assert web.get(f"{coach.root}/_coach/requests").json()[-1]["messages"][1]["content"] == texts[0]
