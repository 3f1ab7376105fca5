"""Two questions whoever runs the app asks it, again and again: are you alive, are you ready?

Docker's HEALTHCHECK (/healthz: compose starts the proxy once it passes) and an orchestrator
(Kubernetes, a cloud's load balancer) ask them every few seconds, and act on the answer:
  /healthz  alive: the process answers. No: restart it.
  /readyz   ready: it can serve real requests, the database answers and has the schema this
            code expects. No: send no traffic here for now (no restart: the database, not the
            app, has to come back).
"""

from functools import cache
from pathlib import Path

import anyio
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.db import engine
from app.schemas import Problem

# alembic.ini beside app/: the migrations this code was written with.
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"
SCHEMA_BEHIND = "Database schema is not at the latest migration: run alembic upgrade head"
DATABASE_UNAVAILABLE = "Database unavailable, try again later"  # main.py's 503, word for word
NOT_READY = {503: {"model": Problem, "description": "Not ready: the database is down or not migrated"}}

router = APIRouter(tags=["health"])


# The newest revision in alembic/versions/, read from the files once: they do not change while
# the app runs.
@cache
def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(Config(ALEMBIC_INI)).get_heads())


# async def and no database: it answers even when every worker thread is busy, so a slow
# database never gets a healthy app restarted.
@router.get("/healthz")
async def healthz():
    return {"status": "ok"}


# A probe that waits longer than this is told no: whoever asks wants an answer, not a wait.
READY_WITHIN = 2  # seconds


# The schema's revision, read in a worker thread (the calls block). A lock held on
# alembic_version (a migration under way, say) makes the read wait: statement_timeout lets the
# database give up on it, so neither the thread nor the pool's connection stays taken.
def current_revisions() -> set[str]:
    with engine.connect() as connection:
        connection.execute(text(f"SET LOCAL statement_timeout = {READY_WITHIN * 1000}"))
        return set(MigrationContext.configure(connection).get_current_heads())


# A database that does not answer raises OperationalError, which main.py's handler turns into a
# 503 "Database unavailable, try again later", like for every endpoint; so does a read that
# took longer than READY_WITHIN. One that never comes back at all (a network that drops every
# packet, a machine paused) is a 503 after READY_WITHIN + 1 seconds: the endpoint stops
# waiting for its thread (abandon_on_cancel), which TCP frees later. A database that answers
# but whose alembic_version is not the head of our migrations (`migrate` has not run yet, or
# the code is older than the schema) is a 503 too: these tables are not the ones the code needs.
@router.get("/readyz", responses=NOT_READY)
async def readyz():
    try:
        with anyio.fail_after(READY_WITHIN + 1):
            current = await anyio.to_thread.run_sync(current_revisions, abandon_on_cancel=True)
    except TimeoutError:
        return JSONResponse(status_code=503, content={"detail": DATABASE_UNAVAILABLE})
    if current != head_revisions():
        return JSONResponse(status_code=503, content={"detail": SCHEMA_BEHIND})
    return {"status": "ready"}
