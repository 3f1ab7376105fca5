"""Where things are, and two small helpers every layer needs (standard library only)."""

import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SHARED = ROOT / "shared"
LESSONS_DIR = ROOT / "lessons"
TESTS_DIR = ROOT / "tests"
BUILD = ROOT / "build"
RESULTS = BUILD / "test-results"
COACH = SHARED / "coach.py"


def shown(path: Path | str) -> str:
    """A path as a user reads it: relative to the repo when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    """Nothing answers on 127.0.0.1:port."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0
