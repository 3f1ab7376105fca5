"""The chat over a WebSocket: one socket per open page, every answer streamed over it."""

import logging
from contextlib import aclosing
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect, status
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from app.config import Settings
from app.crud import load_conversation, save_exchange
from app.db import SessionLocal
from app.deps import LLMDep, SettingsDep, authenticate
from app.llm import LLM
from app.schemas import ChatIn, SocketLogin

logger = logging.getLogger(__name__)

router = APIRouter(tags=["chat"])


# The socket's user: the id of the account a token names (authenticate, as for every HTTP
# endpoint), or None. Runs in a worker thread (the query blocks), with a session closed at
# once: a socket may stay open for hours, and must not hold one of the pool's connections all
# that time.
def socket_user(token: str, settings: Settings) -> int | None:
    with SessionLocal() as db:
        user = authenticate(db, token, settings)
        return user.id if user is not None else None


def error_frame(detail: str) -> dict:
    return {"type": "error", "detail": detail}


# One question over the socket: {"type": "token"} frames as the coach writes, then
# {"type": "done"}; a failure is an error frame, and the socket stays open for the next one.
async def answer_over_socket(websocket: WebSocket, llm: LLM, user_id: int, question: str) -> None:
    try:
        messages = await run_in_threadpool(load_conversation, user_id, question)
        asked_at = datetime.now(UTC)
        reply = []
        # aclosing: if sending fails (the page is gone), leaving this block closes the stream
        # to the model at once, and the model stops writing.
        async with aclosing(llm.stream(messages)) as tokens:
            async for token in tokens:
                reply.append(token)
                await websocket.send_json({"type": "token", "content": token})
        await run_in_threadpool(save_exchange, user_id, question, asked_at, "".join(reply))
    except HTTPException as error:  # the model failed (502/504 in the HTTP endpoints)
        await websocket.send_json(error_frame(error.detail))
        return
    except OperationalError:
        await websocket.send_json(error_frame("Database unavailable, try again later"))
        return
    logger.info("chat socket: user %s asked the coach, %s earlier messages sent", user_id, len(messages) - 2)
    await websocket.send_json({"type": "done"})


# One WebSocket per open page, for as long as the page stays open. A browser cannot send an
# Authorization header with a WebSocket, so the page's first frame is {"token": "<jwt>"}:
# the answer is {"type": "ready"}, or the socket is closed with code 1008 (policy violation,
# the socket's 401). Then each {"message": "..."} is answered in turn over the same socket.
# The function runs as long as the socket lives, on the event loop: it only ever waits with
# `await` (AsyncOpenAI, run_in_threadpool), so a hundred open sockets block nobody.
# Dependencies work here as in any endpoint: they run once, when the socket opens.
@router.websocket("/ws/chat")
async def chat_socket(websocket: WebSocket, settings: SettingsDep, llm: LLMDep):
    await websocket.accept()
    user_id = None
    try:
        try:
            token = SocketLogin.model_validate_json(await websocket.receive_text()).token
        except ValidationError:  # not JSON, or no "token" in it
            token = None
        user_id = await run_in_threadpool(socket_user, token, settings) if token else None
        if user_id is None:
            logger.warning("chat socket refused: no token, or an invalid or expired one")
            await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="Invalid or expired token")
            return
        await websocket.send_json({"type": "ready"})
        while True:
            frame = await websocket.receive_text()  # raises WebSocketDisconnect when the page goes
            try:
                question = ChatIn.model_validate_json(frame).message
            except ValidationError:
                await websocket.send_json(error_frame('Send {"message": "..."} with 1 to 4000 characters'))
                continue
            await answer_over_socket(websocket, llm, user_id, question)
    except WebSocketDisconnect:  # the page closed the socket (or its network went): nothing to answer
        logger.info("chat socket closed: user %s", user_id)
