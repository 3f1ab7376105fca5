"""Accounts: signing up, and the logged-in user's own profile (/api/me)."""

import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app import limits, models
from app.config import Settings
from app.deps import ACCOUNT_GONE, CurrentUser, SessionDep, SettingsDep, client_address, not_authenticated
from app.schemas import (
    DB_DOWN,
    EMAIL_TAKEN,
    NOT_LOGGED_IN,
    TOO_MANY,
    UNREADABLE,
    WRONG_PASSWORD,
    UserCreate,
    UserOut,
    UserUpdate,
)
from app.security import hash_password, password_matches

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
        raise not_authenticated(ACCOUNT_GONE) from None


# status_code=201 is the answer for "created". async def: the endpoint waits for its turn to
# hash (security.hash_password) on the event loop, holding no worker thread meanwhile; its
# database calls run in a thread (run_in_threadpool), since SQLAlchemy's calls block.
@router.post("/users", status_code=201, response_model=UserOut,
             responses={**UNREADABLE, **EMAIL_TAKEN, **TOO_MANY})
async def create_user(user: UserCreate, request: Request, db: SessionDep, settings: SettingsDep):
    await run_in_threadpool(limits.take, limits.signup_budget(client_address(request), settings))
    new_user = models.User(name=user.name, email=user.email, password_hash=await hash_password(user.password))
    db.add(new_user)  # staged: nothing is written yet
    # INSERT ... now the row exists, and new_user has the id Postgres gave it. No db.refresh()
    # (lesson 22): new_user keeps its values (expire_on_commit=False), and the answer reads
    # nothing else (token_version, filled in by the database, is left unread).
    await run_in_threadpool(commit_or_409, db, "signup")
    logger.info("signup: user %s", new_user.id)
    return new_user


# Who am I? get_current_user (deps.py) has checked the token and loaded the user, or answered
# 401 before this function runs.
@router.get("/me", response_model=UserOut, responses=NOT_LOGGED_IN)
def me(user: CurrentUser):
    return user


# The current password, checked like a login: a wrong one counts against the same budget as a
# failed login of this account (so a stolen token cannot be used to guess the password), and
# is a 403, not a 401: the token is fine, and a 401 would make the page log out.
async def check_current_password(password: str, user: models.User, request: Request,
                                 settings: Settings) -> None:
    address = client_address(request)
    await run_in_threadpool(limits.take_login_try, user.email, address, settings)
    if not await password_matches(password, user.password_hash):
        logger.warning("profile update refused: wrong current password for user %s", user.id)
        raise HTTPException(status_code=403, detail="Current password is wrong")
    await run_in_threadpool(limits.count, *limits.login_budgets(user.email, address, settings, cost=-1))


# A partial update: only the fields the client sent change. exclude_none leaves out every
# field that is None, whether it was not sent or sent as null (name and email cannot be
# emptied, and a null password means "no new password").
@router.put("/me", response_model=UserOut,
            responses={**UNREADABLE, **NOT_LOGGED_IN, **WRONG_PASSWORD, **EMAIL_TAKEN, **TOO_MANY})
async def update_me(changes: UserUpdate, user: CurrentUser, request: Request, db: SessionDep,
                    settings: SettingsDep):
    fields = changes.model_dump(exclude_none=True, exclude={"current_password"})
    changed = ", ".join(fields) or "nothing"  # for the log: which fields, never their values
    if "email" in fields or "password" in fields:
        await check_current_password(changes.current_password, user, request, settings)
        # A new email or password ends every token issued before, this one too: whoever copied
        # one is out. An SQL expression (token_version + 1), not a Python sum: two changes at
        # the same moment each add one.
        user.token_version = models.User.token_version + 1
    if "password" in fields:  # stored as a hash, like at signup, never as given
        user.password_hash = await hash_password(fields.pop("password"))
    for name, value in fields.items():
        setattr(user, name, value)
    # `user` came from this same session (one get_db per request): committing is an UPDATE.
    await run_in_threadpool(commit_or_409, db, f"update of user {user.id}")
    # token_version was given an SQL expression, so SQLAlchemy forgets its value at the commit:
    # read the row again here, in a thread, rather than let a later read of the attribute ask
    # the database from the event loop.
    await run_in_threadpool(db.refresh, user)
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
