from sqlalchemy import Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


# Every model class inherits from Base; Base.metadata collects their tables.
class Base(DeclarativeBase):
    pass


# One class = one table, one attribute = one column, one object = one row. The columns match
# the table lessons 10 and 11 built by hand, so the ORM takes over that table as it is.
class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)  # SERIAL in Postgres
    name: Mapped[str] = mapped_column(Text)  # Mapped[str] means NOT NULL
    role: Mapped[str] = mapped_column(Text)
    place: Mapped[str] = mapped_column(Text)
    password_hash: Mapped[str | None] = mapped_column(Text)  # NULL for rows from lesson 10
