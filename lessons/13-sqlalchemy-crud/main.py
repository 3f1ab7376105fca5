import logging
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from passlib.context import CryptContext
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import models
from database import SessionLocal, engine

logger = logging.getLogger("uvicorn.error")


# Code before `yield` runs once when the app starts, code after it when the app stops.
# create_all creates the tables of every model that are missing and leaves existing ones
# (and their rows) alone: the table from lesson 11 is used as it is.
@asynccontextmanager
async def lifespan(app: FastAPI):
    try:
        models.Base.metadata.create_all(engine)
    except OperationalError:
        logger.warning("Database unavailable at startup: start it (make db), then restart the app")
    yield


# The application object: `uvicorn main:app` means "the app in main.py".
app = FastAPI(lifespan=lifespan)


# When Postgres cannot be reached, SQLAlchemy raises OperationalError. This handler turns it
# into a short 503 "Service Unavailable" for any endpoint, instead of a 500 and a traceback.
@app.exception_handler(OperationalError)
def database_unavailable(request: Request, exc: OperationalError):
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
# from_attributes lets Pydantic read a SQLAlchemy object (user.name) as well as a dict.
class UserOut(User):
    model_config = ConfigDict(from_attributes=True)

    id: int


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
            name=user.name, role=user.role, place=user.place,
            password_hash=pwd_context.hash(user.password),
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
        stored.name, stored.role, stored.place = user.name, user.role, user.place
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
