import logging
import os
import pathlib
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Annotated, Literal

import psycopg2
from dotenv import load_dotenv
from fastapi import FastAPI, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from passlib.context import CryptContext
from pydantic import BaseModel, Field, field_validator

# Copy the settings from the .env file into the environment (variables already set win).
load_dotenv()
logger = logging.getLogger("uvicorn.error")
SCHEMA = pathlib.Path(__file__).parent / "schema.sql"


def get_connection():
    """Opens a new connection to Postgres with the settings from the environment."""
    return psycopg2.connect(
        host=os.getenv("DB_HOST", "localhost"),
        port=os.getenv("DB_PORT", "5433"),
        dbname=os.getenv("DB_NAME"),
        user=os.getenv("DB_USER"),
        password=os.getenv("DB_PASSWORD"),
        connect_timeout=3,
    )


@contextmanager
def db_cursor() -> Iterator:
    """A cursor on a fresh connection: commits when the block succeeds, always closes both."""
    conn = get_connection()
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()  # without it, an INSERT/UPDATE/DELETE would be thrown away
    finally:
        conn.close()  # always give the connection back, even when the query failed


def create_tables() -> None:
    with db_cursor() as cur:
        cur.execute(SCHEMA.read_text())


# Code before `yield` runs once when the app starts, code after it when the app stops.
@asynccontextmanager
async def lifespan(app: FastAPI):
    try:
        create_tables()
    except psycopg2.OperationalError:
        logger.warning("Database unavailable at startup: start it (make db), then restart the app")
    yield


# The application object: `uvicorn main:app` means "the app in main.py".
app = FastAPI(lifespan=lifespan)


# When Postgres cannot be reached, psycopg2 raises OperationalError. This handler turns it
# into a short 503 "Service Unavailable" for any endpoint, instead of a 500 and a traceback.
@app.exception_handler(psycopg2.OperationalError)
def database_unavailable(request: Request, exc: psycopg2.OperationalError):
    return JSONResponse(status_code=503, content={"detail": "Database unavailable, try again later"})


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


# The model describes a valid profile. FastAPI checks every request body against it and
# answers 422, with a `detail` naming each broken rule, before our function even runs.
class User(BaseModel):
    name: str = Field(min_length=2, max_length=10, pattern=NO_NUL)
    role: Literal["developer", "designer", "product-manager", "tester"]
    place: str = Field(min_length=2, max_length=100, pattern=NO_NUL)  # every text has a limit: no 10 MB place


# An error answer, {"detail": "..."}. Listing the errors an endpoint can give in `responses=`
# puts them in the OpenAPI document (/docs) beside the success; FastAPI lists 422 by itself.
class Problem(BaseModel):
    detail: str


NOT_FOUND = {404: {"model": Problem, "description": "No user has this id"}}
UNREADABLE = {400: {"model": Problem, "description": "The body could not be read (not UTF-8)"}}
DB_DOWN = {503: {"model": Problem, "description": "The database cannot be reached"}}


# What a signup sends: the profile plus a password.
class UserCreate(User):
    password: str = Field(min_length=6, max_length=72, pattern=NO_NUL,
                          description="6 to 72 characters, and at most 72 bytes in UTF-8 (bcrypt's limit)")

    # bcrypt reads at most 72 bytes (not characters: "é" is 2 bytes, an emoji 4) and refuses
    # longer input. Saying so here gives a clear 422 instead of a crash or a silently cut password.
    @field_validator("password")
    @classmethod
    def fits_bcrypt(cls, password: str) -> str:
        if len(password.encode("utf-8")) > 72:
            raise ValueError("password must be at most 72 bytes long (UTF-8)")
        return password


# What the API sends back: never the password, never its hash. `response_model=UserOut`
# filters every answer through this model, whatever the function returns.
class UserOut(User):
    id: int


# bcrypt is slow on purpose and salts every hash, so equal passwords get different hashes.
pwd_context = CryptContext(schemes=["bcrypt"], deprecated="auto")


# SERIAL ids are 4-byte integers: anything outside 1..2147483647 cannot be an id (422).
UserId = Annotated[int, Path(ge=1, le=2_147_483_647)]


def as_profile(row) -> dict:
    user_id, name, role, place = row
    return {"id": user_id, "name": name, "role": role, "place": place}


# A GET request to /api/time runs this function; its return value is sent back as JSON.
# `name` is not part of the path, so FastAPI reads it from the query string:
# /api/time?name=alan. The default None makes it optional.
@app.get("/api/time")
def get_time(name: str | None = None):
    now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    if name:
        return {"message": f"Hi {name}! It's {now}"}
    return {"time": now}


@app.get("/api/test-db", responses=DB_DOWN)
def test_db():
    with db_cursor() as cur:
        cur.execute("SELECT NOW();")
        return {"time": cur.fetchone()[0]}


# status_code=201 is the answer for "created".
# psycopg2 fills in the %s placeholders itself, quoting and escaping each value, so a name like
# "x'); DROP TABLE users; --" is stored as-is and never runs as SQL.
@app.post("/api/users", status_code=201, responses={**UNREADABLE, **DB_DOWN})
def create_user(user: UserCreate):
    password_hash = pwd_context.hash(user.password)
    with db_cursor() as cur:
        cur.execute(
            "INSERT INTO users (name, role, place, password_hash) VALUES (%s, %s, %s, %s) RETURNING id",
            (user.name, user.role, user.place, password_hash),
        )
        user_id = cur.fetchone()[0]
    return {"id": user_id, "message": "User profile saved!"}


# {user_id} in the path becomes the argument; UserId converts "1" to 1 and checks the range.
@app.get("/api/users/{user_id}", response_model=UserOut, responses={**NOT_FOUND, **DB_DOWN})
def get_user(user_id: UserId):
    with db_cursor() as cur:
        cur.execute("SELECT id, name, role, place FROM users WHERE id = %s", (user_id,))
        row = cur.fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="User not found")
    return as_profile(row)


# PUT replaces the profile of an existing user.
@app.put("/api/users/{user_id}", response_model=UserOut, responses={**NOT_FOUND, **UNREADABLE, **DB_DOWN})
def update_user(user_id: UserId, user: User):
    with db_cursor() as cur:
        cur.execute(
            "UPDATE users SET name = %s, role = %s, place = %s WHERE id = %s "
            "RETURNING id, name, role, place",
            (user.name, user.role, user.place, user_id),
        )
        row = cur.fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="User not found")
    return as_profile(row)


# The id of a deleted user is never handed out again: the SERIAL sequence only counts up.
@app.delete("/api/users/{user_id}", responses={**NOT_FOUND, **DB_DOWN})
def delete_user(user_id: UserId):
    with db_cursor() as cur:
        cur.execute("DELETE FROM users WHERE id = %s RETURNING id", (user_id,))
        row = cur.fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="User not found")
    return {"message": "User deleted"}
