from sqlalchemy import Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


# Change this class, then let Alembic write the migration that changes the table to match:
#   alembic revision --autogenerate -m "what changed"
class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)  # NULL for users who signed up before 15
    password_hash: Mapped[str | None] = mapped_column(Text)
