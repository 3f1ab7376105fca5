"""The application: made here from the parts in the other modules. `uvicorn app.main:app` runs it."""

import logging
from contextlib import asynccontextmanager

import anyio
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
from app.routers import auth, chat, users, utils, ws
from app.schemas import TOO_LARGE
from app.security_headers import SecurityHeaders

# Log lines go to the terminal, with time, level, process id and where they come from:
#   2026-11-28 11:02:03,456 INFO [4242] app.routers.users: signup: user 7
# The process id tells apart the lines of several workers (uvicorn --workers 2) in one terminal.
# Never log a password, a hash or a token: logs are copied, kept and read far more widely
# than the database. User ids and event names say what happened without giving anything away.
logging.basicConfig(level=logging.INFO,
                    format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")

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
# Outermost, so that every answer carries the header, a 413 or a 429 too: else the page could
# not read them. expose_headers: a page's script may read Retry-After (by default it sees only
# a few plain headers such as Content-Type).
app.add_middleware(
    CORSMiddleware,
    allow_origins=settings.CORS_ORIGINS,
    allow_methods=["*"],
    allow_headers=["*"],
    expose_headers=["Retry-After"],
)


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
