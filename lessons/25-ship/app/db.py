from sqlalchemy import URL, create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import sessionmaker

from app.config import get_settings

settings = get_settings()

# The engine knows how to reach the database and keeps a pool of open connections to reuse.
# URL.create builds the address safely, even if the password holds characters like @ or /.
engine = create_engine(
    URL.create(
        "postgresql+psycopg2",
        username=settings.DB_USER,
        password=settings.DB_PASSWORD.get_secret_value(),
        host=settings.DB_HOST,
        port=settings.DB_PORT,
        database=settings.DB_NAME,
    ),
    connect_args={"connect_timeout": 3},
    # Test each pooled connection before lending it out: one the database closed (say, it was
    # restarted) is replaced by a fresh one instead of failing the request.
    pool_pre_ping=True,
    # When a statement fails, SQLAlchemy's error message lists the values it sent, and that
    # message lands in the server log: a password hash, an email. Keep the SQL, hide the values.
    hide_parameters=True,
    # At most 15 connections, as SQLAlchemy's default (5 kept, 10 more when busy), but all 15
    # kept open: by default a busy moment opens the 10 and closes them again as soon as 5 are
    # idle, and each new one costs Postgres a process and a password exchange (about 14 ms).
    # 100 chats at once opened some 100 connections (make bench-ship); kept, none.
    pool_size=15,
    max_overflow=0,
)

# A session factory: every SessionLocal() is a new Session bound to our engine.
# expire_on_commit=False: objects keep the values they were loaded or saved with after a commit
# (by default a commit forgets them, and the next read of user.name queries again). So a
# commit can end a read early and give the connection back, and the object stays usable.
SessionLocal = sessionmaker(bind=engine, expire_on_commit=False)

# What SQLAlchemy raises when the database cannot serve a request now: it cannot be reached
# (OperationalError), or no connection of the pool came free within the pool's timeout
# (TimeoutError: as good as down). main.py answers both with a 503; a stream or a socket, which
# no handler can answer, catches them together as this.
DATABASE_DOWN = (OperationalError, PoolTimeout)
