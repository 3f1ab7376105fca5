"""The application: made here from the parts in the other modules. `uvicorn app.main:app` runs it."""

import re
from contextlib import asynccontextmanager

import anyio
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import limits
from app.body_limit import LimitBody
from app.config import get_settings
from app.llm import LLM
from app.logs import configure_logging
from app.routers import auth, chat, health, users, utils, ws
from app.schemas import TOO_LARGE
from app.security_headers import SecurityHeaders

# Log lines go to stdout as JSON, one object per line, with the worker's pid and the request's id
# (logs.py): with several workers behind a proxy, that is how the lines of one request are found.
# Never log a password, a hash or a token: logs are copied, kept and read far more widely
# than the database. User ids and event names say what happened without giving anything away.
configure_logging()

# Read (and checked) here, as the app is made: a bad setting stops the import with one line.
settings = get_settings()


# What runs once when the app starts (before `yield`) and once when it stops (after it).
# The LLM's client keeps connections open: made once here, shared by every request through
# the get_llm dependency, and closed when the app stops. Beside the app, for as long as it
# runs, a task deletes the limits' rows that no longer matter, every hour. (The tables come
# from Alembic migrations, alembic upgrade head, not from the app.)
@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.llm = LLM(settings)
    async with anyio.create_task_group() as background:
        background.start_soon(limits.clean_up_every, 60 * 60)
        yield
        background.cancel_scope.cancel()
    await app.state.llm.close()


# responses: what every operation may answer, in /docs (the body limit below runs before any).
app = FastAPI(title="AI Interview Coach", lifespan=lifespan, responses=TOO_LARGE)

# Middleware wraps the app like layers: the one added last is the outermost, the first to see
# a request and the last to see its answer.
# A request body larger than MAX_BODY_BYTES gets a 413 before it is read (body_limit.py), so
# before any dependency runs and before the token is even looked at: nobody, logged in or not,
# can make the app hold 300 MB of JSON in memory.
app.add_middleware(LimitBody, max_bytes=settings.MAX_BODY_BYTES)
# Security headers on every answer (security_headers.py), the 413 too.
app.add_middleware(SecurityHeaders)

# A browser lets a page call an API on another origin (scheme + host + port) only if the API
# says that origin is allowed: the pages' origins, CORS_ORIGINS (config.py), and only those.
# (HTTP only: browsers do not ask CORS before a WebSocket; the token in /ws/chat's first frame
# is what keeps other sites out there.)
# Around all the rest but the request ids (below), so that every answer carries the header, a
# 413 or a 429 too: else the page could not read them. expose_headers: a page's script may read
# Retry-After and X-Request-ID (by default it sees only a few plain headers such as Content-Type).
app.add_middleware(
    CORSMiddleware,
    allow_origins=settings.CORS_ORIGINS,
    allow_methods=["*"],
    allow_headers=["*"],
    expose_headers=["Retry-After", "X-Request-ID"],
)

# An id as nginx makes them ($request_id: 32 hex digits) or a UUID in its usual dashed form. The
# library's default takes whatever uuid.UUID() reads, which skips braces, "urn:uuid:" and any
# number of dashes: a header of 8 MB of dashes and one UUID was kept, sent back and logged.
REQUEST_ID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", re.IGNORECASE)


def is_request_id(value: str) -> bool:
    return REQUEST_ID.fullmatch(value) is not None


# Every request gets an id: the X-Request-ID it came with (nginx sends one), or a new one. It is
# sent back in the answer's X-Request-ID and put on every log line written while the request
# is served (logs.py). Added last, so it wraps everything else, CORS answers included.
app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID", validator=is_request_id)


# When Postgres cannot be reached, SQLAlchemy raises OperationalError. This handler turns it
# into a short 503 "Service Unavailable" for any endpoint, instead of a 500 and a traceback.
@app.exception_handler(OperationalError)
@app.exception_handler(PoolTimeout)  # no free connection in the pool within 30 s: as good as down
def database_unavailable(request: Request, exc: OperationalError):
    return JSONResponse(status_code=503, content={"detail": "Database unavailable, try again later"})


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


# Each router brings its endpoints; prefix puts them under /api (the socket stays at /ws/chat),
# and each router's tags group its endpoints on /docs.
app.include_router(utils.router, prefix="/api")
app.include_router(users.router, prefix="/api")
app.include_router(auth.router, prefix="/api")
app.include_router(chat.router, prefix="/api")
app.include_router(ws.router)
# /healthz and /readyz, at the top: what Docker's HEALTHCHECK and an orchestrator ask.
app.include_router(health.router)
