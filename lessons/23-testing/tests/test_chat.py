"""The chat over HTTP: POST /api/chat, and the conversation it keeps (GET /api/chat/history)."""

from app.config import Settings
from app.deps import get_llm
from app.llm import LLM
from app.main import app
from helpers import TEST_SECRET, bearer, make_token


def ask(client, auth, message: str):
    return client.post("/api/chat", headers=auth, json={"message": message})


def test_chat_answers_with_the_llms_reply(client, auth, llm):
    r = ask(client, auth, "How do I start?")
    assert r.status_code == 200, r.text
    assert r.json() == {"reply": llm.reply}


def test_chat_sends_the_llm_the_conversation_so_far(client, auth, llm):
    ask(client, auth, "First question")
    ask(client, auth, "Second question")
    system, *conversation = llm.asked[-1]
    assert system["role"] == "system"
    assert conversation == [{"role": "user", "content": "First question"},
                            {"role": "assistant", "content": llm.reply},
                            {"role": "user", "content": "Second question"}]


def test_chat_with_an_empty_message_is_422(client, auth, llm):
    r = ask(client, auth, "   ")
    assert r.status_code == 422, r.text
    assert llm.asked == []  # the paid LLM was never asked


def test_chat_is_502_without_an_llm_key(client, auth):
    app.dependency_overrides[get_llm] = lambda: LLM(Settings(JWT_SECRET=TEST_SECRET, OPENAI_API_KEY=None))
    r = ask(client, auth, "Anyone there?")
    assert r.status_code == 502, r.text
    assert r.json() == {"detail": "No LLM configured: set OPENAI_API_KEY in .env"}


def test_chat_is_502_when_the_llm_is_down(client, auth, down_llm):
    app.dependency_overrides[get_llm] = lambda: down_llm
    r = ask(client, auth, "Anyone there?")
    assert r.status_code == 502, r.text
    assert r.json() == {"detail": "The coach is unavailable, try again later"}


def test_chat_is_502_when_the_llm_answers_with_a_page(client, auth, page_llm):
    app.dependency_overrides[get_llm] = lambda: page_llm
    r = ask(client, auth, "Anyone there?")
    assert r.status_code == 502, r.text
    assert r.json() == {"detail": "The coach is unavailable, try again later"}


def test_chat_is_504_when_the_llm_is_too_slow(client, auth, slow_llm):
    app.dependency_overrides[get_llm] = lambda: slow_llm
    r = ask(client, auth, "Anyone there?")
    assert r.status_code == 504, r.text
    assert r.json() == {"detail": "The coach took too long to answer, try again"}
    # A question without an answer is not part of the conversation.
    assert client.get("/api/chat/history", headers=auth).json() == []


def test_history_is_the_conversation_oldest_first(client, auth, llm):
    ask(client, auth, "First question")
    ask(client, auth, "Second question")
    r = client.get("/api/chat/history", headers=auth)
    assert r.status_code == 200, r.text
    assert [(m["role"], m["content"]) for m in r.json()] == [
        ("user", "First question"), ("assistant", llm.reply),
        ("user", "Second question"), ("assistant", llm.reply)]


def test_history_holds_only_my_own_messages(client, auth, make_user, settings):
    other = bearer(make_token(make_user("Bob").id, settings))
    ask(client, other, "A question of Bob's")
    r = client.get("/api/chat/history", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == []


def test_history_comes_in_pages_of_limit_messages_before_an_id(client, auth):
    for number in range(3):
        ask(client, auth, f"Question {number}")  # 6 messages: question and answer each time
    latest = client.get("/api/chat/history?limit=4", headers=auth).json()
    assert [m["content"] for m in latest if m["role"] == "user"] == ["Question 1", "Question 2"]
    earlier = client.get(f"/api/chat/history?limit=4&before={latest[0]['id']}", headers=auth).json()
    assert [m["content"] for m in earlier if m["role"] == "user"] == ["Question 0"]
    assert len(earlier) == 2


def test_history_with_a_limit_over_100_is_422(client, auth):
    r = client.get("/api/chat/history?limit=101", headers=auth)
    assert r.status_code == 422, r.text
