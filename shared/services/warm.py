"""The warm server: a process kept between one make check and the next, which has the packages a
check imports loaded already, and forks each check's pytest from them.

A check's pytest in a new interpreter spends its first second or two importing pytest, FastAPI,
SQLAlchemy and openai (lesson 02's whole check: 1.9 s, of which its tests take 0.4). make watch
forks its checks from a process that has them loaded, but that process ends with the watch. So
the first make check starts this server in the background, in a session of its own, and it
outlives the check, as Gradle's daemon or mypy's dmypy do; the checks after it fork their
pytest from it. No library does this for pytest (pytest-xdist's workers live as long as one
run), hence these lines.

    server   build/warm/: a Unix socket (check.sock) in a folder only this user may enter (a
             request names the environment a process runs with), a lock (one server per clone)
             and server.log. It imports preload.py's packages, then waits. Per request it forks:
             the child runs the job (inprocess.pytest_here) in a process group of its own, and
             writes its pid, then its exit status, back on the request's connection. A job's
             pytest-xdist workers are forked here the same way (warm_worker.py), into its group.
    ends     after IDLE seconds without a request; when a file it runs or the installed packages
             changed (a git pull, make setup: the request that finds it so gets "stale", and the
             check starts a new one); when build/ is deleted (make clean); on SIGTERM.
    off      AIC_WARM=0 in the environment: every check starts a new interpreter, as before.
             The course's own tests set it (tests/conftest.py), so that no make check they run
             leaves a server behind.

A job forked here runs as testrun's forked jobs do, and test_course.py holds both to a new
interpreter's behaviour. The request carries the job's whole environment, and the child runs
with exactly that; what the server inherited from the check that started it does not reach a job.
"""

import fcntl
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import types
from pathlib import Path

from shared.ground.paths import BUILD, ROOT
from shared.services.inprocess import end_now, pytest_here

FOLDER = BUILD / "warm"
IDLE = 20 * 60  # seconds: a learner reads and edits between checks; memory is held meanwhile
TICK = 10       # seconds between the server's looks at its folder, its files and its idle time
SOCKET_PATH_MAX = 100  # a Unix socket's path has room for 107 bytes on Linux, 103 on macOS


class TimedOut(Exception):
    """The job ran past its time limit and was stopped (killed, with its process group)."""

    def __init__(self, pid: int):
        super().__init__(f"job {pid} ran past its time limit")
        self.pid = pid


def enabled(folder: Path) -> bool:
    return os.environ.get("AIC_WARM", "1") != "0" and len(str(folder / "check.sock")) <= SOCKET_PATH_MAX


# --- the check's side -----------------------------------------------------------------------

def run(args: list[str], env: dict, report: Path, timeout: float | None, folder: Path = FOLDER) -> int | None:
    """pytest ARGS with exactly ENV, forked from the warm server, its report written to REPORT:
    its exit status; None when no server answers (none yet, or one out of date), and the caller
    runs the job itself. TimedOut past `timeout` seconds. Ctrl-C (or a SIGTERM made one) stops
    the job as it would stop a pytest in the check's own process group: SIGINT, its fixtures
    tear down, and after 10 s it is killed."""
    if not enabled(folder):
        return None
    conn = socket.socket(socket.AF_UNIX)
    try:
        conn.settimeout(5)
        conn.connect(str(folder / "check.sock"))
        conn.sendall(json.dumps({"args": args, "env": env, "report": str(report)}).encode() + b"\n")
        # A fork takes milliseconds. Waited for long, on a machine that busy: a check that gave up
        # on a job the server forks all the same would run its own beside it (the job stops once
        # it finds the check gone, but may have started to write the results file by then).
        conn.settimeout(30)
        lines = Lines(conn)
        first = json.loads(lines.next() or b"{}")
    except (OSError, ValueError):  # none there, gone meanwhile, or not answering
        conn.close()
        return None
    if "pid" not in first:  # "stale": it is ending; the caller starts a new one
        conn.close()
        return None
    pid = first["pid"]
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        status = wait_for_status(conn, lines, pid, deadline)
        if status is None:
            stop_job(pid, signal.SIGKILL)
            raise TimedOut(pid)
        return status
    except BaseException as error:
        if not isinstance(error, TimedOut):  # Ctrl-C: as a pytest in our process group would get it
            stop_job(pid, signal.SIGINT)
            if wait_for_status(conn, lines, pid, time.monotonic() + 10) is None:
                stop_job(pid, signal.SIGKILL)
        raise
    finally:
        conn.close()


class Lines:
    """The lines that come on a socket, one at a time. (socket.makefile's reader cannot be read
    again once a read timed out; the waits below time out every second.)"""

    def __init__(self, conn: socket.socket, buffer: bytes = b""):
        self.conn, self.buffer = conn, buffer

    def next(self) -> bytes:
        """The next line; b"" once the other side has closed. TimeoutError as the socket's."""
        while b"\n" not in self.buffer:
            chunk = self.conn.recv(4096)
            if not chunk:
                return b""
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


def wait_for_status(conn: socket.socket, lines: Lines, pid: int, deadline: float | None) -> int | None:
    """The job's exit status once it has ended; None at the deadline. A job that died without
    a word (killed) has status 1: the check reads what its results say."""
    conn.settimeout(1)
    while deadline is None or time.monotonic() < deadline:
        try:
            line = lines.next()
        except TimeoutError:
            if not alive(pid):
                return 1
            continue
        if not line:  # the connection closed: the job ended without sending its status
            return 1
        return int(json.loads(line)["status"])
    return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # the pid went to another user's process since
        return False


def stop_job(pid: int, sig: int) -> None:
    """Sends SIG to the job and to every process it started (its process group)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start(folder: Path = FOLDER) -> None:
    """Starts a warm server in the background for the checks to come (it loads the packages on
    the core the current check leaves free). Does nothing when disabled; a second server finds
    the lock taken and ends at once."""
    if not enabled(folder):
        return
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    with open(folder / "server.log", "ab") as log:
        # A session of its own (Ctrl-C in the terminal does not reach it); the process started
        # here forks the server and ends at once (see the end of this file).
        subprocess.run([sys.executable, "-m", "shared.services.warm", str(folder)], cwd=ROOT, env=env,
                       stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, check=False)


def ready(folder: Path = FOLDER) -> bool:
    """A server of the folder is up and takes requests (it binds its socket once it has loaded
    the packages, then writes its pid)."""
    try:
        return (folder / "check.sock").exists() and alive(int((folder / "pid").read_text()))
    except (OSError, ValueError):
        return False


def stop(folder: Path = FOLDER) -> bool:
    """Stops the folder's server, if one runs: True when there was one."""
    try:
        pid = int((folder / "pid").read_text())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


# --- the server's side ----------------------------------------------------------------------

def own_files() -> dict[str, int]:
    """What the server runs and could go out of date: the course's modules it has loaded, and
    the installed packages' folder (make setup, pip install), each with its change time."""
    paths = {m.__file__ for m in list(sys.modules.values())
             if getattr(m, "__file__", None) and Path(m.__file__).is_relative_to(ROOT / "shared")}
    paths.update(p for p in sys.path if "site-packages" in p)
    return {path: changed_at(path) for path in paths}


def changed_at(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def serve(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lock = open(folder / "lock", "w")  # held for the server's life: one server per folder
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return
    import shared.services.preload  # noqa: F401  (importing it is what it does)

    files = own_files()
    path = folder / "check.sock"
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(8)
    listener.settimeout(TICK)
    ours = path.stat().st_ino
    (folder / "pid").write_text(f"{os.getpid()}\n")
    # The jobs end on their own: the kernel reaps them, nobody here waits for them.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"{time.strftime('%H:%M:%S')} warm server {os.getpid()} ready", flush=True)
    last = time.monotonic()
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                gone = changed_at(str(path)) == -1 or path.stat().st_ino != ours
                if gone or time.monotonic() - last > IDLE:
                    break
                continue
            last = time.monotonic()
            with conn:
                if answer(conn, (listener, lock), files) == "stale":
                    print(f"{time.strftime('%H:%M:%S')} out of date: ending", flush=True)
                    break
    finally:
        if changed_at(str(path)) != -1 and path.stat().st_ino == ours:
            path.unlink()
        print(f"{time.strftime('%H:%M:%S')} warm server {os.getpid()} ended", flush=True)


def answer(conn: socket.socket, held: tuple, files: dict[str, int]) -> str:
    """Reads one request and forks its job, or a worker of a job (warm_worker.py); "stale" when
    the server is out of date. `held`: the server's listening socket and lock, which the forked
    processes close."""
    fds: list[int] = []
    try:
        conn.settimeout(2)  # the check sends its request at once
        first, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)  # a worker's request carries its stdio
        request = json.loads(Lines(conn, first).next())
        if any(changed_at(p) != t for p, t in files.items()):
            conn.sendall(b'{"stale": true}\n')
            return "stale"
        if "worker" in request:
            wanted = request["worker"]
            # Only for a job forked here: its workers join its process group (in this server's
            # session), where Ctrl-C and its time limit reach them.
            if len(fds) != 3 or wanted["sid"] != os.getsid(0):
                conn.sendall(b'{"refused": true}\n')
                return "refused"
            if os.fork() == 0:
                worker(conn, held, fds, wanted["argv"], wanted["env"], wanted["cwd"], wanted["pgid"])
            return "forked a worker"
        args, env, report = request["args"], request["env"], request["report"]
        if os.fork() == 0:
            job(conn, held, args, env, report)
        return "forked"
    except (OSError, ValueError, KeyError, TypeError):
        return "bad request"
    finally:
        for fd in fds:  # the forked worker has its copies; the pipes must close with it alone
            os.close(fd)


def job(conn: socket.socket, held: tuple, args: list[str], env: dict, report: str) -> None:
    """The forked child: a process group of its own (the check stops it and whatever it
    started at once), the signals as a new interpreter has them, its pid and then its exit
    status back to the check. Never returns."""
    try:
        for inherited in held:  # a job outliving the server must not keep its lock or socket
            inherited.close()
        conn.settimeout(None)
        os.setpgid(0, 0)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        threading.Thread(target=stop_when_the_check_is_gone, args=(conn,), daemon=True).start()

        def tell(status: int) -> None:
            conn.sendall(json.dumps({"status": status}).encode() + b"\n")

        pytest_here(args, env, report, last=tell)
    finally:
        os._exit(1)  # reached only if the job could not even start


def worker(conn: socket.socket, held: tuple, fds: list[int], argv: list[str], env: dict, cwd: str,
           pgid: int) -> None:
    """The forked child for warm_worker.py: with the relay's stdin, stdout and stderr, its
    environment and folder, in its process group, it runs the code execnet gave the relay's
    command line (`-u -c CODE`) as that interpreter's __main__ would, then sends its exit status
    back. Never returns."""
    try:
        for inherited in held:
            inherited.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.setpgid(0, pgid)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        conn.settimeout(None)
        conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        # The streams as `python -u` has them, on the relay's descriptors
        sys.stdin = open(0, closefd=False)
        sys.stdout = io.TextIOWrapper(open(1, "wb", buffering=0, closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(open(2, "wb", buffering=0, closefd=False), write_through=True)
        sys.argv = ["-c", *argv[argv.index("-c") + 2:]]
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main

        def tell(status: int) -> None:
            conn.sendall(json.dumps({"status": status}).encode() + b"\n")

        try:
            exec(compile(argv[argv.index("-c") + 1], "<string>", "exec"), main.__dict__)
            status = 0
        except SystemExit as end:
            status = end.code if isinstance(end.code, int) else 0 if end.code is None else 1
        except BaseException:
            traceback.print_exc()
            status = 1
        end_now(status, last=tell)
    finally:
        os._exit(1)  # reached only if the worker could not even start


def stop_when_the_check_is_gone(conn: socket.socket) -> None:
    """In a thread of the job: once the check that asked for it is gone without stopping it (a
    SIGKILL, its terminal closed), the job stops as it would on Ctrl-C, and is killed 10 s later
    if it has not ended by then. (A job is not in the check's process group, so nothing else
    would reach it.) The check sends nothing after its request: recv returns only once its end of
    the connection is closed."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    stop_job(os.getpid(), signal.SIGINT)
    time.sleep(10)
    stop_job(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    # Forked off, and its parent ends: the server is nobody's child (the system's init adopts
    # it), so no check, watch or test waits for it, or leaves it a zombie when it ends.
    if os.fork() == 0:
        serve(Path(sys.argv[1]))
