"""The course's command line, called by the Makefile: help, check, resolve, run, diff, diffs, table.

`make` is the front door; this file does the work behind it. Everything but `run` uses only
the standard library, so it works before `make setup`.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lessons import ROOT, Lesson, UnknownLesson, all_lessons, find, previous, valid_list

API_PORT = 8000
PAGES_PORT = 8001
TARGETS = [
    ("help", "this list"),
    ("setup", "create .venv and install the pinned requirements (other targets do it when needed)"),
    ("run LESSON=NN", "run a lesson with everything it needs; Ctrl-C stops it all"),
    ("diff LESSON=NN", "what lesson NN changed since the previous one (or FROM=05 TO=09)"),
    ("diffs", "every lesson's diff, written to build/diffs/"),
    ("test", "test every lesson (LESSON=NN for one; DIR=path grades another folder)"),
    ("test PREVIOUS=1", "how many of each lesson's tests fail on the lesson before it"),
    ("lint", "ruff over lessons, shared and tests"),
    ("bench", "measure database start and make run times (ARGS=--tests adds make test)"),
    ("db / db-stop / db-reset", "start, stop or wipe (CONFIRM=1) the development Postgres"),
    ("psql", "a psql prompt on the development database"),
    ("alembic LESSON=NN ARGS=..", "an alembic command in a lesson folder, e.g. ARGS=\"history\""),
    ("clean", "remove caches and build/ (keeps .venv and your database)"),
]
# Left out of diffs: README.md, the lesson text, which is new in every lesson anyway, and (when
# git cannot say what it ignores) what a learner's folder may hold besides the lesson.
IGNORED = {"__pycache__", ".env", "docker.env", ".venv", ".pytest_cache", ".ruff_cache", ".DS_Store",
           "README.md"}


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def cmd_help(_args) -> None:
    print("AI Interview Coach: a FastAPI course in small steps\n\nLessons:")
    for lesson in all_lessons():
        print(f"  {lesson.number}  {lesson.title:<28} {lesson.summary}")
    print("\nTargets:")
    for target, text in TARGETS:
        print(f"  make {target:<24} {text}")
    print("\nStart here: make run LESSON=02   then open http://localhost:8000/docs")


def cmd_check(args) -> None:
    """Validate the Makefile's variables; print one line (the error) or nothing."""
    goals = set(args.goals.split())
    try:
        needing = sorted(goals & {"run", "diff", "alembic"})
        if needing and not (args.lesson or (args.from_ and args.to)):
            raise UnknownLesson(f"which lesson? e.g. make {needing[0]} LESSON=09 (valid: {valid_list()})")
        if "alembic" in goals and not (find(args.lesson).path / "alembic").is_dir():
            with_alembic = " ".join(x.number for x in all_lessons() if (x.path / "alembic").is_dir())
            raise UnknownLesson(f"lesson {find(args.lesson).number} has no alembic/ folder "
                                f"(lessons with one: {with_alembic})")
        for value in (args.lesson, args.from_, args.to):
            if value:
                find(value)
        if "diff" in goals and args.lesson and not args.from_ and previous(find(args.lesson)) is None:
            raise UnknownLesson(f"lesson {find(args.lesson).number} is the first: nothing before it to diff")
    except UnknownLesson as error:
        print(error)


def cmd_resolve(args) -> None:
    print(find(args.lesson).folder)


def cmd_numbers(_args) -> None:
    """The lesson numbers as a JSON list (the GitHub workflow's matrix)."""
    print(json.dumps([lesson.number for lesson in all_lessons()]))


def cmd_table(_args) -> None:
    print("| # | Lesson | What it adds | Needs |")
    print("|---|---|---|---|")
    for lesson in all_lessons():
        needs = ", ".join({"db": "database", "frontend": "front end", "llm": "LLM"}[n]
                          for n in lesson.needs) or "-"
        print(f"| {lesson.number} | [{lesson.title}](lessons/{lesson.folder}/README.md) "
              f"| {lesson.summary} | {needs} |")


# --- diff ---------------------------------------------------------------------------------

def lesson_files(folder: Path) -> list[Path]:
    """The files of a lesson folder, leaving out README.md and what git ignores (caches,
    secrets, virtualenvs); outside a git checkout, what IGNORED names."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=folder, capture_output=True, text=True, check=False)
    if listed.returncode == 0:
        files = [Path(name) for name in listed.stdout.split("\0") if name]
    else:
        files = [p.relative_to(folder) for p in folder.rglob("*") if p.suffix != ".pyc"]
    return sorted(f for f in files if (folder / f).is_file() and not IGNORED & set(f.parts))


def git_diff(old: Path, new: Path, color: bool, out=None) -> None:
    """`git diff --no-index` over clean copies, so paths read 04-name/main.py -> 05-name/main.py."""
    with tempfile.TemporaryDirectory() as tmp:
        for folder in (old, new):
            for rel in lesson_files(folder):
                target = Path(tmp, folder.name, rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(folder / rel, target)
            Path(tmp, folder.name).mkdir(exist_ok=True)
        result = subprocess.run(
            ["git", "--no-pager", "diff", "--no-index", "--stat", "--patch", "--no-prefix",
             f"--color={'always' if color else 'never'}", old.name, new.name],
            cwd=tmp, stdout=out, check=False,
        )
        if result.returncode > 1:
            fail("git diff failed")


def cmd_diff(args) -> None:
    if args.from_ and args.to:
        old, new = find(args.from_), find(args.to)
    else:
        new = find(args.lesson)
        old = previous(new) or new
    print(f"# {old.folder} -> {new.folder}: {new.summary}" if args.lesson else
          f"# {old.folder} -> {new.folder}", flush=True)
    git_diff(old.path, new.path, color=sys.stdout.isatty())


def cmd_diffs(_args) -> None:
    out_dir = ROOT / "build" / "diffs"
    out_dir.mkdir(parents=True, exist_ok=True)
    lessons = all_lessons()
    for old, new in zip(lessons, lessons[1:], strict=False):
        with open(out_dir / f"{new.folder}.diff", "w") as out:
            out.write(f"# {old.folder} -> {new.folder}: {new.summary}\n")
            out.flush()
            git_diff(old.path, new.path, color=False, out=out)
    print(f"wrote {len(lessons) - 1} diffs to {out_dir.relative_to(ROOT)}/")


# --- run ----------------------------------------------------------------------------------

def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def prepare(lesson: Lesson) -> None:
    """What a lesson needs before its app starts: settings, database, migrations."""
    for example in lesson.path.glob("*.example"):
        real = example.with_suffix("")
        if not real.exists():
            shutil.copy(example, real)
            print(f"created {real.relative_to(ROOT)} from {example.name} (edit it to change settings)")
    if "db" in lesson.needs:
        subprocess.run([sys.executable, str(ROOT / "shared" / "devdb.py"), "up"], check=True)
    if (lesson.path / "alembic").is_dir():
        print("migrations: alembic upgrade head", flush=True)
        subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=lesson.path, check=True)
    elif "db" in lesson.needs:
        warn_if_migrated_ahead(lesson)


def lesson_settings(lesson: Lesson) -> dict:
    """The settings the lesson's app will see: its .env, overridden by the environment."""
    from dotenv import dotenv_values

    return {**dotenv_values(lesson.path / ".env"), **os.environ}


def warn_if_migrated_ahead(lesson: Lesson) -> None:
    """A lesson from before Alembic on a database that a later lesson migrated past its baseline
    (say, role and place dropped) would answer 500s: say so, and how to step the schema back."""
    import psycopg2
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    later = next((x for x in all_lessons() if (x.path / "alembic").is_dir()), None)
    keeps_tables = any((lesson.path / name).exists() for name in ("schema.sql", "models.py"))
    if later is None or not keeps_tables:
        return
    settings = lesson_settings(lesson)
    try:
        conn = psycopg2.connect(host=settings.get("DB_HOST"), port=settings.get("DB_PORT"),
                                dbname=settings.get("DB_NAME"), user=settings.get("DB_USER"),
                                password=settings.get("DB_PASSWORD"), connect_timeout=3)
    except psycopg2.Error:
        return  # the app itself will report an unreachable database
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
            if not cur.fetchone()[0]:
                return
            cur.execute("SELECT version_num FROM alembic_version")
            row = cur.fetchone()
    finally:
        conn.close()
    baseline = ScriptDirectory.from_config(Config(str(later.path / "alembic.ini"))).get_base()
    if row and row[0] != baseline:
        fix = f'make alembic LESSON={later.number} ARGS="downgrade {baseline}"'
        print(f"\nwarning: database {settings.get('DB_NAME')} was migrated by lesson {later.number} or later "
              f"(alembic revision {row[0]}), so its users table is not the one lesson {lesson.number} "
              f"expects. Step it back first:\n  {fix}\n")


def cmd_run(args) -> None:
    lesson = find(args.lesson)
    has_api = (lesson.path / "main.py").is_file()
    ports = [API_PORT] + ([PAGES_PORT] if (lesson.path / "frontend").is_dir() else [])
    busy = [str(p) for p in ports if not port_free(p)]
    if busy:
        fail(f"port {' and '.join(busy)} is already in use: stop the other server (another make run?) first")
    try:
        prepare(lesson)
    except subprocess.CalledProcessError:
        fail(f"could not prepare lesson {lesson.number} (see the message above)")

    commands = []
    print(f"\nLesson {lesson.number}: {lesson.title}")
    if has_api:
        commands.append((["-m", "uvicorn", "main:app", "--reload", "--host", "127.0.0.1",
                          "--port", str(API_PORT)], lesson.path))
        print(f"  API:      http://localhost:{API_PORT}\n  Swagger:  http://localhost:{API_PORT}/docs")
    else:
        commands.append((["-m", "http.server", str(API_PORT), "--bind", "127.0.0.1"], lesson.path))
        print(f"  Page:     http://localhost:{API_PORT}/")
    if "db" in lesson.needs:
        env = lesson_settings(lesson)
        print(f"  Database: {env.get('DB_NAME')} on {env.get('DB_HOST')}:{env.get('DB_PORT')} "
              f"as {env.get('DB_USER')} (make psql opens a prompt)")
    if (lesson.path / "frontend").is_dir():
        commands.append((["-m", "http.server", str(PAGES_PORT), "--bind", "127.0.0.1"],
                         lesson.path / "frontend"))
        pages = sorted(p.name for p in (lesson.path / "frontend").glob("*.html"))
        print("  Pages:    " + "  ".join(f"http://localhost:{PAGES_PORT}/{p}" for p in pages))
    print("Press Ctrl-C to stop.\n", flush=True)

    # Ctrl-C (SIGINT) or a plain `kill` (SIGTERM) stop everything started here, even when this
    # process was started in the background (where a shell would have it ignore SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    children = [subprocess.Popen([sys.executable, *argv], cwd=cwd) for argv, cwd in commands]
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.3)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
    print("\nstopped.")


def main() -> None:
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("help").set_defaults(func=cmd_help)
    sub.add_parser("table").set_defaults(func=cmd_table)
    sub.add_parser("numbers").set_defaults(func=cmd_numbers)
    sub.add_parser("diffs").set_defaults(func=cmd_diffs)
    for name, func in (("check", cmd_check), ("diff", cmd_diff)):
        p = sub.add_parser(name)
        p.add_argument("--goals", default="")
        p.add_argument("--lesson", default="")
        p.add_argument("--from", dest="from_", default="")
        p.add_argument("--to", default="")
        p.set_defaults(func=func)
    for name, func in (("resolve", cmd_resolve), ("run", cmd_run)):
        p = sub.add_parser(name)
        p.add_argument("lesson")
        p.set_defaults(func=func)
    args = parser.parse_args()
    os.chdir(ROOT)
    try:
        args.func(args)
    except UnknownLesson as error:
        fail(str(error), code=2)


if __name__ == "__main__":
    main()
