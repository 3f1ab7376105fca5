"""The chat over a WebSocket, /ws/chat: a token first, then questions, answers as frames."""

import json
from datetime import timedelta

import pytest
from fastapi import WebSocketDisconnect

from app.deps import get_llm
from app.main import app
from helpers import make_token


def closing_code(ws) -> int:
    """The code the app closes the socket with (the next frame must be the close)."""
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    return closed.value.code


@pytest.mark.parametrize("first_frame", ["not-a-token", "expired", "no JSON"])
def test_socket_without_a_valid_token_is_closed_with_1008(client, user, settings, first_frame):
    expired = make_token(user.id, settings, age=timedelta(hours=1))
    frames = {"not-a-token": json.dumps({"token": "not-a-token"}), "expired": json.dumps({"token": expired}),
              "no JSON": "hello"}
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_text(frames[first_frame])
        assert closing_code(ws) == 1008


def test_socket_without_a_first_frame_is_closed_after_ws_login_timeout(client, settings):
    settings.WS_LOGIN_TIMEOUT = 0.1  # the settings the app gets are this test's own
    with client.websocket_connect("/ws/chat") as ws:
        assert closing_code(ws) == 1008


def test_socket_closes_on_a_binary_frame_with_1003(client, user, settings):
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"token": make_token(user.id, settings)})
        ws.receive_json()  # ready
        ws.send_bytes(b"\x00\x01")
        assert closing_code(ws) == 1003


def test_socket_answers_with_tokens_then_done(client, user, settings, llm):
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"token": make_token(user.id, settings)})
        assert ws.receive_json() == {"type": "ready"}
        ws.send_json({"message": "How do I start?"})
        frames = [ws.receive_json() for _ in range(len(llm.tokens) + 1)]
    assert frames == [*({"type": "token", "content": token} for token in llm.tokens), {"type": "done"}]


def test_socket_answers_a_frame_without_a_message_with_an_error(client, user, settings):
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"token": make_token(user.id, settings)})
        ws.receive_json()  # ready
        ws.send_json({"message": ""})
        error = ws.receive_json()
    assert error == {"type": "error", "detail": 'Send {"message": "..."} with 1 to 4000 characters'}


def test_socket_tells_a_slow_llm_as_an_error_frame(client, user, settings, slow_llm):
    app.dependency_overrides[get_llm] = lambda: slow_llm
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"token": make_token(user.id, settings)})
        ws.receive_json()  # ready
        ws.send_json({"message": "Anyone there?"})
        error = ws.receive_json()
    assert error == {"type": "error", "detail": "The coach took too long to answer, try again"}
