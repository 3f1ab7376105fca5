"""make fuzz LESSON=NN: Schemathesis against a running lesson, with every check it has.

    .venv/bin/python shared/fuzz.py 13                      default budget
    .venv/bin/python shared/fuzz.py 13 --max-examples 5     a quick pass (what make test runs)
    .venv/bin/python shared/fuzz.py 13 --dir my-copy        the lesson's setup, another folder's code
    .venv/bin/python shared/fuzz.py 13 -- --seed 1          anything after -- goes to `st run`

The lesson's app is started with uvicorn on a free port. A lesson that needs the database gets
a throwaway one (aic_fuzz_NN, migrated with `alembic upgrade head` when the lesson has Alembic),
never the learner's aic_db. Schemathesis reads the app's /openapi.json and checks every answer
against it: no 5xx, only documented status codes, bodies matching their schemas, bad input
refused, good input accepted. Everything started here is stopped at the end; the exit status is
Schemathesis's (0: nothing flagged).

One check is left out: allow_header_conformance. For a method a path does not have (OPTIONS
/api/users/1), Starlette answers 405 with the Allow header of the first route on that path
(GET), not of all of them; that is the framework's routing, not something a lesson teaches.
And one failure is accepted (shared/fuzz_hooks.py): a password the schema allows (72 characters)
that the API refuses for being over bcrypt's 72 bytes, a rule JSON Schema cannot express.
"""

import argparse
import fcntl
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

from lessons import ROOT, UnknownLesson, find

SCHEMATHESIS = Path(sys.executable).with_name("st")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, proc: subprocess.Popen, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the lesson's app exited at startup:\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"the lesson's app did not listen on port {port} within {timeout:.0f} s")


def app_env(lesson, folder: Path) -> dict:
    """The environment of the app under test: a throwaway database and made-up secrets."""
    env = dict(os.environ)
    if "db" in lesson.needs:
        import devdb

        env.update(devdb.create_test_database(f"aic_fuzz_{lesson.number}"))
        if (folder / "alembic").is_dir():
            subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=folder, env=env,
                           check=True, capture_output=True)
    env.setdefault("JWT_SECRET", secrets.token_urlsafe(32))
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("lesson")
    parser.add_argument("--max-examples", type=int, default=50, help="test cases per operation (default 50)")
    parser.add_argument("--dir", type=Path, help="fuzz the code in this folder instead of the lesson's own")
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []  # for `st run` itself
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    try:
        lesson = find(args.lesson)
    except UnknownLesson as e:
        sys.exit(str(e))
    folder = (args.dir or lesson.path).resolve()
    if not (folder / "main.py").is_file():
        sys.exit(f"{folder} has no main.py: lesson {lesson.number} has no API to fuzz")
    if not SCHEMATHESIS.exists():
        sys.exit(f"no {SCHEMATHESIS}: run make setup (schemathesis is in requirements-dev.txt)")

    # Schemathesis writes its cache and reports under the current folder: keep them in build/,
    # beside the app's own log (tracebacks of any 500 are there).
    build = ROOT / "build"
    build.mkdir(exist_ok=True)
    log = build / f"fuzz-{lesson.number}.log"
    # Two fuzz runs of one lesson at once would drop each other's database: the second waits.
    (ROOT / ".data").mkdir(exist_ok=True)
    lock = open(ROOT / ".data" / f"aic_fuzz_{lesson.number}.lock", "w")  # held until this process ends
    fcntl.flock(lock, fcntl.LOCK_EX)
    port = free_port()
    with log.open("w") as out:
        app = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=folder, env=app_env(lesson, folder), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(port, app, log)
        command = [
            str(SCHEMATHESIS), "run", f"http://127.0.0.1:{port}/openapi.json",
            "--checks", "all", "--exclude-checks", "allow_header_conformance",
            "--max-examples", str(args.max_examples),
            "--workers", "1", "--generation-database", "none", "--no-color", *extra,
        ]
        print(f"lesson {lesson.number}: {' '.join(command[1:])}\n(the app's log: {log.relative_to(ROOT)})",
              flush=True)
        hooks = {"SCHEMATHESIS_HOOKS": str(Path(__file__).with_name("fuzz_hooks.py"))}
        return subprocess.run(command, cwd=build, env={**os.environ, **hooks}).returncode
    finally:
        app.terminate()
        try:
            app.wait(timeout=10)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()


if __name__ == "__main__":
    sys.exit(main())
