"""Settings: each lesson's .env as make run writes it, and what the app in a folder will see.

Every *.example in a lesson folder becomes its real file (0600: it holds secrets); make run keeps
its DB_* lines in step with docker.env (the one source of the dev database's credentials) and
writes a fresh JWT_SECRET where the example leaves it empty. The learner's other lines stay.
"""

import os
import re
import secrets
from pathlib import Path

from dotenv import dotenv_values

from shared.ground import devdb
from shared.ground.manifest import Lesson
from shared.ground.paths import COACH, shown

# The ports of make run (the curriculum's); tests move them with AIC_*_PORT to run beside yours.
API_PORT = int(os.environ.get("AIC_API_PORT", "8000"))
PAGES_PORT = int(os.environ.get("AIC_PAGES_PORT", "8001"))
COACH_PORT = int(os.environ.get("AIC_COACH_PORT", "8002"))
# Lesson 25 on: the ports of the two groups of uvicorn workers behind nginx on API_PORT: the
# API's, and those of the streamed answers and the chat sockets.
WORKERS_PORT = int(os.environ.get("AIC_WORKERS_PORT", "8003"))
STREAMS_PORT = int(os.environ.get("AIC_STREAMS_PORT", "8004"))


def env_line(key: str, value: str) -> str:
    """KEY=value as python-dotenv reads it back: quoted when the value has spaces, # or quotes."""
    if re.fullmatch(r"[\w.:/@+,-]*", value):
        return f"{key}={value}"
    if "'" not in value:
        return f"{key}='{value}'"
    return f'{key}="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def same(key: str, old: str | None, new: str) -> bool:
    """Equal settings; for DB_HOST, localhost and 127.0.0.1 are one (the dev server is on both)."""
    loopback = {"localhost", "127.0.0.1"}
    return old == new or (key == "DB_HOST" and {old, new} <= loopback)


def owned_settings(lesson: Lesson, example: Path, current: dict) -> dict:
    """The lines of a settings file that make run keeps for the learner: the dev database's real
    settings (docker.env is their one source) and a generated JWT_SECRET where none is set."""
    wanted = {}
    if "db" in lesson.needs:
        server = devdb.settings()
        wanted.update(devdb.dev_env())
        wanted.update(POSTGRES_DB=server["dbname"], POSTGRES_USER=server["user"],
                      POSTGRES_PASSWORD=server["password"])
    if dotenv_values(example).get("JWT_SECRET") == "" and not current.get("JWT_SECRET"):
        wanted["JWT_SECRET"] = secrets.token_urlsafe(32)
    return wanted


def write_settings(lesson: Lesson, folder: Path) -> None:
    """Every *.example in the folder -> its real file (0600: it holds secrets), created when
    missing and kept in step with owned_settings(); the learner's other lines stay as they are."""
    for example in sorted(folder.glob("*.example")):
        real = example.with_suffix("")
        created = not real.exists()
        source = example if created else real
        lines, current = source.read_text().splitlines(), dotenv_values(source)
        wanted = owned_settings(lesson, example, {} if created else current)
        changed = []
        for i, line in enumerate(lines):
            match = re.match(r"\s*(?:export\s+)?([A-Za-z_]\w*)\s*=", line)
            key = match and match[1]
            if key in wanted:
                value = wanted.pop(key)
                if not same(key, current.get(key), value):
                    lines[i] = env_line(key, value)
                    changed.append(key)
        # Lines the example has and the learner's file lost come back.
        for key, value in wanted.items():
            if key in dotenv_values(example):
                lines.append(env_line(key, value))
                changed.append(key)
        if created or changed:
            devdb.write_private(real, "\n".join(lines) + "\n")
        real.chmod(0o600)
        # Names only: the values are secrets.
        secret = " and a new JWT_SECRET" if "JWT_SECRET" in changed else ""
        followed = [key for key in changed if key != "JWT_SECRET"]
        if created:
            kept = "" if "db" not in lesson.needs else (
                "; make run keeps its DB_* lines in step with docker.env, edit the others freely"
                if real.name == ".env" else " (for docker compose there), with the values of docker.env")
            print(f"created {shown(real)} from {example.name}{secret}{kept}")
        elif followed:
            print(f"updated {', '.join(followed)} in {shown(real)} to follow docker.env{secret}")
        elif secret:
            print(f"wrote a new JWT_SECRET into {shown(real)}")


def folder_settings(folder: Path) -> dict:
    """The settings the app in `folder` will see: its .env, overridden by the environment."""
    return {**dotenv_values(folder / ".env"), **os.environ}


def real_key(key: str | None) -> bool:
    """An OPENAI_API_KEY that could be real: not empty and not a placeholder such as sk-..."""
    key = (key or "").strip()
    return bool(key) and not re.search(r"\.\.\.|<|your|change|placeholder|xxx", key, re.IGNORECASE)


def llm_setup(folder: Path) -> tuple[dict, str, list | None]:
    """(environment for the app, the banner's LLM line, the coach's command or None)."""
    settings = folder_settings(folder)
    base, model = settings.get("OPENAI_BASE_URL"), settings.get("OPENAI_MODEL")
    named = f"model {model}" if model else "the app's default model"
    if base:  # a server of the learner's choice (Ollama, say): it may want no key, the client does
        extra = {} if real_key(settings.get("OPENAI_API_KEY")) else {"OPENAI_API_KEY": "unused"}
        return extra, f"the OpenAI-compatible server at {base} ({named})", None
    if real_key(settings.get("OPENAI_API_KEY")):
        return {}, f"OpenAI ({named})", None
    if not COACH.is_file():
        return {}, ("none: no OPENAI_API_KEY in .env and no offline coach (shared/coach.py) yet, "
                    "so chat answers 502"), None
    base = f"http://127.0.0.1:{COACH_PORT}/v1"
    return ({"OPENAI_BASE_URL": base, "OPENAI_API_KEY": "offline-coach"},
            f"the offline coach at {base} (shared/coach.py; put an OPENAI_API_KEY in "
            f"{shown(folder / '.env')} for OpenAI)",
            [str(COACH), "--host", "127.0.0.1", "--port", str(COACH_PORT)])
