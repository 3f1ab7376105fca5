"""The commands that work before `make setup`, on any Python 3.11 (standard library only):
help (`make`), validate-make-args (the Makefile checks LESSON=/FROM=/TO= with it before any
target runs), and the lists CI builds its job matrix from (numbers, checks)."""

import argparse
import json

from shared.ground.manifest import (
    UnknownLesson,
    all_lessons,
    check_jobs,
    find,
    find_check,
    previous,
    valid_list,
)


class Stop(Exception):
    """Ends a command of the learner's or the maintainer's command line: its message (if any) on
    stderr and its exit code: BAD_ARGUMENT for a value that names nothing, RED for a command that
    ran and failed (a red check, a failing test run), INTERRUPTED for one stopped by Ctrl-C."""

    BAD_ARGUMENT, RED, INTERRUPTED = 2, 1, 130

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


# `make help`, in two groups: what a learner types, then what an instructor or maintainer types.
# One line per target: (group, target, what it does). Add yours with a small edit.
LEARN, MAINTAIN = "Learning (start here)", "Teaching and maintaining"
TARGETS = [
    (LEARN, "run LESSON=NN", "run a lesson with everything it needs; Ctrl-C stops it all"),
    (LEARN, "diff LESSON=NN", "what lesson NN changed since the previous one (or FROM=05 TO=09)"),
    (LEARN, "test LESSON=NN", "a lesson's tests (DIR=path grades your own folder with them)"),
    (LEARN, "start LESSON=NN", "do lesson NN yourself in workspace/ (a copy of the lesson before)"),
    (LEARN, "check LESSON=NN", "grade your workspace folder: a checklist with a hint"),
    (LEARN, "watch LESSON=NN", "make check, and again each time you save a file; Ctrl-C stops"),
    (LEARN, "run LESSON=NN MINE=1", "run your workspace folder instead of the model answer"),
    (LEARN, "solution LESSON=NN", "your workspace folder against the model answer (a diff)"),
    (LEARN, "progress", "which lessons you have passed (make check records them)"),
    (LEARN, "site / site-serve", "the course as a website in build/site/ (offline); serve it on :8080"),
    (LEARN, "db / db-stop / db-status", "start, stop, or ask who answers: the development Postgres"),
    (LEARN, "db-reset CONFIRM=1", "delete the development data (after changing docker.env, say)"),
    (LEARN, "psql", "a psql prompt on the development database"),
    (LEARN, "alembic LESSON=NN ARGS=..", "an alembic command in a lesson folder, e.g. ARGS=\"history\""),
    (LEARN, "setup", "create .venv with the pinned requirements (other targets do it for you)"),
    (LEARN, "clean", "remove caches and build/ (keeps .venv and your database)"),
    (LEARN, "help", "this list"),
    (MAINTAIN, "test", "test every lesson and the check jobs, one job per core"),
    (MAINTAIN, "test PREVIOUS=1", "how many of each lesson's tests fail on the lesson before it"),
    (MAINTAIN, "diffs", "every lesson's diff, written to build/diffs/"),
    (MAINTAIN, "lint", "ruff, and import-linter's layers of shared/"),
    (MAINTAIN, "bench", "make check and make test times, database start, make run (ARGS=--help)"),
    (MAINTAIN, "bench-stream", "streaming under load, lessons 20-21 (STREAM_ARGS=..)"),
    (MAINTAIN, "bench-ship", "lesson 25 behind nginx: workers, memory, connections (SHIP_ARGS=..)"),
    (MAINTAIN, "bench-protect", "lesson 24 under storms: GET /api/me p99 (PROTECT_ARGS=..)"),
    (MAINTAIN, "bench-pool", "100 requests at once, lessons 17 on (LESSON=NN, POOL_ARGS=..)"),
    (MAINTAIN, "fuzz LESSON=NN", "Schemathesis against the lesson's API, logged in (EXAMPLES=n, ARGS=..)"),
    (MAINTAIN, "table", "the README's lesson table, from shared/lessons.toml"),
]
# Targets that need a lesson, and whether FROM=/TO= may name a span instead.
NEED_A_LESSON = {"run", "diff", "alembic", "fuzz"}


def show_help() -> None:
    print("AI Interview Coach: a FastAPI course in small steps\n\nLessons:")
    for lesson in all_lessons():
        print(f"  {lesson.number}  {lesson.title:<28} {lesson.summary}")
    for group in (LEARN, MAINTAIN):
        print(f"\n{group}:")
        for _, target, text in (t for t in TARGETS if t[0] == group):
            print(f"  make {target:<26} {text}")
    print("\nStart here: make run LESSON=02   then open http://localhost:8000/docs")


def make_args_error(goals: set[str], lesson: str, from_: str, to: str) -> str:
    """One line saying what is wrong with the Makefile's LESSON/FROM/TO for these goals, or ""."""
    try:
        if goals & {"test"} and lesson and find_check(lesson):  # make test LESSON=site: a check job
            return ""
        for value in (lesson, from_, to):
            if value:
                find(value)
        needing = sorted(goals & NEED_A_LESSON)
        if (from_ or to) and not goals & {"diff"}:
            return "FROM= and TO= are for make diff only (e.g. make diff FROM=05 TO=09)"
        if "diff" in goals and bool(from_) != bool(to):
            given, missing = ("FROM", "TO") if from_ else ("TO", "FROM")
            return (f"make diff with {given}= needs {missing}= too, e.g. make diff FROM=05 TO=09 "
                    "(or LESSON=09 for one step)")
        spans = "diff" in goals and from_ and to
        if needing and not lesson and not spans:
            return f"which lesson? e.g. make {needing[0]} LESSON=09 (valid: {valid_list()})"
        if "alembic" in goals and not (find(lesson).path / "alembic").is_dir():
            with_alembic = " ".join(x.number for x in all_lessons() if (x.path / "alembic").is_dir())
            return f"lesson {find(lesson).number} has no alembic/ folder (lessons with one: {with_alembic})"
        if "diff" in goals and lesson and not from_ and previous(find(lesson)) is None:
            return f"lesson {find(lesson).number} is the first: nothing before it to diff"
    except UnknownLesson as error:
        return str(error)
    return ""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("help", help="the lessons and the make targets")
    check = sub.add_parser("validate-make-args", help="one line when LESSON/FROM/TO do not fit the goals")
    for name in ("--goals", "--lesson", "--from", "--to"):
        check.add_argument(name, default="")
    sub.add_parser("numbers", help="the lesson numbers as JSON (CI's matrix)")
    sub.add_parser("checks", help="the check jobs' names as JSON (CI's matrix)")
    args = parser.parse_args(argv)
    if args.command == "help":
        show_help()
    elif args.command == "validate-make-args":
        error = make_args_error(set(args.goals.split()), args.lesson, getattr(args, "from"), args.to)
        if error:
            print(error)
    elif args.command == "numbers":
        print(json.dumps([lesson.number for lesson in all_lessons()]))
    elif args.command == "checks":
        print(json.dumps([check.name for check in check_jobs()]))
    return 0
