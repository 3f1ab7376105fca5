"""Rate limits and open-chat budgets, counted in Postgres where every worker and restart sees them.

Hand-made, on purpose. The well-kept `limits` library (and slowapi, built on it) keeps its
counters in memory, Redis, Memcached, MongoDB or etcd. Memory is one process's own: with two
workers each would allow the whole budget, and a restart would forget it. This app runs none of
the others, but it has Postgres, and a fixed-window counter there is one atomic statement,
INSERT ... ON CONFLICT DO UPDATE ... RETURNING: no second server to run, watch and back up.
"""

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import anyio
from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.config import Settings
from app.db import DATABASE_DOWN, engine
from app.deps import ACCOUNT_GONE, not_authenticated
from app.models import OpenChat, RateLimit, RevokedToken

logger = logging.getLogger(__name__)


# What a client is told when a budget runs out (with a 429, or an error frame on the socket).
TOO_MANY_LOGINS = "Too many failed logins: try again later"
TOO_MANY_SIGNUPS = "Too many signups from this address: try again later"
TOO_MANY_MESSAGES = "Too many messages: try again later"
NO_TOKENS_LEFT = "The coach's daily budget for you is used up: try again later"
DAY = 24 * 60 * 60


# One budget: at most `most` hits in a window of `seconds`, for one key, the thing counted and
# whose it is ("login-account:ada@example.com", "chat-minute:7"). A hit costs `cost`: 1 for a
# question, the tokens an answer used for a token budget, 0 to look without counting, -1 to
# give a hit back. `detail` is what the client is told when the budget runs out.
@dataclass(frozen=True)
class Budget:
    key: str
    most: int
    seconds: int
    detail: str
    cost: int = 1


# The app's budgets, all in one place (the settings say how large each one is).
# Logins: failures per account and per client address. The account is the email as typed, so
# an email that has no account runs out exactly like one that has: the 429 tells nobody which
# emails are registered.
def login_budgets(email: str, address: str, settings: Settings, cost: int = 1) -> list[Budget]:
    window, detail = settings.LOGIN_WINDOW_SECONDS, TOO_MANY_LOGINS
    return [Budget(f"login-account:{email}", settings.LOGIN_FAILURES_PER_ACCOUNT, window, detail, cost),
            Budget(f"login-address:{address}", settings.LOGIN_FAILURES_PER_ADDRESS, window, detail, cost)]


def take_login_try(email: str, address: str, settings: Settings) -> None:
    """A login's try (or a current password's), counted against its address first, and against
    the account it names only when the address is within its budget: an address that is over
    can neither lock other people's accounts nor add a counter for every new email it types."""
    account, by_address = login_budgets(email, address, settings)
    take(by_address)
    take(account)


def signup_budget(address: str, settings: Settings) -> Budget:
    return Budget(f"signup:{address}", settings.SIGNUPS_PER_ADDRESS, settings.SIGNUP_WINDOW_SECONDS,
                  TOO_MANY_SIGNUPS)


# A question, over HTTP, the stream or the socket: one more this minute and today, and a look
# (cost 0) at today's tokens, which only the answer's real usage adds to (tokens_used).
def chat_budgets(user_id: int, settings: Settings) -> list[Budget]:
    return [Budget(f"chat-minute:{user_id}", settings.CHATS_PER_MINUTE, 60, TOO_MANY_MESSAGES),
            Budget(f"chat-day:{user_id}", settings.CHATS_PER_DAY, DAY, TOO_MANY_MESSAGES),
            Budget(f"chat-tokens:{user_id}", settings.CHAT_TOKENS_PER_DAY, DAY, NO_TOKENS_LEFT, cost=0)]


def tokens_used(user_id: int, tokens: int, settings: Settings) -> Budget:
    return Budget(f"chat-tokens:{user_id}", settings.CHAT_TOKENS_PER_DAY, DAY, NO_TOKENS_LEFT, cost=tokens)


# 429 Too Many Requests, and Retry-After: in how many seconds a new try can succeed.
class TooManyRequests(HTTPException):
    def __init__(self, detail: str, retry_after: int):
        super().__init__(status_code=429, detail=detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


def count(*budgets: Budget) -> TooManyRequests | None:
    """Adds each budget's cost to its counter, all in one statement, and commits.

    None when every counter is within its budget; else the 429 of the budget that is furthest
    from having room again. A window starts with the first hit of a key and lasts `seconds`;
    the first hit after it has ended starts a new one.
    """
    now = func.now()  # the database's clock: the same for every worker
    statement = insert(RateLimit).values([
        {"key": b.key, "hits": b.cost, "resets_at": now + timedelta(seconds=b.seconds)} for b in budgets])
    # ON CONFLICT: the key has a row already. Postgres locks that row and runs the UPDATE on
    # it, so two workers hitting one key at the same moment are counted one after the other,
    # never both from the same old count. `excluded` is the row the INSERT would have written.
    ended = RateLimit.resets_at <= now
    statement = statement.on_conflict_do_update(index_elements=[RateLimit.key], set_={
        "hits": func.greatest(case((ended, statement.excluded.hits),
                                   else_=RateLimit.hits + statement.excluded.hits), 0),
        "resets_at": case((ended, statement.excluded.resets_at), else_=RateLimit.resets_at),
    }).returning(RateLimit.key, RateLimit.hits, RateLimit.resets_at - now)
    with engine.begin() as connection:  # one transaction, committed at the end of the block
        rows = connection.execute(statement).all()
    budget = {b.key: b for b in budgets}
    over = [(left, budget[key]) for key, hits, left in rows if hits > budget[key].most]
    if not over:
        return None
    left, fullest = max(over, key=lambda found: found[0])
    return TooManyRequests(fullest.detail, max(1, math.ceil(left.total_seconds())))


def take(*budgets: Budget) -> None:
    """count(), and the 429 raised when a budget is exceeded."""
    refused = count(*budgets)
    if refused is not None:
        logger.warning("rate limit: %s (retry after %s s)", refused.detail, refused.retry_after)
        raise refused


# The tokens an answer used, counted against the user's daily budget, whatever became of the
# answer (done, failed half-way, or its user gone: those tokens are paid for too). shield: when
# the user has gone, this task is being cancelled, and the count must still reach the database.
async def spend_tokens(user_id: int, tokens: int, settings: Settings) -> None:
    if tokens:
        with anyio.CancelScope(shield=True):
            try:
                await run_in_threadpool(count, tokens_used(user_id, tokens, settings))
            except DATABASE_DOWN:  # the answer was given: not counting it is only logged
                logger.warning("tokens not counted, database unavailable: user %s, %s", user_id, tokens)


# --- seats: the streams and sockets a user holds open at once, over every worker ---------------

# The lock that makes "count a user's seats, then take one" a single step across workers: a
# Postgres advisory lock on (SEATS, user id), held until the transaction ends.
SEATS = 24


def lease(settings: Settings) -> float:
    """How long a seat holds without being renewed, in seconds: twice the longest a live chat
    can go without renewing it (a stream waits at most OPENAI_TIMEOUT for its next token, a
    socket checks its token every SOCKET_RECHECK_SECONDS)."""
    return 2 * max(settings.OPENAI_TIMEOUT, settings.SOCKET_RECHECK_SECONDS)


def take_seat(user_id: int, most: int, lease: float) -> int | None:
    """A new seat's id, or None when the user already holds `most` that have not expired."""
    with engine.begin() as connection:
        connection.execute(select(func.pg_advisory_xact_lock(SEATS, user_id)))
        held = connection.scalar(select(func.count()).select_from(OpenChat).where(
            OpenChat.user_id == user_id, OpenChat.expires_at > func.now()))
        if held >= most:
            return None
        return connection.scalar(insert(OpenChat).values(
            user_id=user_id, expires_at=func.now() + timedelta(seconds=lease)).returning(OpenChat.id))


def renew_seat(seat_id: int, lease: float) -> None:
    with engine.begin() as connection:
        connection.execute(update(OpenChat).where(OpenChat.id == seat_id)
                           .values(expires_at=func.now() + timedelta(seconds=lease)))


def leave_seat(seat_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(delete(OpenChat).where(OpenChat.id == seat_id))


class Seat:
    """One open chat. Its row is a lease: renewed while the chat lives (keep()), so that the
    seats of a worker that crashed free themselves when their lease ends."""

    def __init__(self, seat_id: int, lease: float):
        self.id, self.lease = seat_id, lease
        self.renewed = time.monotonic()

    async def keep(self) -> None:
        """Renews the lease when half of it has passed (call it as often as you like)."""
        if time.monotonic() - self.renewed >= self.lease / 2:
            self.renewed = time.monotonic()
            try:
                await run_in_threadpool(renew_seat, self.id, self.lease)
            except DATABASE_DOWN:  # tried again next time; meanwhile the lease runs on
                logger.warning("seat %s not renewed: database unavailable", self.id)


TOO_MANY_OPEN = "Too many open chats: close one and try again"


@asynccontextmanager
async def open_chat(user_id: int, most: int, lease: float) -> AsyncIterator[Seat]:
    """Holds one of the user's `most` seats for the block; TooManyRequests when none is free,
    the 401 of a token whose account is gone when the account was deleted a moment ago (after
    the token was checked: the seat's foreign key refuses it)."""
    try:
        seat_id = await run_in_threadpool(take_seat, user_id, most, lease)
    except IntegrityError:
        logger.warning("open chats: user %s was deleted meanwhile", user_id)
        raise not_authenticated(ACCOUNT_GONE) from None
    if seat_id is None:
        logger.warning("open chats: user %s holds %s already", user_id, most)
        raise TooManyRequests(TOO_MANY_OPEN, math.ceil(lease))
    try:
        yield Seat(seat_id, lease)
    finally:
        # shield: when the chat ends because its client went away, this task is being
        # cancelled, and an unshielded await would be cancelled too, leaving the seat taken.
        with anyio.CancelScope(shield=True):
            try:
                await run_in_threadpool(leave_seat, seat_id)
            except DATABASE_DOWN:  # the seat frees itself when its lease ends
                logger.warning("seat %s not left: database unavailable", seat_id)


# --- clean-up ----------------------------------------------------------------------------------

def forget_expired() -> None:
    """Deletes counters whose window has ended, revoked tokens that have expired anyway, and
    seats whose lease has ended: rows that no longer change any answer."""
    with engine.begin() as connection:
        connection.execute(delete(RateLimit).where(RateLimit.resets_at < func.now()))
        connection.execute(delete(RevokedToken).where(RevokedToken.expires_at < func.now()))
        connection.execute(delete(OpenChat).where(OpenChat.expires_at < func.now()))


async def clean_up_every(seconds: float) -> None:
    """forget_expired() now and every `seconds`, for as long as the app runs (the lifespan)."""
    while True:
        try:
            await run_in_threadpool(forget_expired)
        except SQLAlchemyError as error:  # down, or not migrated yet: the requests will say so
            logger.warning("clean-up skipped: %s", type(error).__name__)
        await anyio.sleep(seconds)
