"""The conversation in the database: what the chat endpoints and the socket read and write."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import models
from app.db import SessionLocal
from app.deps import ACCOUNT_GONE, not_authenticated
from app.llm import SYSTEM_PROMPT

# How many earlier messages go with each question: enough for the coach to follow the
# conversation, few enough to keep every call (paid for by the token) small and quick.
HISTORY_LIMIT = 20


# What the coach is sent: the system prompt, then the latest messages of this user's
# conversation in the order they were written, then the new question. Both chat endpoints and
# the socket use it. The latest HISTORY_LIMIT at most, and of those only as many of the newest
# as fit in `characters` together: twenty messages can be a few lines or, pasted in, a book,
# and every character is sent, and paid for, with every question.
def conversation(db: Session, user_id: int, question: str, characters: int) -> list[dict]:
    # The newest HISTORY_LIMIT messages (ORDER BY id DESC LIMIT 20). Ids grow with every
    # INSERT, so they give the exact order, even for two messages stored in the same instant.
    latest = db.scalars(
        select(models.Message)
        .where(models.Message.user_id == user_id)
        .order_by(models.Message.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    kept, size = [], 0
    for message in latest:  # newest first: stop at the first that no longer fits
        size += len(message.content)
        if size > characters:
            break
        kept.append(message)
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        # turned around: oldest first, as a conversation reads
        *({"role": message.role, "content": message.content} for message in reversed(kept)),
        {"role": "user", "content": question},
    ]


# Question and answer in one transaction: both are stored, or neither. The question keeps the
# time it was asked; the answer gets Postgres's now().
def store_exchange(db: Session, user_id: int, question: str, asked_at: datetime, reply: str) -> None:
    db.add_all([
        models.Message(user_id=user_id, role="user", content=question, created_at=asked_at),
        models.Message(user_id=user_id, role="assistant", content=reply),
    ])
    try:
        db.commit()
    except IntegrityError:  # the foreign key refuses: the account was deleted while the coach thought
        db.rollback()
        raise not_authenticated(ACCOUNT_GONE) from None


# These have a session of their own, closed at once, for the endpoints and the socket that run
# them in a worker thread (the queries block) and then wait for something else: the LLM, a
# stream, a socket's next frame, their turn to hash a password. Meanwhile they must not keep a
# session open: each open session holds one of the pool's few connections.
def user_by_email(email: str) -> models.User | None:
    with SessionLocal() as db:
        return db.scalar(select(models.User).where(models.User.email == email))


def load_conversation(user_id: int, question: str, characters: int) -> list[dict]:
    with SessionLocal() as db:
        return conversation(db, user_id, question, characters)


def save_exchange(user_id: int, question: str, asked_at: datetime, reply: str) -> None:
    with SessionLocal() as db:
        store_exchange(db, user_id, question, asked_at, reply)
