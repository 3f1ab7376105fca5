"""The chat over a WebSocket: one socket per open page, every answer streamed over it."""

import logging
from contextlib import aclosing
from datetime import UTC, datetime

import anyio
from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect, status
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from app import limits
from app.config import Settings
from app.crud import load_conversation, save_exchange
from app.db import DATABASE_DOWN, SessionLocal
from app.deps import LLMDep, SettingsDep, authenticate
from app.llm import LLM, Usage
from app.schemas import ChatIn, SocketLogin

logger = logging.getLogger(__name__)

router = APIRouter(tags=["chat"])

# The largest frame read, in characters. A message has at most 4000; as JSON, even with every
# character escaped (an emoji is 12 characters: \ud83d\ude00), it stays well under this.
MAX_FRAME = 64 * 1024
NOT_A_MESSAGE = 'Send {"message": "..."} with 1 to 4000 characters'
BUSY = "An answer is still coming: send the next message after it is done"
# Frames in a row that get one of those two error frames, before the socket is closed. The page
# never sends them (its button waits for each answer), and each costs an error frame back, many
# times its size: a client that sends them by the thousand and reads nothing would fill the
# server's buffers until sending blocks, and the socket would hang, unread and unchecked.
MOST_REFUSED_IN_A_ROW = 10
TOO_MANY_REFUSED = "Too many frames that are no question: wait for each answer"


# Ends the socket with a close code and a reason the client can read (the page's `close` event
# has both): raised wherever the socket cannot go on, closed in one place (chat_socket).
class CloseSocket(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


# The socket's user: the id of the account a token names (authenticate, as for every HTTP
# endpoint: expired, revoked and old-version tokens are refused), or None. Runs in a worker
# thread (the query blocks), with a session closed at once: a socket may stay open for hours,
# and must not hold one of the pool's connections all that time.
def socket_user(token: str | None, settings: Settings) -> int | None:
    if not token:
        return None
    with SessionLocal() as db:
        user = authenticate(db, token, settings)
        return user.id if user is not None else None


# The token checked, and its account looked up, now: at login, before every answer, and every
# SOCKET_RECHECK_SECONDS while the socket is open. A socket may stay open for hours, longer
# than its token is valid, and meanwhile the account may be deleted or its tokens revoked (a
# logout everywhere, a new password): the socket must not outlive any of them (1008, the
# socket's 401).
async def check_token(token: str | None, settings: Settings) -> int:
    try:
        user_id = await run_in_threadpool(socket_user, token, settings)
    except DATABASE_DOWN:  # 1011: the server cannot go on; the page reconnects a little later
        raise CloseSocket(status.WS_1011_INTERNAL_ERROR, "Database unavailable, try again later") from None
    if user_id is None:
        raise CloseSocket(status.WS_1008_POLICY_VIOLATION, "Invalid or expired token")
    return user_id


# The next frame's text. Starlette's receive_text() takes a binary frame for a bug (KeyError: the
# connection is cut without a close frame), so this reads the raw message and refuses a binary
# frame (1003, unsupported data) and one too big to be a message (1009, message too big). The
# page going away raises WebSocketDisconnect, as in receive_text().
async def receive_frame(websocket: WebSocket) -> str:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        raise CloseSocket(status.WS_1003_UNSUPPORTED_DATA, "Binary frames are not accepted: send JSON text")
    if len(text) > MAX_FRAME:
        raise CloseSocket(status.WS_1009_MESSAGE_TOO_BIG, f"A frame may have at most {MAX_FRAME} characters")
    return text


# The first frame, {"token": "<jwt>"}, within WS_LOGIN_TIMEOUT seconds: the token and its user's
# id. Without a limit, a socket that never says who it is stays open for as long as its client
# answers pings, and thousands of them hold memory and file descriptors for nothing.
async def log_in(websocket: WebSocket, settings: Settings) -> tuple[str | None, int]:
    try:
        with anyio.fail_after(settings.WS_LOGIN_TIMEOUT):
            frame = await receive_frame(websocket)
    except TimeoutError:
        reason = f"No token within {settings.WS_LOGIN_TIMEOUT:g} s"
        raise CloseSocket(status.WS_1008_POLICY_VIOLATION, reason) from None
    try:
        token = SocketLogin.model_validate_json(frame).token
    except ValidationError:  # not JSON, or no "token" in it
        token = None
    return token, await check_token(token, settings)


def error_frame(detail: str) -> dict:
    return {"type": "error", "detail": detail}


# An error frame for a frame that is no question to answer now; closes the socket (1008) once
# MOST_REFUSED_IN_A_ROW came in a row. Returns how many came in a row, this one counted.
async def refuse(websocket: WebSocket, detail: str, in_a_row: int) -> int:
    if in_a_row >= MOST_REFUSED_IN_A_ROW:
        raise CloseSocket(status.WS_1008_POLICY_VIOLATION, TOO_MANY_REFUSED)
    await websocket.send_json(error_frame(detail))
    return in_a_row + 1


# One question over the socket: {"type": "token"} frames as the coach writes; returns the frame
# that ends the answer, {"type": "done"}, or an error frame when it fails (the socket stays open
# for the next question). The same budgets as the HTTP chat: a question over one of them gets
# the 429's detail, and its Retry-After as "retry_after".
async def stream_answer(websocket: WebSocket, llm: LLM, settings: Settings, user_id: int,
                        question: str) -> dict:
    usage = Usage()
    try:
        await run_in_threadpool(limits.take, *limits.chat_budgets(user_id, settings))
        messages = await run_in_threadpool(load_conversation, user_id, question, settings.HISTORY_CHARACTERS)
        asked_at = datetime.now(UTC)
        reply = []
        # aclosing: if sending fails (the page is gone) or this task is cancelled, leaving this
        # block closes the stream to the model at once, and the model stops writing.
        async with aclosing(llm.stream(messages, usage)) as tokens:
            async for token in tokens:
                reply.append(token)
                await websocket.send_json({"type": "token", "content": token})
        await run_in_threadpool(save_exchange, user_id, question, asked_at, "".join(reply))
    except limits.TooManyRequests as refused:
        return {**error_frame(refused.detail), "retry_after": refused.retry_after}
    except HTTPException as error:  # the model failed (502/504 over HTTP), or the account is gone (401)
        return error_frame(error.detail)
    except DATABASE_DOWN:
        return error_frame("Database unavailable, try again later")
    finally:
        await limits.spend_tokens(user_id, usage.tokens, settings)
    logger.info("chat socket: user %s asked the coach, %s earlier messages sent, %s tokens", user_id,
                len(messages) - 2, usage.tokens)
    return {"type": "done"}


# The task that answers one question, beside the reading; sets `answered` when it ends, however.
async def answer(websocket: WebSocket, llm: LLM, settings: Settings, user_id: int, question: str,
                 answered: anyio.Event) -> None:
    try:
        await websocket.send_json(await stream_answer(websocket, llm, settings, user_id, question))
    except WebSocketDisconnect:
        pass  # the page has gone: the reading sees it too, and ends the socket
    finally:
        answered.set()


# Reads the socket's frames for as long as it lives, and answers each question in a task of its
# own that runs beside the reading (a task group), one answer at a time. Reading on while an
# answer streams matters: uvicorn takes nothing more off the connection until the app has taken
# the last frame, not even the client's answers to its pings, so an unread frame would get the
# socket closed as dead (1011, keepalive ping timeout) in the middle of the answer. A question
# that comes while an answer is being written gets an error frame (BUSY), and that answer goes
# on to its done; more than MOST_REFUSED_IN_A_ROW such frames in a row close the socket. The
# token is checked again before each answer, and at the latest every SOCKET_RECHECK_SECONDS,
# frames or not (the reading stops waiting then: move_on_at); each check also keeps the socket's
# seat (seat.keep() renews it when half its lease has passed). Ends by raising what ended the
# socket.
async def read_and_answer(websocket: WebSocket, settings: Settings, llm: LLM, token: str | None,
                          user_id: int, seat: limits.Seat) -> None:
    async with anyio.create_task_group() as answers:
        answered = anyio.Event()
        answered.set()  # no answer is being written
        refused = 0  # frames in a row that got an error frame (refuse)
        next_check = anyio.current_time() + settings.SOCKET_RECHECK_SECONDS
        try:
            while True:
                frame = None
                with anyio.move_on_at(next_check):
                    frame = await receive_frame(websocket)
                if anyio.current_time() >= next_check:
                    await check_token(token, settings)  # 1008 when it no longer holds
                    await seat.keep()
                    next_check = anyio.current_time() + settings.SOCKET_RECHECK_SECONDS
                if frame is None:
                    continue
                try:
                    question = ChatIn.model_validate_json(frame).message
                except ValidationError:
                    refused = await refuse(websocket, NOT_A_MESSAGE, refused)
                    continue
                if not answered.is_set():
                    refused = await refuse(websocket, BUSY, refused)
                    continue
                refused = 0
                await check_token(token, settings)  # 1008 when the token has expired or was revoked
                answered = anyio.Event()
                answers.start_soon(answer, websocket, llm, settings, user_id, question, answered)
        except (WebSocketDisconnect, CloseSocket) as end:
            # Raised again below, outside the group: out of a task group, an exception comes
            # wrapped in an ExceptionGroup.
            ended = end
        answers.cancel_scope.cancel()  # the socket is done, and so is an answer half-way
    raise ended


# One WebSocket per open page, for as long as the page stays open. A browser cannot send an
# Authorization header with a WebSocket, so the page's first frame is {"token": "<jwt>"}: the
# answer is {"type": "ready"}, or the socket is closed with code 1008 (policy violation, the
# socket's 401). The socket takes one of the user's OPEN_CHATS_PER_USER seats (limits.py) for
# as long as it lives; none free: closed with 1013 (try again later). Then each
# {"message": "..."} is answered over the same socket.
# The function runs as long as the socket lives, on the event loop: it only ever waits with
# `await` (AsyncOpenAI, run_in_threadpool), so a hundred open sockets block nobody.
# Dependencies work here as in any endpoint; they run once, when the socket opens.
@router.websocket("/ws/chat")
async def chat_socket(websocket: WebSocket, settings: SettingsDep, llm: LLMDep):
    await websocket.accept()
    user_id = None
    try:
        token, user_id = await log_in(websocket, settings)
        seats = settings.OPEN_CHATS_PER_USER
        try:
            async with limits.open_chat(user_id, seats, limits.lease(settings)) as seat:
                await websocket.send_json({"type": "ready"})
                await read_and_answer(websocket, settings, llm, token, user_id, seat)
        except limits.TooManyRequests as refused:
            raise CloseSocket(status.WS_1013_TRY_AGAIN_LATER, refused.detail) from None
        except HTTPException:  # open_chat's 401: the account was deleted as the seat was taken
            raise CloseSocket(status.WS_1008_POLICY_VIOLATION, "Invalid or expired token") from None
        except DATABASE_DOWN:  # no seat could be taken: 1011, as in check_token
            reason = "Database unavailable, try again later"
            raise CloseSocket(status.WS_1011_INTERNAL_ERROR, reason) from None
    except CloseSocket as close:
        logger.warning("chat socket closed with %s: user %s, %s", close.code, user_id, close.reason)
        await websocket.close(code=close.code, reason=close.reason)
    except WebSocketDisconnect:  # the page closed the socket (or its network went): nothing to answer
        logger.info("chat socket closed: user %s", user_id)
