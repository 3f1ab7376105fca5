"""Passwords and tokens: how the API stores a password, and recognises a user who has logged in."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
import jwt
from passlib.context import CryptContext

from app.config import Settings, get_settings

# bcrypt is slow on purpose and salts every hash, so equal passwords get different hashes.
# rounds: the cost, 2**rounds steps per hash; a setting, so that tests can make it cheap.
pwd_context = CryptContext(schemes=["bcrypt"], deprecated="auto", bcrypt__rounds=get_settings().BCRYPT_ROUNDS)

# A quarter of a second of one core per hash is the point of bcrypt, and the danger: fifty logins
# at once would take every worker thread and both cores, and GET /api/me would wait seconds for
# a thread. So hashing runs in threads of its own, at most HASHES_AT_ONCE at a time; a login
# waiting for its turn waits on the event loop, holding no thread at all.
hashing = anyio.CapacityLimiter(get_settings().HASHES_AT_ONCE)


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(pwd_context.hash, password, limiter=hashing)


async def password_matches(password: str, password_hash: str | None) -> bool:
    """Whether `password` is the one `password_hash` was made from. Without a hash (no such
    user, or a row from before lesson 11) a dummy check takes as long as a real one: the
    answer's timing tells nobody whether the account exists."""
    if password_hash is None:
        await anyio.to_thread.run_sync(pwd_context.dummy_verify, limiter=hashing)
        return False
    return await anyio.to_thread.run_sync(pwd_context.verify, password, password_hash, limiter=hashing)


ALGORITHM = "HS256"  # HMAC with SHA-256: the same secret signs and checks

# Ids are 4-byte integers in Postgres (SERIAL): a `sub` outside this range is no user of ours.
MAX_ID = 2_147_483_647


# What a valid token says: whose it is, its own id, the user's token version when it was
# issued, and when it expires.
@dataclass(frozen=True)
class Claims:
    user_id: int
    jti: str
    version: int
    expires_at: datetime


def create_token(user_id: int, version: int, settings: Settings) -> str:
    """A signed token saying "this is user <user_id>", issued now, valid for EXPIRY_MINUTES."""
    now = datetime.now(UTC)
    # sub (subject: who the token is about) must be a string; iat (issued at) is when it was
    # made; exp is when it stops being valid. jti (JWT ID) is this token's own name, so that
    # one token can be ended (POST /api/logout) and not the others; ver is the user's
    # token_version now, so that all of them can (a new password, POST /api/logout-all).
    claims = {"sub": str(user_id), "iat": now, "exp": now + timedelta(minutes=settings.EXPIRY_MINUTES),
              "jti": uuid.uuid4().hex, "ver": version}
    return jwt.encode(claims, settings.JWT_SECRET.get_secret_value(), algorithm=ALGORITHM)


def decode_token(token: str, settings: Settings) -> Claims | None:
    """The claims of a token we signed and that has not expired; None for anything else.
    (Whether it was revoked since is for the database to say: deps.authenticate.)"""
    try:
        # algorithms=[...] is the list we accept: a token that says "alg": "none" (unsigned)
        # or any other algorithm is refused. require: a token without sub, iat, exp, jti or
        # ver is refused too (so are tokens from before this lesson: log in again). PyJWT also
        # refuses an exp that has passed and an iat still in the future.
        payload = jwt.decode(token, settings.JWT_SECRET.get_secret_value(), algorithms=[ALGORITHM],
                             options={"require": ["sub", "iat", "exp", "jti", "ver"]})
        user_id = int(payload["sub"])
        lifetime = int(payload["exp"]) - int(payload["iat"])  # in seconds
    except (jwt.InvalidTokenError, ValueError):  # expired, forged, garbled, or sub not a number
        return None
    # Only the form create_token writes: int() also reads " 7 ", "+7", "07" and "٧" as 7.
    if payload["sub"] != str(user_id) or not 1 <= user_id <= MAX_ID:
        return None
    if not isinstance(payload["jti"], str) or type(payload["ver"]) is not int:
        return None
    # Our own limit, whatever exp says: no token lives longer than EXPIRY_MINUTES after its iat.
    # With PyJWT's checks (iat not in the future, exp not passed) no token we accept is older.
    if lifetime > settings.EXPIRY_MINUTES * 60:
        return None
    return Claims(user_id, payload["jti"], payload["ver"], datetime.fromtimestamp(payload["exp"], UTC))
