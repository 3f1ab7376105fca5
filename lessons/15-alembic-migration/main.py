import os
from datetime import datetime
from typing import Annotated

from dotenv import load_dotenv
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from passlib.context import CryptContext
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

import models
from database import SessionLocal

# Copy the settings from the .env file into the environment (variables already set win).
load_dotenv()


# The application object: `uvicorn main:app` means "the app in main.py".
# No lifespan any more: the tables come from Alembic migrations (alembic upgrade head),
# not from create_all, so the app never changes the schema behind Alembic's back.
app = FastAPI()

# A browser lets a page call an API on another origin (scheme + host + port) only if the API
# says that origin is allowed. The signup page lives on http://localhost:8001 (also reached as
# http://127.0.0.1:8001, a different origin) and the API on :8000, so the API lists those two
# origins, and only those: any other site stays blocked.
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


# Postgres cannot store the NUL character in text: refuse it up front (422), not later (500).
NO_NUL = r"^[^\x00]*$"


# The model describes a valid profile. FastAPI checks every request body against it and
# answers 422, with a `detail` naming each broken rule, before our function even runs.
# A profile is now a name and an email; role and place are gone (see models.py and the
# migration that dropped them).
class User(BaseModel):
    name: str = Field(min_length=2, max_length=10, pattern=NO_NUL)
    # No \s in the pattern: Python, Pydantic and the JavaScript rules of the OpenAPI document
    # disagree on what \s matches (U+0085, U+FEFF). Spelled out, all three agree.
    email: str = Field(max_length=254, pattern=r"^[^@ \t\r\n\x00]+@[^@ \t\r\n\x00]+\.[^@ \t\r\n\x00]+$")


# An error answer, {"detail": "..."}. Listing the errors an endpoint can give in `responses=`
# puts them in the OpenAPI document (/docs) beside the success; FastAPI lists 422 by itself.
class Problem(BaseModel):
    detail: str


NOT_FOUND = {404: {"model": Problem, "description": "No user has this id"}}
UNREADABLE = {400: {"model": Problem, "description": "The body could not be read (not UTF-8)"}}
DB_DOWN = {503: {"model": Problem, "description": "The database cannot be reached, or is not migrated"}}


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
# from_attributes lets Pydantic read a SQLAlchemy object (user.name) as well as a dict.
class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    email: str | None  # users from before lesson 15 have none yet


# bcrypt is slow on purpose and salts every hash, so equal passwords get different hashes.
pwd_context = CryptContext(schemes=["bcrypt"], deprecated="auto")

# SERIAL ids are 4-byte integers: anything outside 1..2147483647 cannot be an id (422).
UserId = Annotated[int, Path(ge=1, le=2_147_483_647)]


def find_user(db: Session, user_id: int) -> models.User:
    user = db.query(models.User).filter(models.User.id == user_id).first()  # the row, or None
    if user is None:
        raise HTTPException(status_code=404, detail="User not found")
    return user


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
    with SessionLocal() as db:
        return {"time": db.scalar(select(func.now()))}


# status_code=201 is the answer for "created".
# `with SessionLocal() as db` closes the session however the block ends (return, 404,
# error), which hands its connection back to the pool: no request can leak one.
@app.post("/api/users", status_code=201, responses={**UNREADABLE, **DB_DOWN})
def create_user(user: UserCreate):
    with SessionLocal() as db:
        new_user = models.User(
            name=user.name, email=user.email, password_hash=pwd_context.hash(user.password)
        )
        db.add(new_user)  # staged: nothing is written yet
        db.commit()  # INSERT ... now the row exists
        db.refresh(new_user)  # reload its values (the commit expired them); the id came with the INSERT
        return {"id": new_user.id, "message": "User profile saved!"}


# One page of users, in id order: ?limit=50&offset=100 skips the first 100 and answers the next
# 50. Query() adds the bounds (checked, 422 otherwise, and shown in /docs), so no request can ask
# for the whole table at once, however large it grows.
@app.get("/api/users", response_model=list[UserOut], responses=DB_DOWN)
def list_users(
    limit: Annotated[int, Query(ge=1, le=100, description="How many users to answer, at most 100")] = 50,
    offset: Annotated[int, Query(ge=0, le=2_147_483_647, description="How many users to skip first")] = 0,
):
    with SessionLocal() as db:
        return db.query(models.User).order_by(models.User.id).offset(offset).limit(limit).all()


# {user_id} in the path becomes the argument; UserId converts "1" to 1 and checks the range.
# Returning the ORM object is enough: response_model=UserOut reads its attributes.
@app.get("/api/users/{user_id}", response_model=UserOut, responses={**NOT_FOUND, **DB_DOWN})
def get_user(user_id: UserId):
    with SessionLocal() as db:
        return find_user(db, user_id)


# PUT replaces the profile of an existing user.
# Changing attributes of a loaded object and committing turns into an UPDATE.
@app.put("/api/users/{user_id}", response_model=UserOut, responses={**NOT_FOUND, **UNREADABLE, **DB_DOWN})
def update_user(user_id: UserId, user: User):
    with SessionLocal() as db:
        stored = find_user(db, user_id)
        stored.name, stored.email = user.name, user.email
        db.commit()
        db.refresh(stored)
        return stored


# The id of a deleted user is never handed out again: the SERIAL sequence only counts up.
# 204 No Content: the user is gone and there is nothing to send back.
@app.delete("/api/users/{user_id}", status_code=204, responses={**NOT_FOUND, **DB_DOWN})
def delete_user(user_id: UserId):
    with SessionLocal() as db:
        db.delete(find_user(db, user_id))
        db.commit()
