"""Grading by mutants (lesson 23 on): the learner's own tests must catch small bugs planted in the
model answer's app.

    python -m shared mutants check 23 [--dir FOLDER]   grade a folder (default: workspace/23-...)
    python -m shared mutants requirements 23          the checklist's lines

make check runs the first for a lesson whose manifest `grader` is "mutants" (shared/services/
grading.py reads its --results JSON).

A lesson graded this way holds an app (app/, as the lesson before left it) and the learner's tests
(tests/, with their pytest settings). Its mutants are in shared/mutants/<lesson folder>.toml, each
one small realistic bug written as edits: in this file of the app, this exact text (found exactly
once) becomes that. The checklist: the suite passes on the learner's own app, it makes its own
database; then one line per mutant, "Your tests catch: <bug>", met when the suite fails on the
model answer's app with that bug planted.

Each run is one pytest in a copy of the learner's folder (for a mutant, the copy's app/ is the
model's with the bug), two or more at once (one per core), each with a database of its own:
TEST_DB_NAME names it (the suite creates and migrates it); DB_NAME is a throwaway name as well, so
a suite that ignores TEST_DB_NAME still cannot reach the learner's data; OPENAI_BASE_URL points at
a closed port, so no test reaches a paid LLM. A run on a mutant stops at the first failing test
(-x); one that does not finish within MUTANT_TIMEOUT counts as caught, as mutation testing tools
count it (a hang is a failure a person notices). Results come from pytest's junit XML and
coverage's JSON report and data file, never from their text.

Most of a check's time went into mutant runs passing the tests that come before the one that
catches the bug (a run stops at its first failure). So the run on the learner's app records which
test ran which line (coverage's dynamic contexts, --cov-context=test), and a mutant's run starts
with the tests that run the lines its edits change (for a line that runs at import, a class body
say, any line of its file), then the others, each group in the suite's own order.
A test that fails there fails in the suite's order as well, but only when the tests do not lean on
each other (a user an earlier test signed up, a row it left): beside the run on the learner's
app, the suite runs once more in reverse order on the model's app (-x), and only when that passes
too are the mutants' runs reordered (a reverse run that takes more than twice as long as the
first counts as failed; a mutant's run that starts while the first is still going, on a core that
would wait, keeps the suite's order). When the learner changed app/, the suite runs on the model's app in its
own order instead (the baseline: it must pass there too), and the mutants keep the suite's order.
Nothing is left out: a run that catches nothing has run every test.

Hand-made: mutation testing tools (mutmut, cosmic-ray) plant every mutation they can generate and
report a score; this course wants a few chosen bugs, named in words, each a line of a checklist.
grade() forks (see start_suite): call it in a process of its own, such as this command line.
"""

import argparse
import ast
import contextlib
import gc
import importlib
import io
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shared.ground import devdb
from shared.ground.manifest import UnknownLesson, find
from shared.ground.mutants import (
    OWN_DATABASE,
    OWN_DATABASE_HINT,
    OWN_PASSES,
    Mutant,
    MutantError,
    load,
    mutants_file,
    plant,
    requirements,
)
from shared.ground.paths import ROOT
from shared.ground.testenv import NO_CERTIFICATES

OK, NO = "\u2714", "\u2718"
OWN_TIMEOUT = 300  # seconds for the suite on the learner's app (the model answer's takes about 5)
MUTANT_TIMEOUT = 60  # seconds for a run on a mutant: past it, the bug counts as caught
PYTEST_NO_TESTS = 5
CLOSED_LLM = "http://127.0.0.1:9/v1"  # port 9 (discard): nothing listens, connections are refused
# Not copied into a run's folder: virtualenvs, caches, and what a run writes.
SKIPPED = {".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".git",
           "node_modules", ".coverage", "htmlcov"}
PYTEST_OPTIONS = [
    # Plugins of the course's virtualenv that other commands use: a second of imports per run.
    "-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest",
    # Preloaded (below), some pytest plugins (anyio's, pytest-cov) are imported before pytest
    # starts, so their asserts cannot be rewritten, and pytest says so. They hold none of the
    # suite's asserts: the suite's own modules are imported fresh, and rewritten.
    "-W", "ignore::pytest.PytestAssertRewriteWarning",
]

@dataclass
class Run:
    """One pytest run of the learner's suite: where and how, then how it went."""
    name: str
    folder: Path
    database: str
    options: list[str]
    timeout: float
    order: "Order | None" = None     # the tests' order, when not the suite's own (see Order)
    exitstatus: int | None = None    # None: not run; -1: stopped, out of time
    seconds: float = 0.0
    cpu: float = 0.0                 # seconds of CPU it used (user and system)
    output: str = ""
    counts: dict = field(default_factory=lambda: {"passed": 0, "failed": 0, "skipped": 0})
    first_failure: str = ""          # "tests/test_auth.py::test_x: assert 200 == 401"
    first_report: str = ""           # pytest's report of that failure (its traceback and asserts)


@dataclass
class Result:
    requirement: str
    met: bool
    detail: str = ""  # what the run showed: which test caught the bug, or why the line is not met
    hint: str = ""


@dataclass
class Grade:
    results: list[Result]
    own: Run
    seconds: float
    coverage: float | None = None    # percent of app/ the suite ran on the learner's app, branches counted
    coverage_table: str = ""         # coverage's own report: file, statements, branches, missing lines

    @property
    def met(self) -> int:
        return sum(r.met for r in self.results)


# --- running the suite --------------------------------------------------------------------------------

def copy_folder(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=lambda _folder, names: [n for n in names if n in SKIPPED])


def app_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted((folder / "app").rglob("*"))
            if p.is_file() and not SKIPPED & set(p.relative_to(folder).parts)}


# Each run would start a Python of its own and import the same libraries again (FastAPI,
# SQLAlchemy, openai, pytest: a second of CPU each time, fifteen times a check). Instead the grader
# imports them once (preload.py, as make test's fork server does) and forks a child per run, which
# starts from there and imports only the learner's app and tests, fresh, in its own folder.
# (pytest-xdist spreads one suite's tests over processes, not one suite over many folders.)
# pytest's plugins too: their runs ignore pytest's warning that it cannot rewrite their asserts.
PLUGINS = ["pytest_cov.plugin", "pytest_timeout", "xdist.plugin", "xdist.looponfail", "anyio.pytest_plugin",
           "platformdirs.pytest_plugin"]


def preload() -> None:
    """Import preload.py's packages and PLUGINS, then freeze what is in memory: the garbage
    collector of a child (pytest calls it, and allocations trigger it) then skips the libraries
    it inherited, which would cost each run a few tenths of a second (Python's gc.freeze
    documentation, on forking)."""
    gc.disable()
    for name in ["shared.services.preload", *PLUGINS]:  # importing preload.py is what preloads
        try:
            importlib.import_module(name)
        except ImportError:  # not installed here: a suite that needs it imports it itself
            pass
    gc.freeze()


@dataclass(frozen=True)
class Order:
    """A run's order of the collected tests: in reverse, or those whose node ids are in `first`
    ahead of the others, the suite's own order within each group."""
    reverse: bool = False
    first: frozenset[str] = frozenset()

    def sort(self, items: list) -> None:
        if self.reverse:
            items.reverse()
        else:
            items.sort(key=lambda item: item.nodeid not in self.first)  # a stable sort


def start_suite(run: Run, env: dict) -> int:
    """Fork a child that runs pytest in run.folder, as a plain `pytest` started there would;
    returns the child's pid. The child writes its report to .pytest-output.txt there."""
    import pytest

    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 3  # pytest's "internal error", should anything below fail
    try:
        gc.enable()  # off in the grader while it forks (preload)
        os.setsid()  # a process group of its own: a run out of time is stopped with all it started
        os.chdir(run.folder)
        report = os.open(run.folder / ".pytest-output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(report, 1)
        os.dup2(report, 2)
        os.environ.clear()
        os.environ.update(env)
        # As a plain `pytest` started there has it: the folder is not on sys.path unless the
        # suite's settings put it there (pythonpath = .), and nothing of the course's tooling is.
        sys.path[:] = [p for p in sys.path if p and Path(p).resolve() not in (ROOT, run.folder)]
        order = run.order

        class Reorder:  # a plugin: after pytest's own ordering (by fixtures), hence trylast
            @pytest.hookimpl(trylast=True)
            def pytest_collection_modifyitems(self, items: list) -> None:
                order.sort(items)

        code = pytest.main([*PYTEST_OPTIONS, f"--junitxml={run.folder / '.junit.xml'}", *run.options],
                           plugins=[Reorder()] if order else None)
    except BaseException:  # noqa: B036  (whatever happens, the child ends here and never returns)
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))


def run_env(run: Run, db_env: dict) -> dict:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("DB_", "PYTEST_", "COV_", "COVERAGE_")) and name != "TEST_DB_NAME"}
    env.update(db_env, DB_NAME=f"{run.database}_app", TEST_DB_NAME=run.database, OPENAI_BASE_URL=CLOSED_LLM,
               OPENAI_API_KEY="make-check-reaches-no-llm", COVERAGE_FILE=str(run.folder / ".coverage"),
               **NO_CERTIFICATES)
    return env


START, SKIP, WAIT = "start", "skip", "wait"


def run_all(runs: list[Run], db_env: dict, workers: int, before: Callable[[Run], str]) -> None:
    """Run them, `workers` at a time, in the order of the list. before(run), asked just before a
    run would start, says START (it may get the run ready first), SKIP (it is left not run) or
    WAIT (until one that is running ends)."""
    preload()
    waiting, running = list(runs), {}
    while waiting or running:
        while waiting and len(running) < workers:
            decision = before(waiting[0])
            if decision == WAIT:
                assert running, f"{waiting[0].name} waits for runs that are not running"
                break
            run = waiting.pop(0)
            if decision != SKIP:
                started = time.monotonic()
                running[start_suite(run, run_env(run, db_env))] = (run, started)
        pid, status, usage = os.wait4(-1, os.WNOHANG)
        if pid == 0:  # none has ended: stop those out of time, then look again a little later
            now = time.monotonic()
            for child, (run, started) in running.items():
                if now - started > run.timeout and run.exitstatus is None:
                    os.killpg(child, signal.SIGKILL)
                    run.exitstatus = -1
            time.sleep(0.02)
            continue
        run, started = running.pop(pid)
        run.seconds = time.monotonic() - started
        run.cpu = usage.ru_utime + usage.ru_stime
        if run.exitstatus is None:
            run.exitstatus = os.waitstatus_to_exitcode(status)
        report = run.folder / ".pytest-output.txt"
        run.output = report.read_text(errors="replace") if report.exists() else ""
        read_junit(run)
    gc.enable()


def read_junit(run: Run) -> None:
    junit = run.folder / ".junit.xml"
    if not junit.exists():
        return
    for case in ET.parse(junit).getroot().iter("testcase"):
        bad = [c for c in case if c.tag in ("failure", "error")]
        skipped = any(c.tag == "skipped" for c in case)
        run.counts["failed" if bad else "skipped" if skipped else "passed"] += 1
        if bad and not run.first_failure:
            test = (case.get("classname") or "").replace(".", "/") + ".py::" + (case.get("name") or "")
            # The message's first line, and the assert pytest explains ("assert 409 == 410") when
            # the test added a message of its own (`assert ..., r.text`) before it.
            message = bad[0].get("message") or bad[0].tag
            why = [line.strip()[:200] for line in message.splitlines() if line.strip()]
            shown = why[:1] + [line for line in why[1:2] if line.startswith("assert ")]
            run.first_failure = test + (f": {' / '.join(shown)}" if shown else "")
            run.first_report = (bad[0].text or "").strip()


def read_coverage(grade: Grade) -> None:
    """The suite's coverage of the learner's app/: the total (coverage's JSON report) and the
    table coverage prints."""
    folder = grade.own.folder
    report = folder / ".coverage.json"
    if not report.exists():
        return
    grade.coverage = json.loads(report.read_text())["totals"]["percent_covered"]
    import coverage

    # `coverage report --show-missing --skip-covered` run in the folder, without a Python of its own
    table = io.StringIO()
    with contextlib.chdir(folder):
        data = coverage.Coverage(data_file=str(folder / ".coverage"))
        try:
            data.load()
            data.report(file=table, show_missing=True, skip_covered=True)
        except coverage.CoverageException as error:  # as the command would print it: "No data to report."
            table.write(str(error))
    grade.coverage_table = table.getvalue().rstrip()


def connect(db_env: dict, database: str):
    import psycopg2

    return psycopg2.connect(host=db_env["DB_HOST"], port=db_env["DB_PORT"], user=db_env["DB_USER"],
                            password=db_env["DB_PASSWORD"], dbname=database, connect_timeout=3)


def database_made(db_env: dict, database: str) -> bool:
    """Whether the database exists, migrated by Alembic (it has the table alembic_version)."""
    import psycopg2

    try:
        conn = connect(db_env, database)
    except psycopg2.OperationalError:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
            return cur.fetchone()[0]
    finally:
        conn.close()


def drop_databases(db_env: dict, databases: list[str]) -> None:
    from psycopg2 import sql

    conn = connect(db_env, "postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for database in databases:
                name = sql.Identifier(database)
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    finally:
        conn.close()


# --- grading -------------------------------------------------------------------------------------------

def grade(learner: Path, model: Path, mutants: list[Mutant], db_env: dict, prefix: str,
          workers: int | None = None, only: list[str] | None = None) -> Grade:
    """The learner's suite (in the folder `learner`) on their own app, then on the model answer's
    app (from the folder `model`) with each mutant planted: one Result per line of requirements().

    db_env: DB_HOST, DB_PORT, DB_USER, DB_PASSWORD of a server where the suite may create
    databases; a run's is named prefix + "_own", or "_" + the mutant's name.
    only: the names of the mutants to try (the others are left out of the grade).
    """
    started = time.monotonic()
    chosen = [m for m in mutants if only is None or m.name in only]
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        copies: dict[str, Callable[[], None]] = {}  # per run: makes its folder, just before it starts

        def prepare(name: str, options: list[str], timeout: float, mutant: Mutant | None = None,
                    app_of_model: bool = True) -> Run:
            # Every run looks the same from inside: a folder named as the learner's in a temporary
            # one, a database with a random name, and a comment line of its own at the end of
            # app/main.py. So a suite cannot tell its own app from a bug by a path, a name or a
            # hash of the files: it must test what the app does.
            folder = Path(tempfile.mkdtemp(dir=tmp)) / learner.name
            mark = secrets.token_hex(4)

            def copy() -> None:
                copy_folder(learner, folder)
                if app_of_model:
                    shutil.rmtree(folder / "app", ignore_errors=True)
                    copy_folder(model / "app", folder / "app")
                if mutant is not None:
                    plant(mutant, folder)
                with (folder / "app" / "main.py").open("a") as main:
                    main.write(f"\n# make check: run {mark}\n")

            copies[name] = copy
            return Run(name, folder, f"{prefix}_{mark}", options, timeout)

        quick = ["-x", "-q", "--no-cov"]  # a mutant: the first failing test is enough
        own = prepare("own", ["-q", "--cov=app", "--cov-branch", "--cov-report=", "--cov-context=test"],
                      OWN_TIMEOUT, app_of_model=False)
        own.options.append(f"--cov-report=json:{own.folder / '.coverage.json'}")
        runs = [own]
        # The mutants are planted in the model's app/: the suite must pass on that first, or a
        # failure says nothing about a bug. Most often it is the learner's app, byte for byte: then
        # the run in reverse order shows it, and whether the mutants' runs may be reordered.
        same_app = app_files(learner) == app_files(model)
        check = prepare("reversed" if same_app else "baseline", quick, OWN_TIMEOUT)
        check.order = Order(reverse=True) if same_app else None
        runs.append(check)
        runs += [prepare(m.name, quick, MUTANT_TIMEOUT, mutant=m) for m in chosen]
        by_name = {run.name: run for run in runs}
        mutant_of = {m.name: m for m in chosen}
        started_runs: list[Run] = []

        def failed(run: Run) -> bool:
            return run.exitstatus not in (None, 0)

        def before(run: Run) -> str:
            if run.name in mutant_of:
                if failed(own) or (not same_app and failed(check)):
                    return SKIP  # why try a bug once the suite fails on the app as it is
                # The order comes from the run on the learner's app: until it ends, a core that
                # would wait runs a mutant in the suite's order.
                if same_app and not failed(check) and own.exitstatus == 0:
                    if check.exitstatus is None:
                        # In reverse the suite takes about as long as in its own order: a run
                        # that takes much longer is stopped, and counts as failed.
                        check.timeout = min(check.timeout, 2 * own.seconds + 5)
                        return WAIT
                    first = tests_running_edits(mutant_of[run.name], model, own.folder)
                    run.order = Order(first=first) if first else None
            copies[run.name]()
            started_runs.append(run)
            return START

        try:
            run_all(runs, db_env, max(1, workers or os.cpu_count() or 2), before)
            passes = own_passes(runs, learner)
            result = Grade([passes, own_database(db_env, own)], own, 0.0)
        finally:  # the runs' databases have names of their own: none is left behind
            drop_databases(db_env, [run.database for run in started_runs])
        if own.counts["passed"] + own.counts["failed"]:  # no test ran: no coverage to speak of
            read_coverage(result)
        result.results += [mutant_caught(m, by_name[m.name], passes.met) for m in chosen]
    result.seconds = time.monotonic() - started
    return result


def tests_running_edits(mutant: Mutant, model: Path, measured: Path) -> frozenset[str]:
    """The node ids of the tests likely to catch the mutant, from the coverage contexts of the run
    in the folder `measured` (on an app byte for byte the model's): those that ran a statement its
    edits change, or for a statement that ran at import (a class body, a default value) those that
    ran any line of its file. Empty when an edit is not in Python or no test ran one."""
    import coverage

    if not (measured / ".coverage").is_file():  # the suite's settings turned coverage off
        return frozenset()
    data = coverage.CoverageData(basename=str(measured / ".coverage"))
    try:
        data.read()  # first: a CoverageData used unread starts its file afresh
    except coverage.CoverageException:  # a data file coverage cannot read: no order
        return frozenset()
    tests: set[str] = set()
    for edit in mutant.edits:
        if not edit.file.endswith(".py"):
            return frozenset()
        text = (model / edit.file).read_text()
        first = text.count("\n", 0, text.index(edit.old)) + 1
        last = first + edit.old.rstrip("\n").count("\n")
        contexts = data.contexts_by_lineno(os.path.realpath(measured / edit.file))
        ran = {c for line in statement_lines(ast.parse(text), first, last) for c in contexts.get(line, [])}
        if "" in ran:  # at import, before any test
            ran = {c for line_contexts in contexts.values() for c in line_contexts}
        tests |= {context.rsplit("|", 1)[0] for context in ran if context}  # "tests/test_x.py::test_y|run"
    return frozenset(tests)


def statement_lines(tree: ast.Module, first: int, last: int) -> set[int]:
    """The lines coverage records for the innermost statements that lines first..last touch: a
    statement's first line (and its decorators'), not an enclosing def's or class's."""
    touching = [node for node in ast.walk(tree)
                if isinstance(node, ast.stmt) and node.lineno <= last and node.end_lineno >= first]
    inner = [node for node in touching
             if not any(inside is not node and inside in touching for inside in ast.walk(node))]
    return {line for node in inner
            for line in (node.lineno, *(d.lineno for d in getattr(node, "decorator_list", [])))}


def own_passes(runs: list[Run], learner: Path) -> Result:
    own, counts = runs[0], runs[0].counts
    summary = f"{counts['passed']} passed in {own.seconds:.1f} s"
    if own.exitstatus == 0:
        baseline = next((r for r in runs if r.name == "baseline"), None)
        if not (learner / "requirements-dev.txt").is_file():
            return Result(OWN_PASSES, False, f"{summary}, but there is no requirements-dev.txt",
                          "pin the test tools in requirements-dev.txt beside requirements.txt: "
                          "-r requirements.txt, then pytest, pytest-cov and httpx2")
        if baseline is None or baseline.exitstatus == 0:
            return Result(OWN_PASSES, True, summary)
        return Result(OWN_PASSES, False, "they fail on the model answer's app, where make check plants its "
                      f"bugs: {baseline.first_failure}", "leave app/ as lesson 22 left it: write tests only")
    if own.exitstatus == PYTEST_NO_TESTS:
        return Result(OWN_PASSES, False, "pytest found no tests",
                      "write them in tests/, in files named test_*.py, as functions named test_...")
    if own.exitstatus == -1:
        return Result(OWN_PASSES, False, f"they did not finish within {OWN_TIMEOUT} s",
                      "does a test wait for something that never comes?")
    if own.first_failure:
        return Result(OWN_PASSES, False,
                      f"{counts['failed']} failed, {summary}; the first: {own.first_failure}",
                      "a test that fails on your app expects what the app does not do: fix the test")
    return Result(OWN_PASSES, False, f"pytest, run in your folder, stopped before any test ran (exit "
                  f"{own.exitstatus}): its report is below",
                  "No module named 'app'? pytest's settings put the folder on its path: pythonpath = . "
                  "in pytest.ini, under [pytest]")


def own_database(db_env: dict, own: Run) -> Result:
    if database_made(db_env, own.database):
        return Result(OWN_DATABASE, True, f"{own.database}, migrated")
    return Result(OWN_DATABASE, False, f"after your tests there was no database {own.database} (the one "
                  "TEST_DB_NAME named) with Alembic's table alembic_version", OWN_DATABASE_HINT)


def mutant_caught(mutant: Mutant, run: Run, suite_passes: bool) -> Result:
    if not suite_passes or run.exitstatus is None:  # a failure on a bug would say nothing
        return Result(mutant.requirement, False, "not tried: your tests must pass on your app first",
                      mutant.hint)
    if run.exitstatus == -1:
        return Result(mutant.requirement, True, f"your tests did not finish within {MUTANT_TIMEOUT} s")
    if run.exitstatus not in (0, PYTEST_NO_TESTS):
        return Result(mutant.requirement, True, f"caught by {run.first_failure or 'pytest, which stopped'}")
    return Result(mutant.requirement, False, "every test passed with this bug in the app", mutant.hint)


# --- the command line ------------------------------------------------------------------------------

def checklist(result: Grade, verbose: bool = False) -> list[str]:
    """One line per requirement; under a line not met, why, and for the first such line a hint."""
    lines, hinted = [], False
    for r in result.results:
        lines.append(f"  {OK if r.met else NO} {r.requirement}")
        if r.detail and (verbose or not r.met):
            lines.append(f"      {r.detail}")
        if not r.met and r.hint and not hinted:
            lines.append(f"      hint: {r.hint}")
            hinted = True
    return lines


def report(result: Grade, folder: Path, verbose: bool) -> None:
    print("\n".join(checklist(result, verbose)))
    if result.coverage is not None:
        print(f"\nYour tests ran {result.coverage:.0f} % of app/ (branches counted: coverage.py):")
        print("\n".join(f"  {line}" for line in result.coverage_table.splitlines()))
    if verbose or result.own.exitstatus != 0:
        print("\npytest on your app:\n" + result.own.output[-4000:].rstrip())
    total = len(result.results)
    print(f"\n{result.met} of {total} requirements met in {result.seconds:.1f} s ({folder}).")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared mutants", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["check", "requirements"])
    parser.add_argument("lesson")
    parser.add_argument("--dir", default="", help="the folder to grade (default: workspace/NN-...)")
    parser.add_argument("--only", default="", help="comma-separated names of the mutants to try")
    parser.add_argument("--results", default="", help="also write the grade to this file, as JSON")
    args = parser.parse_args(argv)
    try:
        lesson = find(args.lesson)
    except UnknownLesson as error:
        sys.exit(str(error))
    mutants = load(mutants_file(lesson.folder))
    if args.command == "requirements":
        print("\n".join(requirements(mutants)))
        return
    folder = Path(args.dir or ROOT / "workspace" / lesson.folder).expanduser().resolve()
    if not (folder / "app" / "main.py").is_file():
        sys.exit(f"{folder} has no app/main.py: nothing to grade as lesson {lesson.number}"
                 + ("" if args.dir else f" (make start LESSON={lesson.number} makes the folder)"))
    print(f"Grading {folder}: your tests on your app, then on {len(mutants)} bugs planted in the model "
          "answer's...", flush=True)
    devdb.ensure_running()
    only = [name for name in args.only.split(",") if name] or None
    try:
        result = grade(folder, lesson.path, mutants, devdb.dev_env(), f"aic_test_{lesson.number}_check",
                       only=only)
    except MutantError as error:  # the course's own mistake, never the learner's: say so in one line
        sys.exit(f"course error, not your code: a planted bug no longer fits lesson {lesson.number}'s model "
                 f"answer ({error}); make test LESSON={lesson.number} shows it")
    if args.results:
        data = asdict(result)
        data["own"]["folder"] = None
        data["own"]["output"] = result.own.output[-6000:]  # pytest's report on the learner's app
        Path(args.results).write_text(json.dumps(data, indent=1, default=str) + "\n")
    report(result, folder, bool(os.environ.get("VERBOSE")))
    sys.exit(0 if result.met == len(result.results) else 1)
