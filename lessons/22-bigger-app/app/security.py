"""Passwords and tokens: how the API stores a password, and recognises a user who has logged in."""

from datetime import UTC, datetime, timedelta

import jwt
from passlib.context import CryptContext

from app.config import Settings

# bcrypt is slow on purpose and salts every hash, so equal passwords get different hashes.
pwd_context = CryptContext(schemes=["bcrypt"], deprecated="auto")

ALGORITHM = "HS256"  # HMAC with SHA-256: the same secret signs and checks

# Ids are 4-byte integers in Postgres (SERIAL): a `sub` outside this range is no user of ours.
MAX_ID = 2_147_483_647


def create_token(user_id: int, settings: Settings) -> str:
    """A signed token saying "this is user <user_id>", valid for EXPIRY_MINUTES."""
    expires = datetime.now(UTC) + timedelta(minutes=settings.EXPIRY_MINUTES)
    # sub (subject: who the token is about) must be a string; exp is when it stops being valid.
    return jwt.encode({"sub": str(user_id), "exp": expires}, settings.JWT_SECRET.get_secret_value(),
                      algorithm=ALGORITHM)


def decode_token(token: str, settings: Settings) -> int | None:
    """The user id in a token we signed and that has not expired; None for anything else."""
    try:
        # algorithms=[...] is the list we accept: a token that says "alg": "none" (unsigned)
        # or any other algorithm is refused. require: a token without sub or exp is refused too.
        payload = jwt.decode(token, settings.JWT_SECRET.get_secret_value(), algorithms=[ALGORITHM],
                             options={"require": ["sub", "exp"]})
        user_id = int(payload["sub"])
    except (jwt.InvalidTokenError, ValueError):  # expired, forged, garbled, or sub not a number
        return None
    return user_id if 1 <= user_id <= MAX_ID else None
