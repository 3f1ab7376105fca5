"""The maintainer's command line: test, site, diffs, table, bench, fuzz, db, alembic.

    python -m shared test [NN | CHECK] [--dir F] [--previous]    make test (every job, or one)
    python -m shared site [--vendor-only]       the course site in build/site/ (mkdocs --strict)
    python -m shared diffs                      every lesson's diff in build/diffs/
    python -m shared table                      the README's lesson table, from the manifest
    python -m shared bench [...]                make check / make test times (tools/bench.py)
    python -m shared bench-stream [...]         streaming under load (tools/bench_stream.py)
    python -m shared bench-ship [...]           lesson 25 behind nginx (tools/bench_ship.py)
    python -m shared bench-protect [...]        lesson 24 under storms (tools/bench_protect.py)
    python -m shared bench-pool [...]           100 requests at once, lessons 17 on (tools/bench_pool.py)
    python -m shared fuzz NN [--max-examples N] [--dir F] [-- ST-ARGS]   Schemathesis
    python -m shared db up|stop|status|reset|psql|url     the development Postgres
    python -m shared alembic NN [ARGS...]       alembic in a lesson folder, with make run's .env
    python -m shared mutants check|requirements NN [...]   grading by mutants (services/mutation.py)
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.cli.front import Stop
from shared.ground import devdb
from shared.ground.files import diff_header, folder_problem, lesson_diff, steps_table
from shared.ground.manifest import UnknownLesson, all_lessons, check_jobs, find, find_check, previous
from shared.ground.paths import BUILD, ROOT
from shared.services import mutation, testrun
from shared.services.fuzzing import CannotFuzz, fuzz
from shared.services.grading import failing_requirements
from shared.services.settings import write_settings
from shared.services.site import SiteError, build, vendor
from shared.tools import bench, bench_pool, bench_protect, bench_ship, bench_stream

# --- make test ------------------------------------------------------------------------------

def print_runs(runs: list[testrun.JobRun], wall: float) -> bool:
    for run in runs:
        if not run.ok:
            print(f"\n===== {run.job.key} {run.job.label} =====")
            print(run.output.rstrip())
    print()
    for run in runs:
        c = run.counts()
        print(f"{'ok  ' if run.ok else 'FAIL'} {run.job.key:<8} {run.job.label:<28} {c['passed']:3d} passed "
              f"{c['failed']:2d} failed {c['skipped']:2d} skipped {run.seconds:5.1f} s  {run.note}".rstrip())
    failing = [run.job.key for run in runs if not run.ok]
    totals = {k: sum(run.counts()[k] for run in runs) for k in ("passed", "failed", "skipped")}
    print(f"test runs: {len(runs) - len(failing)} of {len(runs)} green in {wall:.1f} s"
          + (f" (failing: {' '.join(failing)})" if failing else ""))
    print(f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    return not failing


def cmd_test(args) -> None:
    check = find_check(args.job) if args.job else None
    lessons = [find(args.job)] if args.job and not check else all_lessons()
    if args.previous:
        return against_previous(lessons)
    if args.dir:
        if check or not args.job:
            raise Stop("DIR= grades one folder: name the lesson whose tests to use (LESSON=NN)",
                       code=Stop.BAD_ARGUMENT)
        problem = folder_problem(lessons[0], Path(args.dir))
        if problem:
            raise Stop(problem, code=Stop.BAD_ARGUMENT)
    folder = Path(args.dir).resolve() if args.dir else None
    pairs = [(check, None)] if check else [(x, folder) for x in lessons]
    if not args.job:
        pairs = [(job, None) for job in check_jobs()] + pairs
    started, load_before = time.monotonic(), os.getloadavg()[0]
    runs = testrun.run_jobs(pairs, jobs=args.jobs)
    wall = time.monotonic() - started
    if not args.job:
        testrun.write_summary(runs, wall, args.jobs, load_before)
    if not print_runs(runs, wall):
        raise Stop("", code=Stop.RED)


def against_previous(lessons) -> None:
    """Per lesson, how many of its tests fail on the previous lesson's code, and which lines."""
    pairs = [(lesson, previous(lesson).path) for lesson in lessons if previous(lesson)]
    runs = testrun.run_jobs(pairs, tag="-on-previous", options=testrun.BRIEF_TRACEBACKS)
    unexplained = []
    for run in runs:
        lesson, before = run.job, previous(run.job)
        c = run.counts()
        total = c["passed"] + c["failed"]
        print(f"{lesson.number}: {c['failed']:3d} of {total:3d} tests fail on {before.folder}")
        for line in failing_requirements(lesson, run.results):
            print(f"      - {line}")
        if not c["failed"]:
            reason = lesson.skip_check_unsolved
            print(f"      (every test passes before the lesson: {reason})" if reason else
                  "      every test already passes on the lesson before: the tests do not check "
                  "what this step adds (or say why in lessons.toml: skip_check_unsolved = \"...\")")
            unexplained += [] if reason else [lesson.number]
    if unexplained:
        raise Stop(f"lessons whose tests need nothing of their own step: {' '.join(unexplained)}",
                   code=Stop.RED)


# --- site, diffs, table ---------------------------------------------------------------------

def cmd_site(args) -> None:
    try:
        vendor() if args.vendor_only else build()
    except SiteError as error:
        raise Stop(str(error), code=Stop.RED) from None


def cmd_diffs(_args) -> None:
    out_dir = BUILD / "diffs"
    out_dir.mkdir(parents=True, exist_ok=True)
    lessons = all_lessons()
    for old, new in zip(lessons, lessons[1:], strict=False):
        with open(out_dir / f"{new.folder}.diff", "w") as out:
            out.write(diff_header(old, new) + "\n")
            out.flush()
            lesson_diff(old, new, color=False, out=out)
    (out_dir / "index.md").write_text("# The course's diffs, one per step\n\n"
                                      + steps_table(lambda x: f"[{x.folder}.diff]({x.folder}.diff)"))
    print(f"wrote {len(lessons) - 1} diffs to {out_dir.relative_to(ROOT)}/ (index: index.md)")


def cmd_table(_args) -> None:
    print("| # | Lesson | What it adds | Needs |")
    print("|---|---|---|---|")
    for lesson in all_lessons():
        needs = ", ".join({"db": "database", "frontend": "front end", "llm": "LLM"}[n]
                          for n in lesson.needs) or "-"
        print(f"| {lesson.number} | [{lesson.title}](lessons/{lesson.folder}/README.md) "
              f"| {lesson.summary} | {needs} |")


# --- fuzz, db, alembic, bench ---------------------------------------------------------------

def cmd_fuzz(args) -> None:
    lesson = find(args.lesson)
    folder = Path(args.dir).resolve() if args.dir else lesson.path
    try:
        report = Path(args.report) if args.report else None
        if fuzz(lesson, folder, args.max_examples, args.st_args, report):
            raise Stop("", code=Stop.RED)
    except CannotFuzz as error:
        raise Stop(str(error), code=Stop.RED) from None


def cmd_db(args) -> None:
    try:
        if args.action == "up":
            print(devdb.ensure_running())
        elif args.action == "stop":
            print(devdb.stop())
        elif args.action == "status":
            answering, line = devdb.status()
            print(line)
            if not answering:
                raise Stop("", code=Stop.RED)
        elif args.action == "reset":
            print(devdb.reset(os.environ.get("CONFIRM") == "1"))
        elif args.action == "url":
            print(devdb.url())
        elif args.action == "psql":
            print(devdb.ensure_running(), file=sys.stderr)
            devdb.psql(args.args)
    except devdb.DevDBError as error:
        raise Stop(f"devdb: {error}", code=Stop.RED) from None


def cmd_alembic(args) -> None:
    """alembic ARGS in the lesson's folder, after writing its .env as make run does."""
    lesson = find(args.lesson)
    write_settings(lesson, lesson.path)
    done = subprocess.run([sys.executable, "-m", "alembic", *args.args], cwd=lesson.path)
    if done.returncode:
        raise Stop("", code=done.returncode)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("test")
    p.add_argument("job", nargs="?", default="", help="a lesson, or a check job's name")
    p.add_argument("--dir", default="")
    p.add_argument("--previous", action="store_true")
    p.add_argument("--jobs", type=int, default=testrun.JOBS)
    p.set_defaults(func=cmd_test)
    p = sub.add_parser("site")
    p.add_argument("--vendor-only", action="store_true")
    p.set_defaults(func=cmd_site)
    sub.add_parser("diffs").set_defaults(func=cmd_diffs)
    sub.add_parser("table").set_defaults(func=cmd_table)
    p = sub.add_parser("fuzz")
    p.add_argument("lesson")
    p.add_argument("--max-examples", type=int, default=50)
    p.add_argument("--dir", default="")
    p.add_argument("--report", default="", help="also write the per-operation counts here, as JSON")
    p.set_defaults(func=cmd_fuzz, st_args=[])
    p = sub.add_parser("db")
    p.add_argument("action", choices=["up", "stop", "status", "reset", "psql", "url"])
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_db)
    p = sub.add_parser("alembic")
    p.add_argument("lesson")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_alembic)
    # Tools with command lines of their own: everything after the name goes to their main().
    # (mutants is what make check runs for a lesson graded by mutants.)
    tools = {"bench": bench, "bench-stream": bench_stream, "bench-ship": bench_ship,
             "bench-protect": bench_protect, "bench-pool": bench_pool, "mutants": mutation}
    for name, tool in tools.items():
        p = sub.add_parser(name, add_help=False)
        p.set_defaults(func=lambda a, tool=tool: tool.main(a.rest))
        p.add_argument("rest", nargs=argparse.REMAINDER)
    st_args = argv[argv.index("--") + 1:] if argv[0] == "fuzz" and "--" in argv else []  # for `st run`
    ours = argv[:argv.index("--")] if st_args or argv[-1:] == ["--"] else argv
    args, unknown = parser.parse_known_args(ours)
    if unknown and hasattr(args, "rest"):  # a tool's options: REMAINDER leaves them out when they come first
        args.rest = [*unknown, *args.rest]
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if st_args:
        args.st_args = st_args
    os.chdir(ROOT)
    # A SIGTERM (kill, pkill, a CI runner giving up) stops a command as Ctrl-C does: its
    # `finally` blocks stop the servers it started. By default Python would just die, and a
    # killed bench left its coach, workers, nginx and load running, slowing every later run.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        args.func(args)
    except Stop as stop:
        if str(stop):
            print(stop, file=sys.stderr)
        return stop.code
    except UnknownLesson as error:
        print(error, file=sys.stderr)
        return 2
    return 0
