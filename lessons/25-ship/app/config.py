"""Every setting the app reads, in one place: named, typed, checked, and read once.

Where a value comes from, first match wins:
  1. an environment variable          JWT_SECRET=... uvicorn app.main:app
  2. the .env file beside app/        JWT_SECRET=...
  3. the default written below        (a setting without one must be given)
An empty value (`OPENAI_BASE_URL=` in .env) counts as not given.
"""

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import (
    AnyHttpUrl,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The .env of this project: the folder that holds app/, wherever uvicorn or alembic is started.
ENV_FILE = Path(__file__).resolve().parent.parent / ".env"

MAKE_A_SECRET = "python -c \"import secrets; print(secrets.token_urlsafe(32))\""
# An origin is scheme://host[:port], nothing after it: what a browser sends in its Origin header.
ORIGIN = re.compile(r"https?://[^/\s]+")


class Settings(BaseSettings):
    # extra="ignore": a line in .env that is no setting of ours (a note, a tool's variable)
    # is left alone instead of stopping the app.
    model_config = SettingsConfigDict(env_file=ENV_FILE, env_ignore_empty=True, extra="ignore")

    # The database (make run keeps these equal to the dev database's, docker.env).
    DB_HOST: str = "localhost"
    DB_PORT: int = Field(default=5433, ge=1, le=65535)
    DB_NAME: str
    DB_USER: str
    DB_PASSWORD: SecretStr = SecretStr("")

    # Pages from these origins may call the API from a browser, written comma-separated:
    # CORS_ORIGINS=http://localhost:8001,http://127.0.0.1:8001. NoDecode: read the text as it
    # is (a list setting is otherwise expected as JSON); split_origins below makes the list.
    CORS_ORIGINS: Annotated[list[str], NoDecode] = ["http://localhost:8001", "http://127.0.0.1:8001"]

    # The key that signs every login token. SecretStr: printed or logged it shows as
    # '**********'; .get_secret_value() gives the text to the one place that needs it.
    JWT_SECRET: SecretStr
    EXPIRY_MINUTES: PositiveInt = 60  # how long a login token stays valid

    # The LLM. No key: the chat answers 502 and says why (the app still starts).
    OPENAI_API_KEY: SecretStr | None = None
    # OpenAI's API, or any server that speaks it (the offline coach, Ollama, ...).
    OPENAI_BASE_URL: AnyHttpUrl = AnyHttpUrl("https://api.openai.com/v1")
    OPENAI_MODEL: str = "gpt-4o-mini"
    OPENAI_TIMEOUT: PositiveFloat = 30  # seconds to wait for an answer before the 504

    # Seconds a new chat socket has to send its first frame (the token) before it is closed.
    WS_LOGIN_TIMEOUT: PositiveFloat = 10

    # --- Limits (lesson 24). Every budget is counted in the database, so that every worker
    # and every restart sees the same count (limits.py). A window starts with its first hit.
    # Logins: at most this many failures per account, and per client address, in a window.
    LOGIN_FAILURES_PER_ACCOUNT: PositiveInt = 5
    LOGIN_FAILURES_PER_ADDRESS: PositiveInt = 50
    LOGIN_WINDOW_SECONDS: PositiveInt = 15 * 60
    # Signups: at most this many per client address in a window.
    SIGNUPS_PER_ADDRESS: PositiveInt = 10
    SIGNUP_WINDOW_SECONDS: PositiveInt = 60 * 60
    # The chat (HTTP, stream and socket together), per user: questions a minute and a day, and
    # the tokens the LLM may use for them in a day (the LLM is paid by the token).
    CHATS_PER_MINUTE: PositiveInt = 10
    CHATS_PER_DAY: PositiveInt = 200
    CHAT_TOKENS_PER_DAY: PositiveInt = 200_000
    # The history sent with each question: the latest 20 messages, and at most this many
    # characters of them (about a quarter as many tokens).
    HISTORY_CHARACTERS: PositiveInt = 16_000
    # Streams and sockets a user may hold open at once, over all workers.
    OPEN_CHATS_PER_USER: PositiveInt = 3
    # How often an open socket checks that its token still holds (logout, a new password).
    SOCKET_RECHECK_SECONDS: PositiveFloat = 15
    # The largest request body read, in bytes; a bigger one gets a 413 before it is read.
    MAX_BODY_BYTES: PositiveInt = 64 * 1024
    # bcrypt's cost: 2**rounds steps per hash (12: about a quarter of a second). Tests lower it.
    BCRYPT_ROUNDS: int = Field(default=12, ge=4, le=31)
    # How many passwords are hashed or checked at once; the others wait their turn without
    # holding a thread, so that a storm of logins leaves the rest of the API a core to run on.
    HASHES_AT_ONCE: PositiveInt = 1

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def split_origins(cls, value: str | list[str]) -> list[str]:
        origins = value.split(",") if isinstance(value, str) else value
        # A trailing slash would never match: browsers send the origin without one.
        origins = [origin.strip().rstrip("/") for origin in origins if origin.strip()]
        for origin in origins:
            if not ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin such as http://localhost:8001")
        return origins

    @field_validator("JWT_SECRET")
    @classmethod
    def long_enough(cls, secret: SecretStr) -> SecretStr:
        # HS256 wants a key of at least 32 bytes: a shorter one can be guessed by brute force.
        if len(secret.get_secret_value().encode()) < 32:
            raise ValueError(f"at least 32 bytes (make one: {MAKE_A_SECRET})")
        return secret


def settings_problem(error: ValidationError) -> str:
    """One line naming each bad setting and what is wrong with it."""
    problems = []
    for e in error.errors():
        name = ".".join(str(part) for part in e["loc"])
        why = "not set (in the environment or in .env)" if e["type"] == "missing" else e["msg"]
        problems.append(f"{name}: {why.removeprefix('Value error, ')}")
    return "; ".join(problems)


# The settings, read the first time they are asked for, then the same object every time
# (lru_cache): the environment and .env are read once, not at every request.
# Endpoints get them as a dependency (SettingsDep in deps.py), so a test can hand an endpoint
# other settings with app.dependency_overrides[get_settings] instead of changing the environment.
@lru_cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        # A bad setting is a mistake in the configuration, not in the program: one line that
        # names it, not a traceback. SystemExit stops whatever is starting (uvicorn, alembic).
        raise SystemExit(settings_problem(error)) from None
