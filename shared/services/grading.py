"""Grading a folder as a lesson: the checklist make check prints, from structured results.

A grader kind turns (lesson, folder) into one RequirementResult per checklist line. The kind is
the manifest's `grader`:
  pytest    the lesson's tests against the folder (those its test file star-imports too): one per test
            function, met when every case of it passes (the default, lessons 01-22)
  mutants   (23 on) the learner's own tests against their app and against small bugs planted in
            the model answer; one requirement per bug, met when their tests catch it
            (mutation.py, which forks its runs: it grades in a process of its own, `python -m
            shared mutants check`, and hands over its grade as JSON)

The checklist shows, for each miss: the failing cases of a parametrised test, the statement
that failed (in the test or in tests/helpers.py), expected and actual values in full (long
ones as the first difference, with its position, or a diff), the answer the app gave, the line
of the learner's own code the error came from, and for the first miss a hint from HINTS.
"""

import ast
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from shared.ground.manifest import Lesson
from shared.ground.paths import ROOT, shown
from shared.ground.requirements import Requirement, requirements
from shared.ground.results import HELD_BACK, Failure, RunResults, TestResult
from shared.services.testrun import BRIEF_TRACEBACKS, JobRun, run_job, spread

OK, NO = "\u2714", "\u2718"
CHECK_TIMEOUT = 300  # seconds: a lesson's tests take well under a minute
SHORT = 60  # characters: values up to this long are shown whole on one line each
WINDOW = 30  # characters shown before the first difference of two long values


def check_workers(lesson: Lesson) -> int:
    """How many processes make check spreads the lesson's tests over: CHECK_WORKERS=n, or the
    lesson's check_workers (lessons.toml says where it pays)."""
    chosen = os.environ.get("CHECK_WORKERS", "")
    return int(chosen) if chosen.isdigit() and int(chosen) > 0 else lesson.check_workers


@dataclass
class RequirementResult:
    requirement: Requirement
    state: str                                  # "met", "missed", "skipped", "held" (HELD_BACK)
    cases: list[TestResult] = field(default_factory=list)
    note: str = ""                              # why skipped, or why it never ran

    @property
    def failed_cases(self) -> list[TestResult]:
        return [c for c in self.cases if c.outcome == "failed"]


@dataclass
class Grade:
    lesson: Lesson
    folder: Path
    results: list[RequirementResult]
    seconds: float
    run: JobRun | None = None
    problem: str = ""                           # the tests could not run at all: why
    notes: list[str] = field(default_factory=list)  # shown under the checklist (coverage, ...)

    @property
    def met(self) -> int:
        return sum(1 for r in self.results if r.state == "met")


# --- the pytest grader ----------------------------------------------------------------------

def requirement_results(lesson: Lesson, run: RunResults,
                        listed: list[Requirement] | None = None) -> list[RequirementResult]:
    """Each requirement's state in the run; `listed`: requirements(lesson), when already read."""
    found = []
    for req in requirements(lesson) if listed is None else listed:
        cases = run.for_test(req.file, req.test)
        failed = any(c.outcome == "failed" for c in cases)
        if not failed and any(c.outcome == "skipped" and c.skip_reason.endswith(HELD_BACK) for c in cases):
            found.append(RequirementResult(req, "held", cases, HELD_BACK))
        elif cases and all(c.outcome == "skipped" for c in cases):
            found.append(RequirementResult(req, "skipped", cases, cases[0].skip_reason))
        elif cases and all(c.outcome != "failed" for c in cases):
            found.append(RequirementResult(req, "met", cases))
        else:
            # No result at all: not collected, or the run stopped (a crash, the time limit) before
            # this test's end was recorded; a test that ran and failed always has one.
            note = "" if cases else "no result recorded: not collected, or the run stopped before it ended"
            found.append(RequirementResult(req, "missed", cases, note))
    return found


def grade_with_pytest(lesson: Lesson, folder: Path) -> Grade:
    """The lesson's tests on the folder, forked from the warm server when one runs (warm.py:
    every check after the first of the last 20 minutes)."""
    # VERBOSE=1 prints pytest's report: then in full, else brief (its default costs seconds).
    brief = () if os.environ.get("VERBOSE") else BRIEF_TRACEBACKS
    # The checklist's lines come from the test files' syntax trees (0.15 s for lesson 18's): read
    # in a thread while pytest runs, on the core its process leaves free, instead of after it.
    with ThreadPoolExecutor(1) as pool:
        listed = pool.submit(requirements, lesson)
        # --own-first: a miss among the lesson's own requirements holds back the rest (conftest.py).
        run = run_job(lesson, folder, tag="-check", timeout=CHECK_TIMEOUT,
                      options=(*spread(check_workers(lesson)), "--own-first", *brief), warmed=True)
    problem = ""
    if run.note.startswith("did not finish"):
        problem = (f"the tests of lesson {lesson.number} ran for {CHECK_TIMEOUT} s without finishing: does "
                   "your app hang somewhere (a loop, a request that never returns)?")
    elif not run.results.tests:
        errors = run.results.session.errors if run.results.session else []
        why = "\n".join(errors) or run.output[-3000:]
        problem = f"the tests of lesson {lesson.number} did not run:\n{why}"
    return Grade(lesson, folder, requirement_results(lesson, run.results, listed.result()), run.seconds, run,
                 problem)


def grade_with_mutants(lesson: Lesson, folder: Path) -> Grade:
    """The learner's suite on their app and on each planted bug (mutation.py, in a process of its
    own: it forks, from packages it has loaded itself), read back from its JSON."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "grade.json"
        done = subprocess.run([sys.executable, "-m", "shared", "mutants", "check", lesson.number,
                               f"--dir={folder}", f"--results={report}"], cwd=ROOT, capture_output=True,
                              text=True, env={k: v for k, v in os.environ.items() if k != "VERBOSE"})
        if not report.exists():
            return Grade(lesson, folder, [], time.monotonic() - started,
                         problem=(done.stderr or done.stdout).strip()[-3000:])
        data = json.loads(report.read_text())
    results = []
    for i, entry in enumerate(data["results"], 1):
        req = Requirement(f"mutants/{lesson.folder}.toml", f"requirement-{i}", entry["requirement"],
                          entry.get("hint", ""), i)
        results.append(RequirementResult(req, "met" if entry["met"] else "missed",
                                         note=entry.get("detail", "")))
    notes = []
    if data.get("coverage") is not None:
        notes.append(f"Your tests ran {data['coverage']:.0f} % of app/ (branches counted: coverage.py):")
        notes += [f"  {line}" for line in data.get("coverage_table", "").splitlines()]
    # pytest's report on the learner's app: of its first failure, or with VERBOSE=1 the whole run's.
    own = data["own"]
    if os.environ.get("VERBOSE") and own.get("output"):
        notes += ["pytest on your app:", *own["output"].rstrip().splitlines()]
    elif own.get("first_report"):
        notes += [f"pytest on your app, the first failure ({own['first_failure'].split(': ')[0]}):",
                  *(f"  {line}" for line in own["first_report"].splitlines()[-40:])]
    elif own.get("exitstatus") not in (0, 5, None) and own.get("output"):  # stopped before any test
        notes += ["pytest on your app:", *(f"  {line}" for line in own["output"].rstrip().splitlines()[-30:])]
    return Grade(lesson, folder, results, time.monotonic() - started, notes=notes)


GRADERS: dict[str, Callable[[Lesson, Path], Grade]] = {"pytest": grade_with_pytest,
                                                       "mutants": grade_with_mutants}


def grade(lesson: Lesson, folder: Path) -> Grade:
    if lesson.grader not in GRADERS:
        raise NotImplementedError(f"lesson {lesson.number}: no grader of kind {lesson.grader!r} yet")
    return GRADERS[lesson.grader](lesson, folder)


# --- showing a failure ----------------------------------------------------------------------

def values_lines(actual: str, expected: str) -> list[str]:
    """Expected and actual, so that the difference is always in view: short values whole; one
    long line as the stretch around the first difference, with its position; several lines as
    a diff."""
    if "\n" not in actual + expected and len(actual) <= SHORT and len(expected) <= SHORT:
        return [f"expected: {expected}", f"got:      {actual}"]
    if "\n" in actual + expected:
        diff = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), "expected", "got",
                                         lineterm="", n=1))
        shown_lines = diff[2:40] + ([f"... ({len(diff) - 40} more diff lines)"] if len(diff) > 40 else [])
        return ["expected and got differ (- expected, + got):", *(f"  {line}" for line in shown_lines)]
    at = next((i for i, (a, b) in enumerate(zip(expected, actual, strict=False)) if a != b),
              min(len(expected), len(actual)))
    start = max(0, at - WINDOW)

    def window(text: str) -> str:
        part = text[start:start + WINDOW + SHORT]
        return ("..." if start else "") + part + ("..." if start + WINDOW + SHORT < len(text) else "")

    pointer = " " * (10 + (3 if start else 0) + at - start) + "^"
    return [f"expected: {window(expected)}", f"got:      {window(actual)}", pointer,
            f"(they differ from character {at + 1} on; lengths {len(expected)} and {len(actual)})"]


TAIL_LINES = 8  # lines shown of the end of a long text an `in` assert searched (a log, a page)


def as_text(value: str) -> str:
    """A value as the plugin wrote it (a repr): a string back as its text, anything else as is."""
    try:
        text = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return value
    return text if isinstance(text, str) else value


def search_lines(op: str, needle: str, haystack: str) -> list[str]:
    """An `in` or `not in` assert: the value looked for, and where it was looked for: for `in`
    the end of the text searched (a log's latest lines); for `not in` the stretch where it was
    found."""
    wanted, text = as_text(needle), as_text(haystack)
    lines = [f"looked for: {needle[:300]}"]
    at = text.find(wanted) if op == "not in" and wanted and isinstance(wanted, str) else -1
    if at >= 0:
        start, end = max(0, at - WINDOW), min(len(text), at + len(wanted) + WINDOW)
        part = ("..." if start else "") + text[start:end] + ("..." if end < len(text) else "")
        return lines + [f"found in:   {part!r}"[:400], f"(at character {at + 1} of {len(text)})"]
    label = "found in:" if op == "not in" else "in:"
    rows = text.rstrip("\n").splitlines()
    word = re.match(r"\W*(\w{3,})", wanted) if op == "in" and isinstance(wanted, str) else None
    near = [row for row in rows if word and word[1] in row] if len(rows) > TAIL_LINES else []
    if near:  # a long log: its lines that share the first word of what was looked for
        lines.append(f"in:         ({len(rows)} lines; those holding {word[1]!r}:)")
        return lines + [f"  | {row[:200]}" for row in near[-TAIL_LINES:]]
    if len(rows) > 1:
        shown_rows = rows[-TAIL_LINES:]
        before = len(rows) - len(shown_rows)
        lines.append(f"{label:<11} ({before} lines before, then the last {len(shown_rows)})" if before
                     else label)
        return lines + [f"  | {row[:200]}" for row in shown_rows]
    shown_text = text if len(text) <= 300 else f"...{text[-300:]} (the last 300 of {len(text)} characters)"
    return lines + [f"{label:<11} {shown_text}"]


def own_message(failure: Failure) -> str:
    """The message a compared assert gives (`assert a == b, "why"`): its first line, when it
    says more than the values and the answer shown beside it."""
    if failure.exception != "AssertionError" or "\nassert " not in "\n" + failure.message:
        return ""
    first = ("\n" + failure.message).split("\nassert ")[0].strip().splitlines()
    first = first[0].strip() if first else ""
    shown_elsewhere = [as_text(failure.actual or ""), as_text(failure.expected or ""),
                       (failure.response or {}).get("body", "")]
    return "" if not first or any(first in text for text in shown_elsewhere) else first[:300]


# The modules a lesson's app is made of: Python finding none of them means a file is missing.
APP_MODULES = "main|database|models|schemas|deps|auth|app"


# (pattern, hint): the first row whose pattern matches a failure's situation gives the hint. The
# situation is "ExceptionName: message" (module.ExceptionName when not a builtin:
# "psycopg2.errors.SyntaxError: ..."), for a compared status a line "status GOT expected WANT"
# and, when the test held the response, a line "body: ..." (its first 300 characters), and when a
# server the test started logged a traceback, a line "server: ExceptionName: message".
# Named groups fill the hint's {fields}, with {folder} and {number} (the lesson's).
HINTS: list[tuple[str, str]] = [
    (rf"No module named '(?P<module>{APP_MODULES})'",
     "Python found no {module}.py in {folder}: is the file there, with that name?"),
    (r"No module named '(?P<module>[\w.]+)'",
     "your code imports {module}, which is not installed: check the spelling, or add it to requirements.txt"),
    (r"^(SyntaxError|IndentationError|TabError):",
     "fix the syntax error at the line named above (Python stops reading the file there)"),
    (r'relation "(?P<table>\w+)" does not exist',
     "there is no table {table}: your app must create it when it starts, and commit (see the task)"),
    (r'relation "(?P<table>\w+)" already exists',
     "your app creates the table {table} each time it starts, and it is there from the last start: "
     "create it only when it is missing (CREATE TABLE IF NOT EXISTS)"),
    (r'duplicate key value violates unique constraint "\w+_pkey"',
     "an id the table already has: let Postgres number the rows (SERIAL, or an IDENTITY column), never "
     "work out the next id yourself (another client, or a row deleted, makes it wrong)"),
    (r'column "?(?P<column>[\w.]+)"? does not exist',
     "the table has no column {column}: add it to the table your app creates (or, if {column} is a "
     "value you sent, it went into the SQL text: pass values as %s parameters)"),
    (r"(^|server: )psycopg2\.errors\.(SyntaxError|InFailedSqlTransaction)|syntax error at or near",
     "a value broke the SQL: pass values as %s parameters (cur.execute(sql, (value, ...))), never "
     "put them into the SQL text with f-strings or +"),
    (r"status 500 expected 503\n(.*\n)*server: .*OperationalError",
     "the tests stop the database on purpose here: its error (OperationalError, on the server: line) "
     "must become a 503 with a short detail: an @app.exception_handler for it"),
    (r"^(?!server: |body: ).*(could not connect|Connection refused)",
     "the database does not answer: start it with make db"),
    (r"no WebSocket route there",
     "no route takes the socket: @app.websocket(\"/ws/chat\"), or @router.websocket in a router the app "
     "includes (app.include_router)"),
    (r"NameError: name '(?P<name>\w+)' is not defined",
     "your code still uses {name}, which is gone (or misspelled): replace that use, at the line named above"),
    (r"exited at startup",
     "your app stopped while starting: make run LESSON={number} MINE=1 shows why in its terminal"),
    (r"DetachedInstanceError|is not bound to a Session|ResponseValidationError[\s\S]*'get_attribute_error'",
     "your endpoint returned a model object whose fields can no longer be read: commit() expires them "
     "and a closed session cannot load them again (FastAPI reads them after the endpoint returns, so "
     "after a with block has closed it): db.refresh(obj) after the commit, or a session from a "
     "dependency with yield, closed only once the answer is sent"),
    (r"TimeoutError: (?:Page|Locator|Frame)\.",
     "the page never got there: open it under make run LESSON={number} MINE=1 and watch the browser's "
     "console (F12) while you do what the test does"),
    (r"ImportError|AttributeError",
     "a name the tests use is missing from your code: compare the spelling with the task"),
    (r"status 404 expected (?!404|422)\d+\nbody: (?!\{\"detail\": ?\"Not Found\"\})",
     "your app answered this 404 itself (not FastAPI's \"Not Found\"): the route is there, but what it "
     "looked for is not: did the request that made it keep it? (with a database: commit the change)"),
    (r"status 404 expected (?!404|422)",
     "nothing answers at that path with that method: add the route (@app.post(\"/api/...\"))"),
    (r"status 405 expected",
     "the path exists, but not for this method: add a route with its decorator (@app.put, ...)"),
    (r"status 500 expected",
     "your code raised an error while answering (server: above names it, your code: where): run make run "
     "LESSON={number} MINE=1, send the same request with curl and read the traceback in that terminal"),
    (r"status \d+ expected 422",
     "bad input was accepted: a rule is missing (in your model: Field(...), Literal[...]; on a path or "
     "query parameter: Path(ge=..., le=...), Query(...))"),
    (r"status 422 expected",
     "FastAPI refused input the task calls valid: compare your model's rules with the task"),
    (r"status 200 expected 201",
     "right answer, wrong status: give the decorator status_code=201"),
    (r"status 200 expected 404",
     "it is still there: did the request that removed it keep its change? (with a database: commit "
     "the DELETE); an unknown id must answer 404: raise HTTPException(status_code=404, detail=...)"),
    (r"status \d+ expected 404",
     "an unknown id must answer 404: raise HTTPException(status_code=404, detail=...)"),
    (r"status \d+ expected (?P<want>\d+)",
     "the answer's status should be {want}: the task's line in the same words says when, and "
     "docs/api.md gives the exact answer; VERBOSE=1 make check LESSON={number} shows the whole test report"),
    (r"",
     "find this line's words in the task (lessons/{lesson_folder}/README.md) and in docs/api.md: they "
     "say what is sent and what must come back; VERBOSE=1 make check LESSON={number} shows the whole "
     "test report"),
]


# Failures that stop a test before it reaches what its requirement is about (no main.py, a syntax
# error, no socket route at all): the table's hint, not the requirement's own, which would send
# the learner after the wrong thing.
BEFORE_THE_REQUIREMENT = re.compile(rf"No module named '({APP_MODULES})'|"
                                    r"^(SyntaxError|IndentationError|TabError):|no WebSocket route there",
                                    re.MULTILINE)


def exception_name(failure: Failure) -> str:
    return f"{failure.module}.{failure.exception}" if failure.module else failure.exception


def situation(failure: Failure) -> str:
    text = f"{exception_name(failure)}: {failure.message}"
    if failure.op == "==" and re.fullmatch(r"\d{3}", failure.actual or "") and \
            re.fullmatch(r"\d{3}", failure.expected or ""):
        text += f"\nstatus {failure.actual} expected {failure.expected}"
        if failure.response and failure.response.get("named", True) and failure.response.get("body"):
            text += f"\nbody: {failure.response['body'][:300]}"
    if failure.server_error:
        text += f"\nserver: {failure.server_error}"
    return text


def hint_for(failure: Failure, lesson: Lesson, folder: Path) -> str:
    text = situation(failure)
    for pattern, hint in HINTS:
        match = re.search(pattern, text, re.MULTILINE)
        if match:
            return hint.format(folder=shown(folder), number=lesson.number, lesson_folder=lesson.folder,
                               **match.groupdict())
    return ""


def statement_line(failure: Failure, lesson: Lesson) -> str:
    if failure.phase == "setup" and failure.statement_at.startswith("tests/conftest.py"):
        return f"the app starts ({lesson.app_module} imported from your folder, then its lifespan run)"
    where = ""
    if failure.statement_at and not failure.statement_at.startswith("tests/test_"):
        file, _, line = failure.statement_at.rpartition(":")
        where = f"  ({file}, line {line})"
    return failure.statement + where


def error_line(failure: Failure) -> str:
    """The error's message: its first line, and the last 3 lines of a longer one (where a log,
    an output or an SQL error's pointer ends), under the exception's name unless it is an
    assert or pytest.fail. An
    assert's own message (`assert ok, "why"`) stands for it when it has one."""
    text = failure.message
    if failure.exception == "AssertionError":
        text = ("\n" + text).split("\nassert ")[0].strip() or text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if failure.exception not in ("AssertionError", "Failed"):
        name = exception_name(failure)
        first = f"{name}: {first}" if first else name
    more = lines[1:][-3:]
    skipped = len(lines) - 1 - len(more)
    return "\n".join([first[:300], *([f"  ... ({skipped} lines left out)"] if skipped > 0 else []),
                      *(f"  | {line[:200]}" for line in more)])


def one_line(text: str, limit: int) -> str:
    """TEXT on one line of the report (a streamed body has many), cut to LIMIT characters."""
    text = " ".join(text.split())
    return f"{text[:limit]}..." if len(text) > limit else text


def failure_lines(req: RequirementResult, lesson: Lesson, folder: Path, with_hint: bool) -> list[str]:
    """The details of one missed requirement, each line indented under its checklist line."""
    failed = req.failed_cases
    if not failed and not req.cases and req.note and req.requirement.file.startswith("mutants/"):
        hint = req.requirement.hint if with_hint else ""
        return [req.note] + (wrapped("hint: ", hint) if hint else [])
    # Where the test is written: a star-imported one is in the file it comes from (its line is that file's).
    file = req.requirement.inherited or req.requirement.file
    if not failed:
        return [f"test:     tests/{file}::{req.requirement.test} ({req.note or 'no result recorded for it'})"]
    case, failure = failed[0], failed[0].failure
    name = f"{req.requirement.test}[{case.case}]" if case.case is not None else req.requirement.test
    lines = [f"test:     tests/{file}::{name} (line {req.requirement.line})"]
    if failure is None:
        return lines
    said_by_fail = failure.exception == "Failed" and failure.statement.startswith("pytest.fail(")
    if failure.statement and not said_by_fail:
        lines.append(f"checks:   {statement_line(failure, lesson)}")
    if failure.actual is not None and failure.expected is not None and failure.op == "==":
        lines += values_lines(failure.actual, failure.expected)
    elif failure.actual is not None and failure.expected is not None and failure.op in ("in", "not in"):
        lines += search_lines(failure.op, failure.actual, failure.expected)
    elif failure.actual is not None and failure.expected is not None:
        lines += [f"asserts:  {failure.actual[:300]} {failure.op} {failure.expected[:300]}"]
    else:
        lines += [f"error:    {line}" if i == 0 else f"          {line}"
                  for i, line in enumerate(error_line(failure).splitlines())]
    if failure.actual is not None and (why := own_message(failure)):
        lines.append(f"says:     {why}")
    if failure.response and not failure.response.get("named", True):
        if body := failure.response["body"]:  # (a stream whose body the test was reading has none yet)
            lines.append(f"earlier:  {failure.response['status']} {one_line(body, 200)} (the last HTTP "
                         "answer this test got, before the failing line)")
    elif failure.response and failure.response["status"] != _as_int(failure.actual):
        lines.append(f"answer:   {failure.response['status']} {one_line(failure.response['body'], 300)}")
    elif failure.response and failure.response["body"]:
        lines.append(f"answer:   {one_line(failure.response['body'], 300)}")
    if failure.server_error:
        lines.append(f"server:   your app raised {failure.server_error}")
    if failure.learner_at:
        file, _, line = failure.learner_at.rpartition(":")
        lines.append(f"your code: {file}, line {line}")
    if with_hint:
        own = "" if BEFORE_THE_REQUIREMENT.search(situation(failure)) else req.requirement.hint
        lines += wrapped("hint:     ", own or hint_for(failure, lesson, folder))
    return lines


def wrapped(label: str, text: str) -> list[str]:
    """LABEL and TEXT in lines as wide as the terminal (less the checklist's indent), broken
    between words and indented under the text: a long hint reads whole, never cut off."""
    width = max(60, shutil.get_terminal_size((100, 24)).columns - 6)
    return textwrap.wrap(text, width, initial_indent=label, subsequent_indent=" " * len(label),
                         break_long_words=False, break_on_hyphens=False) or [label.rstrip()]


def _as_int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def checklist(grade: Grade) -> list[str]:
    """The lines make check prints: one per requirement, details under each miss, one hint.
    Requirements taken over from an earlier lesson's tests are one line while they all hold, or
    while they wait for the lesson's own to be met (held back: conftest.py's --own-first)."""
    lines, hinted, seen = [], False, {}
    inherited = [r for r in grade.results if r.requirement.inherited]
    held = [r for r in inherited if r.state == "held"]
    if held:
        # A process may have started some before the miss: those ran, and their ✔ is in the count.
        met = sum(1 for r in inherited if r.state == "met")
        waiting = f"{met} met, the other {len(held)} wait" if met else "not checked yet: they wait"
        lines.append(f"  - What {earlier_lessons(inherited)} required that this lesson keeps "
                     f"({counted(inherited)}): {waiting} until this lesson's own are met")
    elif inherited and all(r.state != "missed" for r in inherited):
        lines.append(f"  {OK} What {earlier_lessons(inherited)} required that this lesson keeps "
                     f"({counted(inherited)}, on your folder)")
    for req in grade.results:
        if req.requirement.inherited and req.state != "missed":
            continue
        text = req.requirement.text
        if req.state == "met":
            cases = f" ({len(req.cases)} cases)" if len(req.cases) > 1 else ""
            lines.append(f"  {OK} {text}{cases}")
        elif req.state == "skipped":
            lines.append(f"  - {text} (not checked here: {req.note})")
        else:
            failed = req.failed_cases
            named = [c.case or "(empty id)" for c in failed if c.case is not None]
            if named:
                more = f", and {len(named) - 6} more" if len(named) > 6 else ""
                text += f": {len(failed)} of {len(req.cases)} cases fail ({', '.join(named[:6])}{more})"
            lines.append(f"  {NO} {text}")
            failure = failed[0].failure if failed else None
            key = failure and (failure.exception, failure.message, failure.phase, failure.statement)
            if key in seen:
                lines.append(f"      (fails as \"{seen[key]}\" above)")
                continue
            if failure:
                seen[key] = req.requirement.text
            lines += [f"      {line}" for line in failure_lines(req, grade.lesson, grade.folder, not hinted)]
            hinted = True
    return lines


def earlier_lessons(taken_over: list[RequirementResult]) -> str:
    """ "lesson 17", "lessons 17 and 24", "lessons 17, 18 and 24": where these requirements come from."""
    numbers = sorted({r.requirement.inherited.split("_")[1] for r in taken_over})
    if len(numbers) == 1:
        return f"lesson {numbers[0]}"
    return f"lessons {', '.join(numbers[:-1])} and {numbers[-1]}"


def counted(requirements: list) -> str:
    return f"{len(requirements)} requirement{'s' if len(requirements) != 1 else ''}"


def failing_requirements(lesson: Lesson, run: RunResults) -> list[str]:
    """The requirement lines whose tests failed (make test PREVIOUS=1 lists them)."""
    return [r.requirement.text for r in requirement_results(lesson, run) if r.state == "missed" and r.cases]
