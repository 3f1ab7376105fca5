"""The chat with the coach over HTTP: one answer, the answer streamed, and the history."""

import json
import logging
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.crud import conversation, save_exchange, store_exchange
from app.deps import CurrentUser, LLMDep, SessionDep
from app.schemas import DB_DOWN, LLM_DOWN, NOT_LOGGED_IN, UNREADABLE, ChatIn, ChatOut, MessageOut

logger = logging.getLogger(__name__)

# prefix: the paths below are /api/chat, /api/chat/stream and /api/chat/history once main.py
# includes this router under /api. Every endpoint here needs a login and the database.
router = APIRouter(prefix="/chat", tags=["chat"], responses={**NOT_LOGGED_IN, **DB_DOWN})


# What the coach is sent; then the session gives its connection back to the pool: the coach
# may take many seconds, and an open session holds one of the pool's few connections all that
# time. (The session opens a new one when it is used again.)
def conversation_then_release(db: Session, user_id: int, question: str) -> list[dict]:
    try:
        return conversation(db, user_id, question)
    finally:
        db.close()


# One question to the coach, one answer, with the conversation so far. Question and answer are
# stored once the coach has answered: a question that got no answer is not part of it.
@router.post("", response_model=ChatOut, responses={**UNREADABLE, **LLM_DOWN})
def chat(chat_in: ChatIn, user: CurrentUser, db: SessionDep, llm: LLMDep):
    user_id = user.id
    messages = conversation_then_release(db, user_id, chat_in.message)
    asked_at = datetime.now(UTC)
    reply = llm.ask(messages)
    store_exchange(db, user_id, chat_in.message, asked_at, reply)
    logger.info("chat: user %s asked the coach, %s earlier messages sent", user_id, len(messages) - 2)
    return {"reply": reply}


# One Server-Sent Event: an `event:` line when it has a name, a `data:` line, and a blank line
# that ends it. The data is JSON, so a newline in a token travels as the two characters \n
# and cannot end the line (or, as a blank line, the event) early.
def sse(data: dict, event: str | None = None) -> str:
    return (f"event: {event}\n" if event else "") + f"data: {json.dumps(data)}\n\n"


STREAM = {200: {"content": {"text/event-stream": {}},
                "description": 'Events `data: {"token": ...}`, then `event: done` (or `event: error`)'}}


# The same chat, but the answer is sent token by token while the coach writes it, as
# Server-Sent Events: `data: {"token": "..."}` for each piece, then `event: done`. If the model
# fails before its first token, the answer is a plain 502 or 504 as in /api/chat; once the
# 200 and the first tokens are sent, a failure can only be told as an `event: error`.
# async def: the endpoint and its stream run on the event loop, and wait only with `await`,
# so a hundred streams at once cost a hundred waits, not a hundred blocked threads. (FastAPI
# runs the plain-def dependencies, get_current_user and get_db, in worker threads.)
@router.post("/stream", response_class=StreamingResponse, responses={**STREAM, **UNREADABLE, **LLM_DOWN})
async def chat_stream(chat_in: ChatIn, user: CurrentUser, db: SessionDep, llm: LLMDep):
    user_id = user.id
    messages = await run_in_threadpool(conversation_then_release, db, user_id, chat_in.message)
    asked_at = datetime.now(UTC)
    tokens = llm.stream(messages)
    first = await anext(tokens)  # the model has started, or this raised its 502 or 504

    # StreamingResponse sends whatever this generator yields, as it yields it. If the user goes
    # away, Starlette cancels it: the `await` it waits at raises CancelledError, the stream to
    # the model is closed on the way out (llm.stream), and nothing is stored.
    async def events():
        reply = [first]
        yield sse({"token": first})
        try:
            async for token in tokens:
                reply.append(token)
                yield sse({"token": token})
            await run_in_threadpool(save_exchange, user_id, chat_in.message, asked_at, "".join(reply))
        except HTTPException as error:  # the model failed half-way
            yield sse({"detail": error.detail}, "error")
            return
        except OperationalError:  # the database went away before the exchange was stored
            yield sse({"detail": "Database unavailable, try again later"}, "error")
            return
        logger.info("chat stream: user %s asked the coach, %s earlier messages sent",
                    user_id, len(messages) - 2)
        yield sse({}, "done")

    return StreamingResponse(events(), media_type="text/event-stream")


# The user's own conversation, oldest first. user.messages is the relationship in models.py:
# SQLAlchemy runs SELECT ... FROM messages WHERE user_id = <this user> ORDER BY id for us,
# and nobody can ask for another user's messages: there is no id to change in the URL.
@router.get("/history", response_model=list[MessageOut])
def chat_history(user: CurrentUser):
    return user.messages
