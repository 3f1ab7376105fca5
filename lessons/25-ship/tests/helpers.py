"""Small tools the tests share: the fake LLM, tokens, and reading a stream of events.

Plain functions and classes (the fixtures that use them are in conftest.py). This module
imports nothing of the app but its settings' type, so the tests may import it at any time.
"""

import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt

from app.config import Settings

PASSWORD = "correct-horse"  # every user the tests make has it
TEST_SECRET = "a-secret-for-the-tests-only-at-least-32-bytes"


class FakeLLM:
    """Stands in for app.llm.LLM, with the same two methods: answers at once, costs nothing,
    always with the same tokens, and keeps every conversation it was sent in .asked. Each
    answer reports `used` tokens of usage, as a real LLM reports what an answer took."""

    tokens = ["Tell me", " about a project", " you are proud of."]
    reply = "".join(tokens)
    used = 100

    def __init__(self):
        self.asked: list[list[dict]] = []

    async def ask(self, messages: list[dict], usage) -> str:
        self.asked.append(messages)
        usage.tokens = self.used
        return self.reply

    async def stream(self, messages: list[dict], usage):
        self.asked.append(messages)
        for token in self.tokens:
            yield token
        usage.tokens = self.used


def make_token(user_id: int, settings: Settings, age: timedelta = timedelta(0), version: int = 0) -> str:
    """A login token for user_id, signed as the app signs one and issued `age` ago: one older
    than EXPIRY_MINUTES has expired. It has an id of its own (jti) and the user's token version
    (ver: 0 until a new password, email or logout everywhere)."""
    issued = datetime.now(UTC) - age
    claims = {"sub": str(user_id), "iat": issued, "exp": issued + timedelta(minutes=settings.EXPIRY_MINUTES),
              "jti": uuid.uuid4().hex, "ver": version}
    return jwt.encode(claims, settings.JWT_SECRET.get_secret_value(), algorithm="HS256")


def bearer(token: str) -> dict:
    """The header that sends a token."""
    return {"Authorization": f"Bearer {token}"}


def events(body: str) -> list[tuple[str, dict]]:
    """A text/event-stream body as (event, data) pairs, in order; an event without a name is
    a "message". `event: done\\ndata: {}\\n\\n` -> ("done", {})."""
    found = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            found.append((fields.get("event", "message"), json.loads(fields["data"])))
    return found
