"""Dependencies: what an endpoint needs before it can run, written once, used by many.

An endpoint asks for one by naming it in its parameters, `db: SessionDep` or
`user: CurrentUser`; FastAPI runs the dependency first and passes in what it returns. Within
one request each dependency runs once: an endpoint that asks for both gets the same session
that get_current_user used.
"""

import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.requests import HTTPConnection
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app import models
from app.config import Settings, get_settings
from app.db import SessionLocal
from app.llm import LLM
from app.security import decode_token

logger = logging.getLogger(__name__)

# `settings: SettingsDep`: the app's settings (config.py), read once and shared.
SettingsDep = Annotated[Settings, Depends(get_settings)]


# One session per request. FastAPI runs the code up to `yield`, hands the session to the
# endpoint, and runs the `finally` once the endpoint is done, however it ended (an answer, a
# 4xx, an error): the session is always closed and its connection goes back to the pool.
def get_db() -> Iterator[Session]:
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


# Annotated[type, Depends(...)]: "a Session, and FastAPI gets it from get_db". Written once
# here, so that endpoints only say `db: SessionDep`.
SessionDep = Annotated[Session, Depends(get_db)]


# The LLM that main.py's lifespan made when the app started. HTTPConnection is what a request
# and a WebSocket have in common: the HTTP endpoints and the socket use this one dependency.
def get_llm(connection: HTTPConnection) -> LLM:
    return connection.app.state.llm


LLMDep = Annotated[LLM, Depends(get_llm)]

# Reads "Authorization: Bearer <token>" from a request, and tells the OpenAPI schema that the
# API takes such tokens: that is what puts the Authorize button on /docs. auto_error=False:
# a missing header gives None here, and we answer it with the same 401 as a bad token.
bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


# What a token that no longer holds is told: forged, expired, revoked, or its account gone
# (found so at the start of a request, or half-way through it).
ACCOUNT_GONE = "Invalid or expired token: log in again"


# 401 Unauthorized: "say who you are first". The WWW-Authenticate header tells the client
# which kind of credentials to send.
def not_authenticated(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


# The one way to know who is there, for every endpoint and the socket: the token says which
# user; the database says who that is now, and whether the token still holds. None for a token
# that is forged, expired or garbled, of an account deleted since, of an older token version
# (a new password or email, or "log out everywhere" since), or logged out (its jti revoked).
def authenticate(db: Session, token: str, settings: Settings) -> models.User | None:
    claims = decode_token(token, settings)
    if claims is None:
        return None
    user = db.get(models.User, claims.user_id)  # by primary key
    if user is None or user.token_version != claims.version:
        return None
    if db.get(models.RevokedToken, claims.jti) is not None:
        return None
    return user


# Who is calling? A dependency may itself depend on others: here on bearer (the header),
# get_db (the session) and get_settings (the secret). Every way a token can be wrong ends in
# the same 401.
def get_current_user(db: SessionDep, settings: SettingsDep, credentials: Credentials) -> models.User:
    if credentials is None:
        raise not_authenticated("Not logged in")
    user = authenticate(db, credentials.credentials, settings)
    # End the read now: the session gives its connection back to the pool (the session and
    # `user` stay usable: expire_on_commit=False in db.py). The endpoint runs next, in a
    # worker thread it may have to wait for, or on the event loop waiting for something else
    # (the LLM, its turn to hash): there are 40 threads and 15 connections. Were each request
    # to keep its connection while it waits, a hundred at once would deadlock: every thread
    # waiting for a connection, every connection held by a request waiting for a thread,
    # until the pool gives up after 30 seconds.
    db.commit()
    if user is None:
        logger.warning("token refused: invalid, expired, revoked, or its user is gone")
        raise not_authenticated(ACCOUNT_GONE)
    return user


# `user: CurrentUser` in an endpoint: only a logged-in caller gets in, and the endpoint gets
# their row from the database.
CurrentUser = Annotated[models.User, Depends(get_current_user)]


# Where a request or socket comes from, for the budgets counted per client address. uvicorn
# puts here the address in X-Forwarded-For when the connection comes from an address it trusts
# (--forwarded-allow-ips, by default 127.0.0.1 only): right behind a proxy on the same machine
# that writes the header itself (lesson 25's nginx). With nothing in front, a program on the
# same machine could name any address that way: there, run uvicorn with --no-proxy-headers.
def client_address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"
