"""The chat streamed: POST /api/chat/stream answers with Server-Sent Events, token by token."""

import pytest

from app.deps import get_llm
from app.main import app
from helpers import events


def test_stream_sends_each_token_then_done(client, auth, llm):
    r = client.post("/api/chat/stream", headers=auth, json={"message": "How do I start?"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert events(r.text) == [*(("message", {"token": token}) for token in llm.tokens), ("done", {})]


def test_stream_stores_question_and_answer(client, auth, llm):
    client.post("/api/chat/stream", headers=auth, json={"message": "How do I start?"})
    history = client.get("/api/chat/history", headers=auth).json()
    assert [(m["role"], m["content"]) for m in history] == [("user", "How do I start?"),
                                                            ("assistant", llm.reply)]


@pytest.mark.parametrize(("coach", "detail"), [
    ("slow_llm", "The coach took too long to answer, try again"),
    ("down_llm", "The coach is unavailable, try again later"),
    ("page_llm", "The coach is unavailable, try again later"),
])
def test_stream_tells_a_failing_llm_as_an_error_event(client, auth, request, coach, detail):
    failing = request.getfixturevalue(coach)  # the fixture of that name: slow_llm, down_llm, ...
    app.dependency_overrides[get_llm] = lambda: failing
    r = client.post("/api/chat/stream", headers=auth, json={"message": "Anyone there?"})
    assert r.status_code == 200, r.text  # sent before the LLM was asked: the error is an event
    assert events(r.text) == [("error", {"detail": detail})]
