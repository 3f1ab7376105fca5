import os
from datetime import datetime
from itertools import count
from typing import Literal

import psycopg2
from dotenv import load_dotenv
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

# Copy the settings from the .env file into the environment (variables already set win).
load_dotenv()

# The application object: `uvicorn main:app` means "the app in main.py".
app = FastAPI()


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


# The model describes a valid profile. FastAPI checks every request body against it and
# answers 422, with a `detail` naming each broken rule, before our function even runs.
class User(BaseModel):
    name: str = Field(min_length=2, max_length=10)
    role: Literal["developer", "designer", "product-manager", "tester"]
    place: str = Field(min_length=2, max_length=100)  # every text has a limit: no 10 MB place


# An error answer, {"detail": "..."}. Listing the errors an endpoint can give in `responses=`
# puts them in the OpenAPI document (/docs) beside the success; FastAPI lists 422 by itself.
class Problem(BaseModel):
    detail: str


NOT_FOUND = {404: {"model": Problem, "description": "No user has this id"}}
UNREADABLE = {400: {"model": Problem, "description": "The body could not be read (not UTF-8)"}}
DB_DOWN = {503: {"model": Problem, "description": "The database cannot be reached"}}


# The users live in memory: a dict from id to profile. They vanish when the server stops.
users: dict[int, dict] = {}
# Hands out 1, 2, 3, ...: every new user gets a number no one has had before.
next_id = count(1)


def get_profile(user_id: int) -> dict:
    """The stored profile, or a 404 that FastAPI turns into {"detail": "User not found"}."""
    if user_id not in users:
        raise HTTPException(status_code=404, detail="User not found")
    return users[user_id]


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
    conn = get_connection()
    try:
        cur = conn.cursor()
        cur.execute("SELECT NOW();")
        now = cur.fetchone()[0]
        cur.close()
    finally:
        conn.close()  # always give the connection back, even when the query failed
    return {"time": now}


# status_code=201 is the answer for "created".
@app.post("/api/users", status_code=201, responses=UNREADABLE)
def create_user(user: User):
    user_id = next(next_id)
    users[user_id] = user.model_dump()
    return {"id": user_id, "message": "User profile saved!"}


# {user_id} in the path becomes the argument; the `int` annotation converts "1" to 1.
@app.get("/api/users/{user_id}", responses=NOT_FOUND)
def get_user(user_id: int):
    return {"id": user_id, **get_profile(user_id)}


# PUT replaces the profile of an existing user.
@app.put("/api/users/{user_id}", responses={**NOT_FOUND, **UNREADABLE})
def update_user(user_id: int, user: User):
    profile = get_profile(user_id)
    profile.update(user.model_dump())
    return {"id": user_id, **profile}


# The id of a deleted user is never handed out again: next_id only counts up.
@app.delete("/api/users/{user_id}", responses=NOT_FOUND)
def delete_user(user_id: int):
    get_profile(user_id)
    del users[user_id]
    return {"message": "User deleted"}
