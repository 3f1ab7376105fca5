"""Where things are, and two small helpers every layer needs (standard library only)."""

import os
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


def listens_on(pid: int, port: int) -> bool:
    """Process PID itself holds the socket that listens on TCP port PORT (the server's one process,
    uvicorn's supervisor, nginx's master), not another program. Two runs at once (make check beside
    make test, or make test's own jobs) each take free ports at random, and now and then the same
    one: the second server then cannot listen, while the first answers in its place, with another
    database behind it. Where /proc is missing (macOS) it cannot tell, and says True."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return True
    listening = set()  # the inodes of the sockets that listen on PORT
    for table in tables:
        for line in table.read_text().splitlines()[1:] if table.exists() else []:
            fields = line.split()  # sl, local address (hex ip:port), remote, state (0A: LISTEN), ..., inode
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                listening.add(f"socket:[{fields[9]}]")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in listening:
                return True
        except OSError:  # closed meanwhile
            pass
    return False


def port_free(port: int) -> bool:
    """Nothing answers on 127.0.0.1:port."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0
