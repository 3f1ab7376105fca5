import os
from datetime import datetime
from typing import Annotated

from dotenv import load_dotenv
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from passlib.context import CryptContext
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

import models
from auth import create_token, decode_token
from database import SessionLocal

# Copy the settings from the .env file into the environment (variables already set win).
load_dotenv()


# The application object: `uvicorn main:app` means "the app in main.py".
# No lifespan any more: the tables come from Alembic migrations (alembic upgrade head),
# not from create_all, so the app never changes the schema behind Alembic's back.
app = FastAPI()

# A browser lets a page call an API on another origin (scheme + host + port) only if the API
# says that origin is allowed. The pages live on http://localhost:8001 (also reached as
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


# bcrypt reads at most 72 bytes (not characters: "é" is 2 bytes, an emoji 4) and refuses
# longer input. Saying so here gives a clear 422 instead of a crash or a silently cut password.
# A plain function, so that signup and login share it.
def fits_bcrypt(password: str) -> str:
    if len(password.encode("utf-8")) > 72:
        raise ValueError("password must be at most 72 bytes long (UTF-8)")
    return password


# Emails are compared without regard to case: we store and look them up in lower case.
# No \s in the pattern: Python, Pydantic and the JavaScript rules of the OpenAPI document
# disagree on what \s matches (U+0085, U+FEFF). Spelled out, all three agree.
Email = Annotated[str, Field(max_length=254,
                             pattern=r"^[^@ \t\r\n\x00]+@[^@ \t\r\n\x00]+\.[^@ \t\r\n\x00]+$"),
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


# What a signup sends: the profile plus a password.
class UserCreate(User):
    password: Password


# What a login sends. A wrong password is a 401; one that no account can have (too short for
# signup, too long for bcrypt) is a 422, like any other broken rule.
class LoginForm(BaseModel):
    email: Email
    password: Password


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

# Reads "Authorization: Bearer <token>" from a request, and tells the OpenAPI schema that the
# API takes such tokens: that is what puts the Authorize button on /docs. auto_error=False:
# a missing header gives None here, and we answer it with the same 401 as a bad token.
bearer = HTTPBearer(auto_error=False)


# 401 Unauthorized: "say who you are first". The WWW-Authenticate header tells the client
# which kind of credentials to send.
def not_authenticated(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


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
# `with SessionLocal() as db` closes the session however the block ends (return, 409,
# error), which hands its connection back to the pool: no request can leak one.
@app.post("/api/users", status_code=201, response_model=UserOut,
          responses={**UNREADABLE, **EMAIL_TAKEN, **DB_DOWN})
def create_user(user: UserCreate):
    with SessionLocal() as db:
        new_user = models.User(
            name=user.name, email=user.email, password_hash=pwd_context.hash(user.password)
        )
        db.add(new_user)  # staged: nothing is written yet
        try:
            db.commit()  # INSERT ... now the row exists
        except IntegrityError:  # the UNIQUE constraint on email: Postgres already has it
            raise HTTPException(status_code=409, detail="Email already registered") from None
        db.refresh(new_user)  # reload its values (the commit expired them); the id came with the INSERT
        return new_user


# Email and password in, token out. Both failures get the same answer, so nobody can use
# the login to find out which emails have an account.
@app.post("/api/login", responses={**UNREADABLE, **WRONG_LOGIN, **DB_DOWN})
def login(form: LoginForm):
    with SessionLocal() as db:
        user = db.query(models.User).filter(models.User.email == form.email).first()
    if user is None:
        pwd_context.dummy_verify()  # as slow as a real check: the answer's timing tells nothing
        raise not_authenticated("Wrong email or password")
    if not pwd_context.verify(form.password, user.password_hash):
        raise not_authenticated("Wrong email or password")
    return {"access_token": create_token(user.id), "token_type": "bearer"}


# Who am I? The token says which user; the database says who that is now.
# Depends(bearer) asks FastAPI to run `bearer` on the request first and pass in what it found
# (lesson 17 explains Depends). Every way a token can be wrong ends in the same 401.
@app.get("/api/me", response_model=UserOut, responses={**NOT_LOGGED_IN, **DB_DOWN})
def me(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]):
    if credentials is None:
        raise not_authenticated("Not logged in")
    user_id = decode_token(credentials.credentials)
    if user_id is None:
        raise not_authenticated("Invalid or expired token: log in again")
    with SessionLocal() as db:
        user = db.get(models.User, user_id)  # by primary key; None if not there
    if user is None:  # a valid token for an account deleted since
        raise not_authenticated("Invalid or expired token: log in again")
    return user
