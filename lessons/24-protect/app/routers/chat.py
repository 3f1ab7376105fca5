"""The chat with the coach over HTTP: one answer, the answer streamed, and the history."""

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import select

from app import limits, models
from app.crud import conversation, save_exchange
from app.db import DATABASE_DOWN
from app.deps import CurrentUser, LLMDep, SessionDep, SettingsDep
from app.llm import Usage
from app.schemas import (
    DB_DOWN,
    LLM_DOWN,
    NOT_LOGGED_IN,
    TOO_MANY,
    UNREADABLE,
    ChatIn,
    ChatOut,
    MessageOut,
    Problem,
)

logger = logging.getLogger(__name__)

# prefix: the paths below are /api/chat, /api/chat/stream and /api/chat/history once main.py
# includes this router under /api. Every endpoint here needs a login and the database.
router = APIRouter(prefix="/chat", tags=["chat"], responses={**NOT_LOGGED_IN, **DB_DOWN})


# A question that may be asked: whose, its text, when, and what the coach is sent with it.
@dataclass
class Question:
    user_id: int
    text: str
    messages: list[dict]
    asked_at: datetime = field(default_factory=lambda: datetime.now(UTC))


# What every chat needs before the coach is asked: who is asking (CurrentUser, the same check
# as every endpoint), room in their budgets (a question this minute and today, tokens today:
# else a 429), and what the coach is sent. As a dependency it runs before the stream's first
# byte, so a bad token is still a plain 401 and a limit a plain 429. A plain `def`: FastAPI
# runs it in a worker thread, as SQLAlchemy's calls block.
def start_chat(chat_in: ChatIn, user: CurrentUser, db: SessionDep, settings: SettingsDep) -> Question:
    messages = conversation(db, user.id, chat_in.message, settings.HISTORY_CHARACTERS)
    # get_db closes the session only once the response is sent, after the last token: give its
    # connection back to the pool now, so that a long answer does not hold one of the few.
    # And before the budgets are counted, which takes a connection of its own: a request that
    # holds one connection while it waits for another can wait forever, once every request in
    # a storm holds one and waits (the pool has 15).
    db.close()
    limits.take(*limits.chat_budgets(user.id, settings))
    return Question(user.id, chat_in.message, messages)


AskedQuestion = Annotated[Question, Depends(start_chat)]


# One question to the coach, one answer, with the conversation so far. Question and answer are
# stored once the coach has answered: a question that got no answer is not part of it.
# async def, and an awaited call to the model: while it thinks (seconds, or OPENAI_TIMEOUT
# when it hangs) the request holds no worker thread, so a hung model cannot take them all.
@router.post("", response_model=ChatOut, responses={**UNREADABLE, **LLM_DOWN, **TOO_MANY})
async def chat(question: AskedQuestion, llm: LLMDep, settings: SettingsDep):
    usage = Usage()
    try:
        reply = await llm.ask(question.messages, usage)
    finally:
        await limits.spend_tokens(question.user_id, usage.tokens, settings)
    await run_in_threadpool(save_exchange, question.user_id, question.text, question.asked_at, reply)
    logger.info("chat: user %s asked the coach, %s earlier messages sent, %s tokens", question.user_id,
                len(question.messages) - 2, usage.tokens)
    return {"reply": reply}


# One of the user's OPEN_CHATS_PER_USER seats (limits.open_chat), held from before the stream's
# first byte until after its last: a dependency with `yield`, whose code after the yield runs
# once the response is sent. None free: a 429.
async def chat_seat(user: CurrentUser, settings: SettingsDep) -> AsyncIterator[limits.Seat]:
    async with limits.open_chat(user.id, settings.OPEN_CHATS_PER_USER, limits.lease(settings)) as seat:
        yield seat


# The stream's errors come before its first byte, as JSON ({"detail": "..."}) like any other.
# But FastAPI files a `model` in `responses=` under the route's own media type, text/event-stream
# here, so each one names its media type itself; the route's entries replace the router's.
# Everything else in an entry stays (the 429's Retry-After header).
PROBLEM_JSON = {"application/json": {"schema": Problem.model_json_schema()}}
STREAM_ERRORS = {
    status: {**{key: value for key, value in error.items() if key != "model"}, "content": PROBLEM_JSON}
    for status, error in {**UNREADABLE, **NOT_LOGGED_IN, **DB_DOWN, **TOO_MANY}.items()
}


# The same chat, but the answer is sent token by token while the coach writes it, as
# Server-Sent Events (a `text/event-stream` response). `yield` makes the endpoint a generator;
# with response_class=EventSourceResponse, FastAPI sends each ServerSentEvent it yields at once,
# as an `event:` line (when it has a name) and a `data:` line of JSON: a newline in a token
# travels as the two characters \n and cannot end the event early. FastAPI also writes the 200
# into the OpenAPI document (/docs).
# The 200 goes out before the model is even asked, so every failure of the model, before its
# first token or half-way, is told as an `event: error`.
# If the user goes away, at any point, Starlette sees it and ends the response, and FastAPI
# cancels the generator: the `await` it waits at (for the first token as for any other) raises
# CancelledError, `aclosing` closes the stream to the model on the way out, and nothing is
# stored (unless the whole answer was already being saved: that runs to its end).
# async def: the endpoint and its stream run on the event loop, and wait only with `await`,
# so a hundred streams at once cost a hundred waits, not a hundred blocked threads.
@router.post("/stream", response_class=EventSourceResponse,
             response_description='Events `data: {"token": "..."}`, one per token, then `event: done` '
                                  'with `data: {}`; or `event: error` with `data: {"detail": "..."}`',
             responses=STREAM_ERRORS)
async def chat_stream(seat: Annotated[limits.Seat, Depends(chat_seat)], question: AskedQuestion, llm: LLMDep,
                      settings: SettingsDep) -> AsyncIterator[ServerSentEvent]:
    reply, usage = [], Usage()
    try:
        async with aclosing(llm.stream(question.messages, usage)) as tokens:
            async for token in tokens:
                reply.append(token)
                yield ServerSentEvent(data={"token": token})
                await seat.keep()  # renews the seat's lease now and then, while the answer lasts
        await run_in_threadpool(save_exchange, question.user_id, question.text, question.asked_at,
                                "".join(reply))
    except HTTPException as error:  # the model failed (502 or 504 in /api/chat), or the account is gone
        yield ServerSentEvent(data={"detail": error.detail}, event="error")
        return
    except DATABASE_DOWN:  # the database went away before the exchange was stored
        yield ServerSentEvent(data={"detail": "Database unavailable, try again later"}, event="error")
        return
    finally:
        await limits.spend_tokens(question.user_id, usage.tokens, settings)
    logger.info("chat stream: user %s asked the coach, %s earlier messages sent, %s tokens", question.user_id,
                len(question.messages) - 2, usage.tokens)
    yield ServerSentEvent(data={}, event="done")


# A page of the history: 50 messages unless the client asks for another number, at most 100.
PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"How many messages: 1 to {MAX_PAGE_SIZE}")]
Before = Annotated[int | None, Query(ge=1, description="Only messages older than this id (load earlier: "
                                                        "the id of the oldest message you have)")]


# The user's own conversation, a page at a time, oldest first within the page: the latest
# `limit` messages, or with `before` the `limit` messages just before that id. Keyset paging:
# a page starts after an id, never after a number of rows to skip (lesson 19's README). Every
# query says WHERE user_id = <this user>, so `before` cannot reach another user's messages.
@router.get("/history", response_model=list[MessageOut])
def chat_history(user: CurrentUser, db: SessionDep, limit: Limit = PAGE_SIZE, before: Before = None):
    query = select(models.Message).where(models.Message.user_id == user.id)
    if before is not None:
        query = query.where(models.Message.id < before)
    # The newest `limit` of them, as in conversation() (the index on (user_id, id) reads just
    # those rows), turned around: oldest first, as the page shows them.
    page = db.scalars(query.order_by(models.Message.id.desc()).limit(limit)).all()
    # End the read: FastAPI turns the rows into JSON in another worker thread, and the request
    # must not hold a connection while it waits for one (lesson 17); the rows keep their values.
    db.commit()
    return page[::-1]
