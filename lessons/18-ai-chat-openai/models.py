from sqlalchemy import Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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
