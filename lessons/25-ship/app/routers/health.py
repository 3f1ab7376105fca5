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

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.db import engine
from app.schemas import Problem

# alembic.ini beside app/: the migrations this code was written with.
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"
SCHEMA_BEHIND = "Database schema is not at the latest migration: run alembic upgrade head"
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


# A database that does not answer raises OperationalError, which main.py's handler turns into a
# 503 "Database unavailable, try again later", like for every endpoint. A database that answers
# but whose alembic_version is not the head of our migrations (`migrate` has not run yet, or
# the code is older than the schema) is a 503 too: these tables are not the ones the code needs.
@router.get("/readyz", responses=NOT_READY)
def readyz():
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current != head_revisions():
        return JSONResponse(status_code=503, content={"detail": SCHEMA_BEHIND})
    return {"status": "ready"}
