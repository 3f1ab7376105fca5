from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, Text, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


# Every model class inherits from Base; Base.metadata collects their tables.
class Base(DeclarativeBase):
    pass


# One class = one table, one attribute = one column, one object = one row. Change the class,
# then let Alembic write the migration that changes the table to match:
#   alembic revision --autogenerate -m "what changed"
class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)  # SERIAL in Postgres
    name: Mapped[str] = mapped_column(Text)  # Mapped[str] means NOT NULL
    # unique: no two users may share an email (Postgres enforces it). Emails are stored in
    # lower case, so "Ada@Example.com" and "ada@example.com" count as the same one.
    # NULL for users who signed up before 15: they cannot log in.
    email: Mapped[str | None] = mapped_column(Text, unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text)  # NULL for rows from lesson 10
    # Every token carries the version its user had when it was issued; a token whose version
    # is not the user's current one is refused. A new password or email, or "log out
    # everywhere", adds one: every token issued before ends at once.
    token_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    # user.messages: this user's messages, oldest first. Not a column: SQLAlchemy loads them
    # from the messages table (WHERE user_id = this user's id) when the attribute is first read.
    # back_populates="user" keeps both sides in step: adding a message here sets its .user.
    # cascade: deleting a user deletes their messages too ("delete-orphan": so does removing a
    # message from the list). passive_deletes: the database's ON DELETE CASCADE does it, so
    # the ORM need not load every message first just to delete it.
    messages: Mapped[list["Message"]] = relationship(
        back_populates="user", order_by="Message.id", cascade="all, delete-orphan", passive_deletes=True
    )


# One message of a conversation with the coach: what the user asked or what the coach answered.
class Message(Base):
    __tablename__ = "messages"
    # "This user's newest messages, before this id" is the one question asked of this table (the
    # history's pages, the coach's latest 20). An index on (user_id, id) keeps each user's ids in
    # order, so Postgres reads just the rows of the answer. It serves "this user's messages"
    # too, for the foreign key's ON DELETE CASCADE.
    __table_args__ = (Index("ix_messages_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The foreign key: every message belongs to a row of users, and Postgres refuses a user_id
    # that is not there. ON DELETE CASCADE: deleting that user deletes their messages.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(Text)  # "user" or "assistant", as the chat API names them
    content: Mapped[str] = mapped_column(Text)
    # When it was written: Postgres's now() unless the app says otherwise. timezone=True
    # (timestamptz) stores an exact moment, whatever the server's time zone.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    # message.user: the User this message belongs to, read through user_id.
    user: Mapped[User] = relationship(back_populates="messages")


# One counter of a rate limit (limits.py): `hits` so far in the window that ends at
# `resets_at`. The key says what is counted and for whom: "login-account:ada@example.com",
# "chat-day:7", "chat-tokens:7". A row whose window has ended starts again at its next hit.
class RateLimit(Base):
    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    hits: Mapped[int]
    # index: the clean-up deletes the rows whose window has ended (limits.forget_expired).
    resets_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# A token ended by POST /api/logout before its time: its id (the jti claim) and when it would
# have expired anyway. After that the row is useless (the token is refused as expired) and the
# clean-up deletes it.
class RevokedToken(Base):
    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(Text, primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# A stream or socket a user holds open (limits.open_chat), on whichever worker. `expires_at` is
# a lease: the chat renews it while it lives, so that the seat of a worker that crashed frees
# itself instead of counting forever.
class OpenChat(Base):
    __tablename__ = "open_chats"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
