"""How Alembic reaches the database and learns what the models look like."""

from logging.config import fileConfig

from alembic import context

from app.db import engine
from app.models import Base

config = context.config
# Alembic's logging settings, from alembic.ini. disable_existing_loggers=False: when a migration
# runs in a process whose loggers exist already (a test suite that migrates its database), they
# keep logging; by default fileConfig switches off every logger it does not name.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# What the tables should look like: `alembic revision --autogenerate` compares this with the
# real database and writes the difference as a migration; `alembic check` says if any is left.
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """`alembic upgrade head --sql`: print the SQL instead of running it."""
    context.configure(
        url=engine.url.render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the database the app uses (the same settings, app/config.py)."""
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
