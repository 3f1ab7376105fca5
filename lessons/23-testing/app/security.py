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
    """A signed token saying "this is user <user_id>", issued now, valid for EXPIRY_MINUTES."""
    now = datetime.now(UTC)
    # sub (subject: who the token is about) must be a string; iat (issued at) is when it was
    # made; exp is when it stops being valid.
    claims = {"sub": str(user_id), "iat": now, "exp": now + timedelta(minutes=settings.EXPIRY_MINUTES)}
    return jwt.encode(claims, settings.JWT_SECRET.get_secret_value(), algorithm=ALGORITHM)


def decode_token(token: str, settings: Settings) -> int | None:
    """The user id in a token we signed and that has not expired; None for anything else."""
    try:
        # algorithms=[...] is the list we accept: a token that says "alg": "none" (unsigned)
        # or any other algorithm is refused. require: a token without sub, iat or exp is refused
        # too. PyJWT also refuses an exp that has passed and an iat still in the future.
        payload = jwt.decode(token, settings.JWT_SECRET.get_secret_value(), algorithms=[ALGORITHM],
                             options={"require": ["sub", "iat", "exp"]})
        user_id = int(payload["sub"])
        lifetime = int(payload["exp"]) - int(payload["iat"])  # in seconds
    except (jwt.InvalidTokenError, ValueError):  # expired, forged, garbled, or sub not a number
        return None
    # Only the form create_token writes: int() also reads " 7 ", "+7", "07" and "٧" as 7.
    if payload["sub"] != str(user_id) or not 1 <= user_id <= MAX_ID:
        return None
    # Our own limit, whatever exp says: no token lives longer than EXPIRY_MINUTES after its iat.
    # With PyJWT's checks (iat not in the future, exp not passed) no token we accept is older.
    if lifetime > settings.EXPIRY_MINUTES * 60:
        return None
    return user_id
