"""Servers on free ports: a lesson's app in uvicorn, the offline coach, anything that listens.

One class for every tool that starts a server and waits for it (make fuzz, make bench, the
streaming bench): the port comes from the argv's "{port}", the output goes to a log, and a server
that exits before it listens fails at once with the end of its log, never after a long wait.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared.ground.manifest import Lesson
from shared.ground.paths import COACH, free_port, listens_on, port_free


class ServerFailed(RuntimeError):
    """A server exited before it listened, or did not listen in time; the message has its log."""


class Server:
    def __init__(self, argv: list[str], cwd: Path, env: dict, what: str, log: Path | None = None,
                 timeout: float = 30):
        self.port, self.what = free_port(), what
        self.log_path = log
        self._log = log.open("w+") if log else tempfile.TemporaryFile(mode="w+")
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise ServerFailed(f"{what} exited at startup (code {self.proc.returncode}):\n{self.tail()}")
            if not port_free(self.port) and listens_on(self.proc.pid, self.port):  # not another program
                return
            time.sleep(0.05)
        self.stop()
        raise ServerFailed(f"{what} did not listen on port {self.port} within {timeout:.0f} s:\n"
                           f"{self.tail()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, chars: int = 3000) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()[-chars:]

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def uvicorn_argv(lesson: Lesson, *options: str) -> list[str]:
    """uvicorn serving the lesson's app (its manifest `app`, main:app by default) on "{port}"."""
    return [sys.executable, "-m", "uvicorn", lesson.app, "--host", "127.0.0.1", "--port", "{port}", *options]


def coach_argv(*options: str) -> list[str]:
    """The offline coach (a stand-alone program) on "{port}"."""
    return [sys.executable, str(COACH), "--host", "127.0.0.1", "--port", "{port}", *options]
