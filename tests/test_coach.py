"""The offline coach (shared/coach.py) speaks OpenAI's chat API, as the official client reads it.

Lessons 18-21 and the streaming bench rely on it: these tests pin what they rely on.
"""

import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2
import openai
import pytest
from openai import OpenAI

from webclient import web

CONVERSATION = [
    {"role": "system", "content": "You are a patient interview coach."},
    {"role": "user", "content": "My name is Ada and I interview for a Python job."},
    {"role": "assistant", "content": "Nice to meet you, Ada."},
    {"role": "user", "content": "What should I practise first?"},
]


@pytest.fixture
def llm(coach):
    with OpenAI(api_key="test", base_url=coach.url, max_retries=0, timeout=5) as client:
        yield client


def ask(llm, messages, **options):
    return llm.chat.completions.create(model="gpt-4o-mini", messages=messages, **options)


def streamed_text(stream) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def test_the_official_client_gets_a_completion(llm):
    completion = ask(llm, CONVERSATION)
    assert completion.object == "chat.completion", completion
    assert completion.model == "gpt-4o-mini", completion.model
    assert completion.choices[0].message.role == "assistant", completion
    assert completion.choices[0].finish_reason == "stop", completion
    assert completion.choices[0].message.content.startswith('You wrote: "What should I practise first?"')


def test_a_stream_gives_the_same_answer_token_by_token(llm):
    whole = ask(llm, CONVERSATION).choices[0].message.content
    chunks = list(ask(llm, CONVERSATION, stream=True))
    texts = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert "".join(texts) == whole
    assert len(texts) > 20, texts
    assert chunks[-1].choices[0].finish_reason == "stop", chunks[-1]
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_answers_keep_newlines_and_blank_lines(llm):
    text = streamed_text(ask(llm, CONVERSATION, stream=True))
    assert "\n\n" in text and "\n1. " in text, text


def test_the_answer_shows_the_conversation_it_was_sent(llm):
    first = ask(llm, CONVERSATION[:2]).choices[0].message.content
    second = ask(llm, CONVERSATION).choices[0].message.content
    assert "This is your first message" in first, first
    assert "This is message 2 from you" in second, second
    assert 'Before it you said: "My name is Ada and I interview for a Python job."' in second, second


def test_the_same_conversation_gets_the_same_answer(llm):
    first, again = ask(llm, CONVERSATION), ask(llm, CONVERSATION)
    assert first.choices[0].message.content == again.choices[0].message.content


def test_usage_comes_last_when_asked_for(llm):
    chunks = list(ask(llm, CONVERSATION, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 20, chunks[-1]


def test_the_wire_format_of_a_stream(coach):
    body = {"model": "m", "stream": True, "messages": CONVERSATION}
    r = web.post(f"{coach.url}/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream"), r.headers
    events = r.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""], events[-3:]
    assert all(e.startswith("data: {") for e in events[:-2]), events
    assert json.loads(events[-3][6:])["choices"][0]["finish_reason"] == "stop"


def test_it_records_what_it_received_and_forgets_on_reset(llm, coach):
    ask(llm, CONVERSATION)
    ask(llm, CONVERSATION[:2], stream=True).close()
    received = coach.requests()
    assert [r["messages"] for r in received] == [CONVERSATION, CONVERSATION[:2]]
    assert [r.get("stream", False) for r in received] == [False, True]
    coach.reset()
    assert coach.requests() == []


def test_models_lists_the_coach(llm):
    assert [m.id for m in llm.models.list()] == ["coach"]


def test_a_request_without_messages_is_a_400(llm):
    with pytest.raises(openai.BadRequestError):
        ask(llm, [])


def test_error_mode_is_a_500(llm, coach):
    coach.mode("error")
    with pytest.raises(openai.InternalServerError):
        ask(llm, CONVERSATION)
    with pytest.raises(openai.InternalServerError):
        ask(llm, CONVERSATION, stream=True)


def test_error_mode_after_some_tokens_fails_mid_stream(llm, coach):
    coach.mode("error", after=3)
    texts = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in ask(llm, CONVERSATION, stream=True):
            texts.append(chunk.choices[0].delta.content)
    assert len([t for t in texts if t]) == 3, texts


def test_drop_mode_cuts_the_connection(llm, coach):
    coach.mode("drop")
    with pytest.raises(openai.APIConnectionError):
        ask(llm, CONVERSATION)
    with pytest.raises(openai.APIConnectionError):
        streamed_text(ask(llm, CONVERSATION, stream=True))


def test_cut_mode_ends_a_stream_cleanly_before_the_model_says_it_is_done(llm, coach):
    """The openai client raises nothing; the stream just has no chunk with a finish_reason."""
    coach.mode("cut", after=3)
    chunks = list(ask(llm, CONVERSATION, stream=True))
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 3, chunks
    assert [c for c in chunks if c.choices and c.choices[0].finish_reason] == [], chunks
    with pytest.raises(openai.APIConnectionError):  # a plain answer: cut as drop cuts it
        ask(llm, CONVERSATION)


def test_junk_mode_answers_what_is_not_a_chat_completion(llm, coach):
    """A page where the answer should be: the client hands back its text for a plain answer,
    and a stream's line that is not JSON raises a ValueError (after "after" tokens)."""
    coach.mode("junk")
    assert ask(llm, CONVERSATION).startswith("<html>")
    with pytest.raises(ValueError):
        streamed_text(ask(llm, CONVERSATION, stream=True))
    coach.mode("junk", after=3)
    texts = []
    with pytest.raises(ValueError):
        for chunk in ask(llm, CONVERSATION, stream=True):
            texts.append(chunk.choices[0].delta.content)
    assert len([t for t in texts if t]) == 3, texts


def test_odd_mode_answers_json_that_the_client_takes_but_is_no_answer(llm, coach):
    """JSON shaped like an answer outside only: the openai client builds its objects from it
    without checking them, so what is inside is whatever was sent."""
    coach.mode("odd")  # shape "choices": not a list
    assert llm.chat.completions.create(model="coach", messages=CONVERSATION).choices == "not a list"
    coach.mode("odd", shape="number")
    assert ask(llm, CONVERSATION).choices[0].message.content == 42
    chunks = list(ask(llm, CONVERSATION, stream=True))
    assert [c.choices[0].delta.content for c in chunks if c.choices] == ["", 42], chunks
    coach.mode("odd", shape="broken")
    with pytest.raises(ValueError):
        ask(llm, CONVERSATION)
    coach.mode("odd", shape="nul", after=3)
    pieces = [c.choices[0].delta.content for c in ask(llm, CONVERSATION, stream=True) if c.choices]
    assert len(pieces) == 5 and pieces[-1] == "half\x00way", pieces  # the first, 3 tokens, the odd one


def test_slow_mode_outlasts_the_clients_timeout(coach):
    coach.mode("slow")
    with OpenAI(api_key="test", base_url=coach.url, max_retries=0, timeout=0.3) as impatient, \
            pytest.raises(openai.APITimeoutError):
        ask(impatient, CONVERSATION)


def test_a_mode_change_ends_the_waits_of_slow_mode(coach, llm):
    coach.mode("slow", seconds=60)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(ask, llm, CONVERSATION)
        while not coach.requests():
            time.sleep(0.01)
        assert not waiting.done()
        coach.mode("ok")
        assert waiting.result(timeout=5).choices[0].finish_reason == "stop"


def test_pause_mode_holds_a_stream_after_its_first_token_until_the_mode_changes(coach, llm):
    coach.mode("pause", seconds=60)
    with ThreadPoolExecutor(1) as pool:
        chunks = iter(ask(llm, CONVERSATION, stream=True))
        texts = [c.choices[0].delta.content for c in itertools.islice(chunks, 2)]  # the role, a token
        assert texts == ["", "You"], texts
        rest = pool.submit(list, chunks)
        time.sleep(0.3)
        assert not rest.done()
        assert coach.stats() == {"started": 1, "completed": 0, "cancelled": 0}
        coach.mode("ok")
        tail = rest.result(timeout=5)
    assert "".join(texts) + "".join(c.choices[0].delta.content or "" for c in tail) == \
        ask(llm, CONVERSATION).choices[0].message.content
    assert coach.stats()["completed"] == 1


def test_pause_mode_lets_the_rest_go_after_its_seconds(coach, llm):
    coach.mode("pause", after=3, seconds=0.2)
    started = time.monotonic()
    text = streamed_text(ask(llm, CONVERSATION, stream=True))
    assert text == ask(llm, CONVERSATION).choices[0].message.content
    assert time.monotonic() - started >= 0.2


def test_a_client_that_goes_away_cancels_its_stream(coach):
    coach.mode("ok", token_delay=0.05)
    body = {"model": "m", "stream": True, "messages": CONVERSATION}
    with web.stream("POST", f"{coach.url}/chat/completions", json=body) as r:
        next(r.iter_lines())
    coach.mode("ok", token_delay=0)
    for _ in range(100):  # the coach notices the closed connection within a token or two
        if coach.stats()["cancelled"]:
            break
        web.get(f"{coach.url}/models")
    assert coach.stats() == {"started": 1, "completed": 0, "cancelled": 1}


def test_a_stream_asked_before_a_reset_counts_in_no_stats_after_it(coach):
    """A slow stream whose client gave up (a test before this one) may start and end after the
    reset that began the next test: it is counted in neither test's stats."""
    coach.mode("slow", seconds=60)
    body = {"model": "m", "stream": True, "messages": CONVERSATION}
    with pytest.raises(httpx2.TimeoutException):
        web.post(f"{coach.url}/chat/completions", json=body, timeout=0.3)
    coach.reset()  # the wait ends, and the stream starts for a client that is gone
    time.sleep(0.3)
    assert coach.stats() == {"started": 0, "completed": 0, "cancelled": 0}


def test_streams_are_served_side_by_side(coach):
    """Three slow streams: each sends its first token while all three are open (none waits
    for another to finish, which at 0.2 s a token would take many seconds)."""
    coach.mode("ok", token_delay=0.2)
    body = {"model": "m", "stream": True, "messages": CONVERSATION}
    with httpx2.Client(timeout=5) as http:
        streams = [http.stream("POST", f"{coach.url}/chat/completions", json=body) for _ in range(3)]
        responses = [s.__enter__() for s in streams]
        try:
            lines = [r.iter_lines() for r in responses]
            firsts = [next(line for line in ls if '"content": "You"' in line) for ls in lines]
            assert len(firsts) == 3
        finally:
            for s in streams:
                s.__exit__(None, None, None)
