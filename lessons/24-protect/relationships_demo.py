"""Foreign key to two-way relationship in five steps: run them and see what each one adds.

    python relationships_demo.py        all five steps
    python relationships_demo.py 3      step 3 only

Each step declares its own little User and Message classes (not the app's, in models.py) and
tries the same things with them: ✅ works, ❌ does not. The database is SQLite in memory, made
and thrown away by the script, so nothing touches the app's Postgres.
"""

import sys
import warnings

from sqlalchemy import ForeignKey, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


def models(step: int):
    """The User and Message classes as they are written at `step` (1 to 5)."""

    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        if step in (3, 4):
            messages = relationship("Message")  # step 3: the User side, on its own
        if step == 5:
            messages = relationship("Message", back_populates="user")  # step 5: and back

    class Message(Base):
        __tablename__ = "messages"
        id: Mapped[int] = mapped_column(primary_key=True)
        content: Mapped[str]
        user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # step 1: the key
        if step in (2, 3):
            user = relationship("User")  # step 2: the Message side
        if step in (4, 5):
            user = relationship("User", back_populates="messages")  # step 4: back_populates

    return Base, User, Message


def run(step: int) -> dict[str, bool]:
    """Try everything with the classes of `step`; print each result; return {what: worked}."""
    results = {}

    def check(what: str, attempt) -> None:
        try:
            value = attempt()
            ok = value is not None and value is not False
            shown = "None" if value is None else value
        except Exception as error:  # an attribute that does not exist, for example
            ok, shown = False, f"{type(error).__name__}: {error}"
        results[what] = ok
        print(f"  {'✅' if ok else '❌'} {what:<45} -> {shown}")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Base, User, Message = models(step)
        engine = create_engine("sqlite://")  # a database in memory, gone when the script ends
        Base.metadata.create_all(engine)
        with Session(engine) as db:
            ada = User(name="Ada")
            db.add(ada)
            db.commit()
            db.add(Message(content="Hello Coach!", user_id=ada.id))
            db.commit()

            check("filter by user_id", lambda: [m.content for m in db.scalars(
                select(Message).where(Message.user_id == ada.id))])
            check("msg.user.name", lambda: db.scalars(select(Message)).first().user.name)
            check("user.messages", lambda: [m.content for m in ada.messages])

            appended = Message(content="Appended")
            db.add(appended)
            check("user.messages.append(msg), then msg.user",
                  lambda: ada.messages.append(appended) or appended.user and appended.user.name)

            assigned = Message(content="Assigned")
            db.add(assigned)
            check("msg.user = user, then msg in user.messages",
                  lambda: setattr(assigned, "user", ada) or assigned in ada.messages)

            check("msg.user_id before the flush", lambda: appended.user_id)
            db.flush()  # the INSERTs: only now are the ids copied into user_id
            check("msg.user_id after the flush", lambda: appended.user_id)
    for warning in caught:  # SQLAlchemy's own warnings are part of the lesson
        print(f"  ⚠️  SQLAlchemy warns: {str(warning.message).split('. ')[0]}.")
    return results


STEPS = {
    1: "just the foreign key: Message.user_id = ForeignKey('users.id')",
    2: "relationship on the Message side: Message.user",
    3: "relationship on the User side too: User.messages (no back_populates)",
    4: "back_populates on one side: Message.user = relationship('User', back_populates='messages')",
    5: "back_populates on both sides",
}

if __name__ == "__main__":
    for number in [int(a) for a in sys.argv[1:]] or STEPS:
        print(f"Step {number}: {STEPS[number]}")
        run(number)
        print()
