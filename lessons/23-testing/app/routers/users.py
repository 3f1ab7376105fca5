"""Accounts: signing up, and the logged-in user's own profile (/api/me)."""

import logging

from fastapi import APIRouter, HTTPException
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app import models
from app.deps import CurrentUser, SessionDep, not_authenticated
from app.schemas import DB_DOWN, EMAIL_TAKEN, NOT_LOGGED_IN, UNREADABLE, UserCreate, UserOut, UserUpdate
from app.security import pwd_context

logger = logging.getLogger(__name__)

# Every endpoint here may find the database down: said once, for all of them, in /docs.
router = APIRouter(tags=["users"], responses=DB_DOWN)


# Writes the session's changes; a taken email (the UNIQUE constraint) becomes a 409. An UPDATE
# that finds no row (StaleDataError: another request deleted the account after this one's
# token was checked) becomes the 401 of a token whose account is gone.
def commit_or_409(db: Session, action: str) -> None:
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        logger.warning("%s refused: email already registered", action)
        raise HTTPException(status_code=409, detail="Email already registered") from None
    except StaleDataError:
        db.rollback()
        logger.warning("%s refused: the account was deleted meanwhile", action)
        raise not_authenticated("Invalid or expired token: log in again") from None


# status_code=201 is the answer for "created".
@router.post("/users", status_code=201, response_model=UserOut, responses={**UNREADABLE, **EMAIL_TAKEN})
def create_user(user: UserCreate, db: SessionDep):
    new_user = models.User(name=user.name, email=user.email, password_hash=pwd_context.hash(user.password))
    db.add(new_user)  # staged: nothing is written yet
    # INSERT ... now the row exists, and new_user has the id Postgres gave it. No db.refresh():
    # new_user keeps its values (expire_on_commit=False), and a refresh would take a connection
    # again and hold it while FastAPI turns new_user into JSON, in another worker thread.
    commit_or_409(db, "signup")
    logger.info("signup: user %s", new_user.id)
    return new_user


# Who am I? get_current_user (deps.py) has checked the token and loaded the user, or answered
# 401 before this function runs.
@router.get("/me", response_model=UserOut, responses=NOT_LOGGED_IN)
def me(user: CurrentUser):
    return user


# A partial update: only the fields the client sent change. exclude_none leaves out every
# field that is None, whether it was not sent or sent as null (name and email cannot be
# emptied, and a null password means "no new password").
@router.put("/me", response_model=UserOut, responses={**UNREADABLE, **NOT_LOGGED_IN, **EMAIL_TAKEN})
def update_me(changes: UserUpdate, user: CurrentUser, db: SessionDep):
    fields = changes.model_dump(exclude_none=True)
    changed = ", ".join(fields) or "nothing"  # for the log: which fields, never their values
    if "password" in fields:  # stored as a hash, like at signup, never as given
        user.password_hash = pwd_context.hash(fields.pop("password"))
    for name, value in fields.items():
        setattr(user, name, value)
    # `user` came from this same session (one get_db per request): committing is an UPDATE.
    # It keeps the values just written; no refresh (see signup).
    commit_or_409(db, f"update of user {user.id}")
    logger.info("profile updated: user %s changed %s", user.id, changed)
    return user


# Deleting your own account. The token still decodes afterwards, but get_current_user finds
# no user for it: every later request with it is a 401.
@router.delete("/me", status_code=204, responses=NOT_LOGGED_IN)
def delete_me(user: CurrentUser, db: SessionDep):
    user_id = user.id  # for the log line, once the row is gone
    db.delete(user)
    db.commit()
    logger.info("account deleted: user %s", user_id)
