"""Logging in and out: email and password in, a token out; a token, or all of them, ended."""

import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm.exc import StaleDataError

from app import limits, models
from app.crud import user_by_email
from app.deps import (
    ACCOUNT_GONE,
    Credentials,
    CurrentUser,
    SessionDep,
    SettingsDep,
    client_address,
    not_authenticated,
)
from app.schemas import DB_DOWN, NOT_LOGGED_IN, TOO_MANY, UNREADABLE, WRONG_LOGIN, LoginForm
from app.security import create_token, decode_token, password_matches

logger = logging.getLogger(__name__)

router = APIRouter(tags=["auth"], responses=DB_DOWN)


# Both failures get the same answer, so nobody can use the login to find out which emails
# have an account; so do both 429s (limits.login_budgets counts the email as typed).
# The try is counted before the password is checked, and a right password gives it back: five
# guesses sent at once to two workers are five hits on one counter, never five looks at a
# count that still says four.
@router.post("/login", responses={**UNREADABLE, **WRONG_LOGIN, **TOO_MANY})
async def login(form: LoginForm, request: Request, settings: SettingsDep):
    address = client_address(request)
    await run_in_threadpool(limits.take_login_try, form.email, address, settings)
    # A session of its own, closed at once (crud.user_by_email): in a storm of logins the check
    # below waits its turn for seconds, and must not hold one of the pool's few connections.
    user = await run_in_threadpool(user_by_email, form.email)
    # Checked with bounded concurrency, off the event loop (security.py); without a user, a
    # dummy check as slow as a real one: the answer's timing tells nothing either.
    if not await password_matches(form.password, user.password_hash if user else None):
        if user is None:
            logger.warning("login failed: no user with that email")
        else:
            logger.warning("login failed: wrong password for user %s", user.id)
        raise not_authenticated("Wrong email or password")
    await run_in_threadpool(limits.count, *limits.login_budgets(form.email, address, settings, cost=-1))
    logger.info("login: user %s", user.id)
    return {"access_token": create_token(user.id, user.token_version, settings), "token_type": "bearer"}


# Logging out this token: its id (jti) goes on the list of revoked tokens until it would have
# expired anyway. The user's other tokens (another browser, a phone) stay valid.
@router.post("/logout", status_code=204, responses=NOT_LOGGED_IN)
def logout(user: CurrentUser, credentials: Credentials, db: SessionDep, settings: SettingsDep):
    claims = decode_token(credentials.credentials, settings)  # valid: CurrentUser has checked it
    # ON CONFLICT DO NOTHING: the same token logged out twice at once (two clicks) is one row.
    db.execute(insert(models.RevokedToken).values(jti=claims.jti, expires_at=claims.expires_at)
               .on_conflict_do_nothing())
    db.commit()
    logger.info("logout: user %s", user.id)


# Logging out everywhere: a new token version ends every token issued before, in every browser;
# open sockets notice it at their next check (SOCKET_RECHECK_SECONDS) and close with 1008.
@router.post("/logout-all", status_code=204, responses=NOT_LOGGED_IN)
def logout_all(user: CurrentUser, db: SessionDep):
    user.token_version = models.User.token_version + 1
    try:
        db.commit()
    except StaleDataError:  # the UPDATE found no row: the account was deleted meanwhile
        db.rollback()
        raise not_authenticated(ACCOUNT_GONE) from None
    logger.info("logout everywhere: user %s", user.id)
