"""Logging in: email and password in, a token out."""

import logging

from fastapi import APIRouter

from app import models
from app.deps import SessionDep, SettingsDep, not_authenticated
from app.schemas import DB_DOWN, UNREADABLE, WRONG_LOGIN, LoginForm
from app.security import create_token, pwd_context

logger = logging.getLogger(__name__)

router = APIRouter(tags=["auth"])


# Both failures get the same answer, so nobody can use the login to find out which emails
# have an account.
@router.post("/login", responses={**UNREADABLE, **WRONG_LOGIN, **DB_DOWN})
def login(form: LoginForm, db: SessionDep, settings: SettingsDep):
    user = db.query(models.User).filter(models.User.email == form.email).first()
    if user is None:
        pwd_context.dummy_verify()  # as slow as a real check: the answer's timing tells nothing
        logger.warning("login failed: no user with that email")
        raise not_authenticated("Wrong email or password")
    if not pwd_context.verify(form.password, user.password_hash):
        logger.warning("login failed: wrong password for user %s", user.id)
        raise not_authenticated("Wrong email or password")
    logger.info("login: user %s", user.id)
    return {"access_token": create_token(user.id, settings), "token_type": "bearer"}
