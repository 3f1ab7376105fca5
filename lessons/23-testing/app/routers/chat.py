"""The chat with the coach over HTTP: one answer, the answer streamed, and the history."""

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import select

from app import models
from app.crud import conversation, save_exchange, store_exchange
from app.db import DATABASE_DOWN
from app.deps import CurrentUser, LLMDep, SessionDep
from app.schemas import DB_DOWN, LLM_DOWN, NOT_LOGGED_IN, UNREADABLE, ChatIn, ChatOut, MessageOut, Problem

logger = logging.getLogger(__name__)

# prefix: the paths below are /api/chat, /api/chat/stream and /api/chat/history once main.py
# includes this router under /api. Every endpoint here needs a login and the database.
router = APIRouter(prefix="/chat", tags=["chat"], responses={**NOT_LOGGED_IN, **DB_DOWN})


# One question to the coach, one answer, with the conversation so far. Question and answer are
# stored once the coach has answered: a question that got no answer is not part of it.
@router.post("", response_model=ChatOut, responses={**UNREADABLE, **LLM_DOWN})
def chat(chat_in: ChatIn, user: CurrentUser, db: SessionDep, llm: LLMDep):
    messages = conversation(db, user.id, chat_in.message)
    asked_at = datetime.now(UTC)
    # The LLM may take many seconds: give the session's connection back to the pool meanwhile.
    # (The session opens a new one when it is used again, below.)
    db.close()
    reply = llm.ask(messages)
    store_exchange(db, user.id, chat_in.message, asked_at, reply)
    logger.info("chat: user %s asked the coach, %s earlier messages sent", user.id, len(messages) - 2)
    return {"reply": reply}


# What a chat stream needs before it starts: who is asking (CurrentUser, the same check as every
# endpoint) and what the coach is sent. As a dependency it runs before the stream's first byte,
# so a bad token is still a plain 401 and a database that is down a plain 503, like everywhere
# else. A plain `def`: FastAPI runs it in a worker thread, as SQLAlchemy's calls block.
# The question comes back with the rest: were the endpoint to take ChatIn as well, FastAPI
# would check the body twice, and a 422 would list each broken rule twice.
def start_chat(chat_in: ChatIn, user: CurrentUser, db: SessionDep) -> tuple[int, str, list[dict]]:
    messages = conversation(db, user.id, chat_in.message)
    # get_db closes the session only once the response is sent, after the last token: give its
    # connection back to the pool now, so that a long answer does not hold one of the few.
    db.close()
    return user.id, chat_in.message, messages


# The stream's errors come before its first byte, as JSON ({"detail": "..."}) like any other.
# But FastAPI files a `model` in `responses=` under the route's own media type, text/event-stream
# here, so each one names its media type itself; the route's entries replace the router's.
PROBLEM_JSON = {"application/json": {"schema": Problem.model_json_schema()}}
STREAM_ERRORS = {status: {"description": error["description"], "content": PROBLEM_JSON}
                 for status, error in {**UNREADABLE, **NOT_LOGGED_IN, **DB_DOWN}.items()}


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
async def chat_stream(
    start: Annotated[tuple[int, str, list[dict]], Depends(start_chat)], llm: LLMDep
) -> AsyncIterator[ServerSentEvent]:
    user_id, question, messages = start
    asked_at = datetime.now(UTC)
    reply = []
    try:
        async with aclosing(llm.stream(messages)) as tokens:
            async for token in tokens:
                reply.append(token)
                yield ServerSentEvent(data={"token": token})
        await run_in_threadpool(save_exchange, user_id, question, asked_at, "".join(reply))
    except HTTPException as error:  # the model failed (502 or 504 in /api/chat), or the account is gone
        yield ServerSentEvent(data={"detail": error.detail}, event="error")
        return
    except DATABASE_DOWN:  # the database went away before the exchange was stored
        yield ServerSentEvent(data={"detail": "Database unavailable, try again later"}, event="error")
        return
    logger.info("chat stream: user %s asked the coach, %s earlier messages sent", user_id, len(messages) - 2)
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
