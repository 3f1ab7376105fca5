import logging
import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Annotated

import anyio
from dotenv import load_dotenv
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.sse import EventSourceResponse, ServerSentEvent
from passlib.context import CryptContext
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationError,
)
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

import llm
import models
from auth import create_token, decode_token
from database import SessionLocal
from deps import CurrentUser, SessionDep, bearer, get_current_user, not_authenticated

# Copy the settings from the .env file into the environment (variables already set win).
load_dotenv()

# Log lines go to the terminal, with time, level and where they come from:
#   2026-11-28 11:02:03,456 INFO main: signup: user 7
# Never log a password, a hash or a token: logs are copied, kept and read far more widely
# than the database. User ids and event names say what happened without giving anything away.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logger = logging.getLogger(__name__)


# The application object: `uvicorn main:app` means "the app in main.py".
# No lifespan any more: the tables come from Alembic migrations (alembic upgrade head),
# not from create_all, so the app never changes the schema behind Alembic's back.
app = FastAPI()

# A browser lets a page call an API on another origin (scheme + host + port) only if the API
# says that origin is allowed. The pages live on http://localhost:8001 (also reached as
# http://127.0.0.1:8001, a different origin) and the API on :8000, so the API lists those two
# origins, and only those: any other site stays blocked. (HTTP only: browsers do not ask CORS
# before a WebSocket, so /ws/chat is open to any site's page; the token in its first frame is
# what keeps strangers out.)
PAGE_ORIGINS = "http://localhost:8001,http://127.0.0.1:8001"
app.add_middleware(
    CORSMiddleware,
    allow_origins=[origin.strip() for origin in os.getenv("CORS_ORIGINS", PAGE_ORIGINS).split(",")],
    allow_methods=["*"],
    allow_headers=["*"],
)


# When Postgres cannot be reached, SQLAlchemy raises OperationalError. This handler turns it
# into a short 503 "Service Unavailable" for any endpoint, instead of a 500 and a traceback.
@app.exception_handler(OperationalError)
@app.exception_handler(PoolTimeout)  # no free connection in the pool within 30 s: as good as down
def database_unavailable(request: Request, exc: OperationalError):
    return JSONResponse(status_code=503, content={"detail": "Database unavailable, try again later"})


# Both, where the code catches them itself (a stream, a socket: no handler can answer there).
DATABASE_DOWN = (OperationalError, PoolTimeout)


# Postgres error codes for "no such table" and "no such column": the database is behind the
# models because the migrations have not run. Say what to do, instead of a bare 500.
SCHEMA_BEHIND = {"42P01", "42703"}


@app.exception_handler(ProgrammingError)
def schema_not_migrated(request: Request, exc: ProgrammingError):
    if getattr(exc.orig, "pgcode", None) not in SCHEMA_BEHIND:
        raise exc  # any other SQL error is a bug: let it be a 500 with its traceback in the log
    return JSONResponse(
        status_code=503, content={"detail": "Database schema is not up to date: run alembic upgrade head"}
    )


# FastAPI's own 422 repeats each rejected value ("input") and the rule's limit ("ctx"). The
# client already has its value, a 10 MB one would travel back in full, and one that is not text
# ("\ud800", half of a character pair) cannot be written as UTF-8 at all: the 422 would crash
# into a 500. So this handler keeps where (loc), what (type) and why (msg), and drops the value.
@app.exception_handler(RequestValidationError)
def invalid_request(request: Request, exc: RequestValidationError):
    errors = [{key: e[key] for key in ("type", "loc", "msg")} for e in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": errors})


# Postgres cannot store the NUL character in text: refuse it up front (422), not later (500).
NO_NUL = r"^[^\x00]*$"


# bcrypt reads at most 72 bytes (not characters: "é" is 2 bytes, an emoji 4) and refuses
# longer input. Saying so here gives a clear 422 instead of a crash or a silently cut password.
# A plain function, so that signup and login share it.
def fits_bcrypt(password: str) -> str:
    if len(password.encode("utf-8")) > 72:
        raise ValueError("password must be at most 72 bytes long (UTF-8)")
    return password


# EmailStr checks an address properly (the email-validator package): "ada..l@example.com" or
# "ada@-example.com" get a 422 that a hand-written pattern let through.
# In the OpenAPI document EmailStr is only `"format": "email"`, and email-validator refuses
# more than that promises: a domain without a dot (ada@localhost), one whose last part does not
# end in a letter (ada@host.123), a quoted name ("a b"@example.com), an [IP address], and the
# special-use domains no mail can reach (ada@lab.test, ada@printer.local, ...). So the schema
# says it too, in words and in a pattern any client or fuzzer can check. A JSON Schema pattern
# has no "ignore case" flag: each letter of those names is written both ways, [Tt][Ee][Ss][Tt].
SPECIAL_USE = "|".join("".join(f"[{c.upper()}{c}]" for c in name) for name in SPECIAL_USE_DOMAIN_NAMES)
EMAIL_PATTERN = (r'^[^@"]+'  # the name: no quotes
                 rf"@(?!(.*\.)?({SPECIAL_USE})$)"  # a domain that is not special-use...
                 r"[^@\[\]]+\.[^@\[\]]*[A-Za-z]$")  # ...with a dot, ending in a letter, no [IP]
EMAIL_RULE = ("An address email-validator accepts: no quoted name or [IP address], a dot in the domain, "
              "a last part ending in a letter, and no special-use domain (" + ", ".join(
                  f".{name}" for name in SPECIAL_USE_DOMAIN_NAMES) + ")")
# Emails are compared without regard to case: we store and look them up in lower case.
Email = Annotated[EmailStr, Field(description=EMAIL_RULE,
                                  json_schema_extra={"pattern": EMAIL_PATTERN, "maxLength": 254}),
                  AfterValidator(str.lower)]
PASSWORD_RULE = "6 to 72 characters, and at most 72 bytes in UTF-8 (bcrypt's limit)"
Password = Annotated[str, Field(min_length=6, max_length=72, pattern=NO_NUL, description=PASSWORD_RULE),
                     AfterValidator(fits_bcrypt)]


# The model describes a valid profile. FastAPI checks every request body against it and
# answers 422, with a `detail` naming each broken rule, before our function even runs.
class User(BaseModel):
    name: str = Field(min_length=2, max_length=10, pattern=NO_NUL)
    email: Email


# An error answer, {"detail": "..."}. Listing the errors an endpoint can give in `responses=`
# puts them in the OpenAPI document (/docs) beside the success; FastAPI lists 422 by itself.
class Problem(BaseModel):
    detail: str


UNREADABLE = {400: {"model": Problem, "description": "The body could not be read (not UTF-8)"}}
DB_DOWN = {503: {"model": Problem, "description": "The database cannot be reached, or is not migrated"}}
WRONG_LOGIN = {401: {"model": Problem, "description": "Wrong email or password"}}
NOT_LOGGED_IN = {401: {"model": Problem, "description": "No token, or a bad or expired one: log in (again)"}}
EMAIL_TAKEN = {409: {"model": Problem, "description": "Another account has this email"}}
LLM_DOWN = {502: {"model": Problem, "description": "The LLM failed, or none is configured"},
            504: {"model": Problem, "description": "The LLM did not answer within OPENAI_TIMEOUT seconds"}}


# What a signup sends: the profile plus a password.
class UserCreate(User):
    password: Password


# What a login sends. A wrong password is a 401; one that no account can have (too short for
# signup, too long for bcrypt) is a 422, like any other broken rule.
class LoginForm(BaseModel):
    email: Email
    password: Password


# What PUT /api/me accepts: any of the three, each optional. `str | None = None` (the older
# spelling is Optional[str] = None) means "may be left out"; what is left out stays as it is.
class UserUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=2, max_length=10, pattern=NO_NUL)
    email: Email | None = None
    password: Password | None = None


# What the API sends back: never the password, never its hash. `response_model=UserOut`
# filters every answer through this model, whatever the function returns.
# from_attributes lets Pydantic read a SQLAlchemy object (user.name) as well as a dict.
class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    email: str | None  # users from before lesson 15 have none yet


# What the chat page sends: one message, 1 to 4000 characters once the spaces around it are
# stripped (a message of only spaces is no message). The limit keeps each call to the LLM,
# which is paid for by the token, to a sane size.
class ChatIn(BaseModel):
    message: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000,
                                              pattern=NO_NUL)]


class ChatOut(BaseModel):
    reply: str


# The first frame on the chat socket: who is there.
class SocketLogin(BaseModel):
    token: str


# One message of the history, read from a models.Message (from_attributes). The id is what
# a client sends back as `before` to get the messages before it.
class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    role: str
    content: str
    created_at: datetime


# bcrypt is slow on purpose and salts every hash, so equal passwords get different hashes.
pwd_context = CryptContext(schemes=["bcrypt"], deprecated="auto")


# Writes the session's changes; a taken email (the UNIQUE constraint) becomes a 409. An UPDATE
# that finds no row (StaleDataError: another request deleted the account after this one's
# token was checked) becomes the 401 of a token whose account is gone.
def commit_or_409(db: Session, action: str) -> None:
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        logger.warning("%s refused: email already registered", action)
        raise HTTPException(status_code=409, detail="Email already registered") from None
    except StaleDataError:
        db.rollback()
        logger.warning("%s refused: the account was deleted meanwhile", action)
        raise not_authenticated("Invalid or expired token: log in again") from None


# A GET request to /api/time runs this function; its return value is sent back as JSON.
# `name` is not part of the path, so FastAPI reads it from the query string:
# /api/time?name=alan. The default None makes it optional.
@app.get("/api/time")
def get_time(name: str | None = None):
    now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    if name:
        return {"message": f"Hi {name}! It's {now}"}
    return {"time": now}


# `db: SessionDep` is all an endpoint writes to get a session: get_db (deps.py) opens it
# and closes it again, however the request ends.
@app.get("/api/test-db", responses=DB_DOWN)
def test_db(db: SessionDep):
    return {"time": db.scalar(select(func.now()))}


# status_code=201 is the answer for "created".
@app.post("/api/users", status_code=201, response_model=UserOut,
          responses={**UNREADABLE, **EMAIL_TAKEN, **DB_DOWN})
def create_user(user: UserCreate, db: SessionDep):
    new_user = models.User(name=user.name, email=user.email, password_hash=pwd_context.hash(user.password))
    db.add(new_user)  # staged: nothing is written yet
    # INSERT ... now the row exists, and new_user has the id Postgres gave it. No db.refresh():
    # new_user keeps its values (expire_on_commit=False), and a refresh would take a connection
    # again and hold it while FastAPI turns new_user into JSON, in another worker thread.
    commit_or_409(db, "signup")
    logger.info("signup: user %s", new_user.id)
    return new_user


# Email and password in, token out. Both failures get the same answer, so nobody can use
# the login to find out which emails have an account.
@app.post("/api/login", responses={**UNREADABLE, **WRONG_LOGIN, **DB_DOWN})
def login(form: LoginForm, db: SessionDep):
    user = db.query(models.User).filter(models.User.email == form.email).first()
    if user is None:
        pwd_context.dummy_verify()  # as slow as a real check: the answer's timing tells nothing
        logger.warning("login failed: no user with that email")
        raise not_authenticated("Wrong email or password")
    if not pwd_context.verify(form.password, user.password_hash):
        logger.warning("login failed: wrong password for user %s", user.id)
        raise not_authenticated("Wrong email or password")
    logger.info("login: user %s", user.id)
    return {"access_token": create_token(user.id), "token_type": "bearer"}


# Who am I? get_current_user (deps.py) has checked the token and loaded the user, or answered
# 401 before this function runs.
@app.get("/api/me", response_model=UserOut, responses={**NOT_LOGGED_IN, **DB_DOWN})
def me(user: CurrentUser):
    return user


# A partial update: only the fields the client sent change. exclude_none leaves out every
# field that is None, whether it was not sent or sent as null (name and email cannot be
# emptied, and a null password means "no new password").
@app.put("/api/me", response_model=UserOut,
         responses={**UNREADABLE, **NOT_LOGGED_IN, **EMAIL_TAKEN, **DB_DOWN})
def update_me(changes: UserUpdate, user: CurrentUser, db: SessionDep):
    fields = changes.model_dump(exclude_none=True)
    changed = ", ".join(fields) or "nothing"  # for the log: which fields, never their values
    if "password" in fields:  # stored as a hash, like at signup, never as given
        user.password_hash = pwd_context.hash(fields.pop("password"))
    for name, value in fields.items():
        setattr(user, name, value)
    # `user` came from this same session (one get_db per request): committing is an UPDATE.
    # It keeps the values just written; no refresh (see signup).
    commit_or_409(db, f"update of user {user.id}")
    logger.info("profile updated: user %s changed %s", user.id, changed)
    return user


# Deleting your own account. The token still decodes afterwards, but get_current_user finds
# no user for it: every later request with it is a 401.
@app.delete("/api/me", status_code=204, responses={**NOT_LOGGED_IN, **DB_DOWN})
def delete_me(user: CurrentUser, db: SessionDep):
    user_id = user.id  # for the log line, once the row is gone
    db.delete(user)
    db.commit()
    logger.info("account deleted: user %s", user_id)


# How many earlier messages go with each question: enough for the coach to follow the
# conversation, few enough to keep every call (paid for by the token) small and quick.
HISTORY_LIMIT = 20


# What the coach is sent: the system prompt, then the latest HISTORY_LIMIT messages of this
# user's conversation in the order they were written, then the new question. All three chat
# endpoints use it: POST /api/chat, /api/chat/stream and /ws/chat.
def conversation(db: Session, user_id: int, question: str) -> list[dict]:
    # The newest HISTORY_LIMIT messages (ORDER BY id DESC LIMIT 20), then turned around: oldest
    # first, as a conversation reads. Ids grow with every INSERT, so they give the exact order,
    # even for two messages stored in the same instant.
    latest = db.scalars(
        select(models.Message)
        .where(models.Message.user_id == user_id)
        .order_by(models.Message.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    return [
        {"role": "system", "content": llm.SYSTEM_PROMPT},
        *({"role": message.role, "content": message.content} for message in reversed(latest)),
        {"role": "user", "content": question},
    ]


# Question and answer in one transaction: both are stored, or neither. The question keeps the
# time it was asked; the answer gets Postgres's now().
def store_exchange(db: Session, user_id: int, question: str, asked_at: datetime, reply: str) -> None:
    db.add_all([
        models.Message(user_id=user_id, role="user", content=question, created_at=asked_at),
        models.Message(user_id=user_id, role="assistant", content=reply),
    ])
    try:
        db.commit()
    except IntegrityError:  # the foreign key refuses: the account was deleted while the coach thought
        db.rollback()
        raise not_authenticated("Invalid or expired token: log in again") from None


# One question to the coach, one answer, with the conversation so far. Question and answer are
# stored once the coach has answered: a question that got no answer is not part of it.
@app.post("/api/chat", response_model=ChatOut,
          responses={**UNREADABLE, **NOT_LOGGED_IN, **LLM_DOWN, **DB_DOWN})
def chat(chat_in: ChatIn, user: CurrentUser, db: SessionDep):
    messages = conversation(db, user.id, chat_in.message)
    asked_at = datetime.now(UTC)
    # The LLM may take many seconds: give the session's connection back to the pool meanwhile.
    # (The session opens a new one when it is used again, below.)
    db.close()
    reply = llm.ask(messages)
    store_exchange(db, user.id, chat_in.message, asked_at, reply)
    logger.info("chat: user %s asked the coach, %s earlier messages sent", user.id, len(messages) - 2)
    return {"reply": reply}


# What a chat stream needs before it starts: who is asking (the same check as every endpoint)
# and what the coach is sent. As a dependency it runs before the stream's first byte, so a bad
# token is still a plain 401 and a database that is down a plain 503, like everywhere else.
# A plain `def`: FastAPI runs it in a worker thread, as SQLAlchemy's calls block. Its session is
# its own and is closed before the answer streams: a Depends(get_db) session would stay open,
# holding one of the pool's connections, until the last token is sent.
# The question comes back with the rest: were the endpoint to take ChatIn as well, FastAPI
# would check the body twice, and a 422 would list each broken rule twice.
def start_chat(
    chat_in: ChatIn, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> tuple[int, str, list[dict]]:
    with SessionLocal() as db:
        user = get_current_user(db, credentials)
        return user.id, chat_in.message, conversation(db, user.id, chat_in.message)


def save_exchange(user_id: int, question: str, asked_at: datetime, reply: str) -> None:
    with SessionLocal() as db:
        store_exchange(db, user_id, question, asked_at, reply)


# The stream's errors come before its first byte, as JSON ({"detail": "..."}) like any other.
# But FastAPI files a `model` in `responses=` under the route's own media type, text/event-stream
# here, which would tell clients to read these errors as events: so each one names its media
# type itself, application/json, with the Problem schema.
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
@app.post("/api/chat/stream", response_class=EventSourceResponse,
          response_description='Events `data: {"token": "..."}`, one per token, then `event: done` '
                               'with `data: {}`; or `event: error` with `data: {"detail": "..."}`',
          responses=STREAM_ERRORS)
async def chat_stream(
    start: Annotated[tuple[int, str, list[dict]], Depends(start_chat)]
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
@app.get("/api/chat/history", response_model=list[MessageOut], responses={**NOT_LOGGED_IN, **DB_DOWN})
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


# --- the chat over a WebSocket ------------------------------------------------------------------

# How long a new socket may take to send its first frame, the token, in seconds. A page sends it
# at once. Without a limit, a socket that never says who it is stays open for as long as its
# client answers pings, and thousands of them hold memory and file descriptors for nothing.
LOGIN_TIMEOUT = float(os.getenv("WS_LOGIN_TIMEOUT") or "10")
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


# The socket's user: the id in a valid token of an account that still exists, or None. Runs in
# a worker thread (the query blocks), with a session closed at once: a socket may stay open for
# hours, and must not hold one of the pool's connections all that time.
def socket_user(token: str | None) -> int | None:
    user_id = decode_token(token) if token else None
    if user_id is None:
        return None
    with SessionLocal() as db:
        return user_id if db.get(models.User, user_id) is not None else None


# The token checked, and its account looked up, now: at login, and again before every answer.
# A socket may stay open for hours, longer than its token is valid, and the account may be
# deleted meanwhile: the socket must not outlive either (1008, the socket's 401).
async def check_token(token: str | None) -> int:
    try:
        user_id = await run_in_threadpool(socket_user, token)
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


# The first frame, {"token": "<jwt>"}, within LOGIN_TIMEOUT seconds: the token and its user's id.
async def log_in(websocket: WebSocket) -> tuple[str, int]:
    try:
        with anyio.fail_after(LOGIN_TIMEOUT):
            frame = await receive_frame(websocket)
    except TimeoutError:
        reason = f"No token within {LOGIN_TIMEOUT:g} s"
        raise CloseSocket(status.WS_1008_POLICY_VIOLATION, reason) from None
    try:
        token = SocketLogin.model_validate_json(frame).token
    except ValidationError:  # not JSON, or no "token" in it
        token = None
    return token, await check_token(token)


def load_conversation(user_id: int, question: str) -> list[dict]:
    with SessionLocal() as db:
        return conversation(db, user_id, question)


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
# for the next question).
async def stream_answer(websocket: WebSocket, user_id: int, question: str) -> dict:
    try:
        messages = await run_in_threadpool(load_conversation, user_id, question)
        asked_at = datetime.now(UTC)
        reply = []
        # aclosing: if sending fails (the page is gone) or this task is cancelled, leaving this
        # block closes the stream to the model at once, and the model stops writing.
        async with aclosing(llm.stream(messages)) as tokens:
            async for token in tokens:
                reply.append(token)
                await websocket.send_json({"type": "token", "content": token})
        await run_in_threadpool(save_exchange, user_id, question, asked_at, "".join(reply))
    except HTTPException as error:  # the model failed (502/504 over HTTP), or the account is gone (401)
        return error_frame(error.detail)
    except DATABASE_DOWN:
        return error_frame("Database unavailable, try again later")
    logger.info("chat socket: user %s asked the coach, %s earlier messages sent", user_id, len(messages) - 2)
    return {"type": "done"}


# The task that answers one question, beside the reading; sets `answered` when it ends, however.
async def answer(websocket: WebSocket, user_id: int, question: str, answered: anyio.Event) -> None:
    try:
        await websocket.send_json(await stream_answer(websocket, user_id, question))
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
# on to its done; more than MOST_REFUSED_IN_A_ROW such frames in a row close the socket. Before
# each answer, check_token again. Ends by raising what ended the socket.
async def read_and_answer(websocket: WebSocket, token: str, user_id: int) -> None:
    async with anyio.create_task_group() as answers:
        answered = anyio.Event()
        answered.set()  # no answer is being written
        refused = 0  # frames in a row that got an error frame (refuse)
        try:
            while True:
                frame = await receive_frame(websocket)
                try:
                    question = ChatIn.model_validate_json(frame).message
                except ValidationError:
                    refused = await refuse(websocket, NOT_A_MESSAGE, refused)
                    continue
                if not answered.is_set():
                    refused = await refuse(websocket, BUSY, refused)
                    continue
                refused = 0
                await check_token(token)  # 1008 when the token has expired or the account is gone
                answered = anyio.Event()
                answers.start_soon(answer, websocket, user_id, question, answered)
        except (WebSocketDisconnect, CloseSocket) as end:
            # Raised again below, outside the group: out of a task group, an exception comes
            # wrapped in an ExceptionGroup.
            ended = end
        answers.cancel_scope.cancel()  # the socket is done, and so is an answer half-way
    raise ended


# One WebSocket per open page, for as long as the page stays open. A browser cannot send an
# Authorization header with a WebSocket, so the page's first frame is {"token": "<jwt>"}:
# the answer is {"type": "ready"}, or the socket is closed with code 1008 (policy violation,
# the socket's 401). Then each {"message": "..."} is answered over the same socket.
# The function runs as long as the socket lives, on the event loop: it only ever waits with
# `await` (AsyncOpenAI, run_in_threadpool), so a hundred open sockets block nobody.
@app.websocket("/ws/chat")
async def chat_socket(websocket: WebSocket):
    await websocket.accept()
    user_id = None
    try:
        token, user_id = await log_in(websocket)
        await websocket.send_json({"type": "ready"})
        await read_and_answer(websocket, token, user_id)
    except CloseSocket as close:
        logger.warning("chat socket closed with %s: user %s, %s", close.code, user_id, close.reason)
        await websocket.close(code=close.code, reason=close.reason)
    except WebSocketDisconnect:  # the page closed the socket (or its network went): nothing to answer
        logger.info("chat socket closed: user %s", user_id)
