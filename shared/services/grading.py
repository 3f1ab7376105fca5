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

import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.ground.manifest import Lesson
from shared.ground.paths import ROOT, shown
from shared.ground.requirements import Requirement, requirements
from shared.ground.results import Failure, RunResults, TestResult
from shared.services.testrun import JobRun, run_job

OK, NO = "\u2714", "\u2718"
CHECK_TIMEOUT = 300  # seconds: a lesson's tests take under 10
SHORT = 60  # characters: values up to this long are shown whole on one line each
WINDOW = 30  # characters shown before the first difference of two long values


@dataclass
class RequirementResult:
    requirement: Requirement
    state: str                                  # "met", "missed", "skipped"
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

def requirement_results(lesson: Lesson, run: RunResults) -> list[RequirementResult]:
    found = []
    for req in requirements(lesson):
        cases = run.for_test(req.file, req.test)
        if cases and all(c.outcome == "skipped" for c in cases):
            found.append(RequirementResult(req, "skipped", cases, cases[0].skip_reason))
        elif cases and all(c.outcome != "failed" for c in cases):
            found.append(RequirementResult(req, "met", cases))
        else:
            found.append(RequirementResult(req, "missed", cases, "" if cases else "the test did not run"))
    return found


def grade_with_pytest(lesson: Lesson, folder: Path) -> Grade:
    run = run_job(lesson, folder, tag="-check", timeout=CHECK_TIMEOUT)
    problem = ""
    if run.note.startswith("did not finish"):
        problem = (f"the tests of lesson {lesson.number} ran for {CHECK_TIMEOUT} s without finishing: does "
                   "your app hang somewhere (a loop, a request that never returns)?")
    elif not run.results.tests:
        errors = run.results.session.errors if run.results.session else []
        why = "\n".join(errors) or run.output[-3000:]
        problem = f"the tests of lesson {lesson.number} did not run:\n{why}"
    return Grade(lesson, folder, requirement_results(lesson, run.results), run.seconds, run, problem)


def grade_with_mutants(lesson: Lesson, folder: Path) -> Grade:
    """The learner's suite on their app and on each planted bug (mutation.py, in a process of its
    own: it forks), read back from its JSON."""
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


# (pattern, hint): the first row whose pattern matches a failure's situation gives the hint. The
# situation is "ExceptionName: message" and, for a compared status, "status GOT expected WANT".
# Named groups fill the hint's {fields}, with {folder} and {number} (the lesson's).
HINTS: list[tuple[str, str]] = [
    (r"No module named '(?P<module>main|database|models|schemas|deps|auth|app)'",
     "Python found no {module}.py in {folder}: is the file there, with that name?"),
    (r"No module named '(?P<module>[\w.]+)'",
     "your code imports {module}, which is not installed: check the spelling, or add it to requirements.txt"),
    (r"SyntaxError|IndentationError",
     "fix the syntax error at the line named above (Python stops reading the file there)"),
    (r'relation "(?P<table>\w+)" does not exist',
     "there is no table {table}: your app must create it when it starts (see the task)"),
    (r'column "?(?P<column>[\w.]+)"? does not exist',
     "the table has no column {column}: add it to the table your app creates"),
    (r"could not connect|Connection refused",
     "the database does not answer: start it with make db"),
    (r"NameError: name '(?P<name>\w+)' is not defined",
     "your code still uses {name}, which is gone (or misspelled): replace that use, at the line named above"),
    (r"exited at startup",
     "your app stopped while starting: make run LESSON={number} MINE=1 shows why in its terminal"),
    (r"ImportError|AttributeError",
     "a name the tests use is missing from your code: compare the spelling with the task"),
    (r"status 404 expected (?!404)",
     "nothing answers at that path with that method: add the route (@app.post(\"/api/...\"))"),
    (r"status 405 expected",
     "the path exists, but not for this method: add a route with its decorator (@app.put, ...)"),
    (r"status 500 expected",
     "your code raised an error while answering: run make run LESSON={number} MINE=1, repeat the request "
     "in /docs and read the traceback in that terminal"),
    (r"status \d+ expected 422",
     "bad input was accepted: a rule is missing from your model (Field(...), Literal[...])"),
    (r"status 422 expected",
     "FastAPI refused input the task calls valid: compare your model's rules with the task"),
    (r"status 200 expected 201",
     "right answer, wrong status: give the decorator status_code=201"),
    (r"status \d+ expected 404",
     "an unknown id must answer 404: raise HTTPException(status_code=404, detail=...)"),
    (r"status \d+ expected (?P<want>\d+)",
     "the answer's status should be {want}: see the task and the test named above"),
    (r"",
     "read the test named above: it shows exactly what is sent and what must come back"),
]


def situation(failure: Failure) -> str:
    text = f"{failure.exception}: {failure.message}"
    if failure.op == "==" and re.fullmatch(r"\d{3}", failure.actual or "") and \
            re.fullmatch(r"\d{3}", failure.expected or ""):
        text += f"\nstatus {failure.actual} expected {failure.expected}"
    return text


def hint_for(failure: Failure, lesson: Lesson, folder: Path) -> str:
    text = situation(failure)
    for pattern, hint in HINTS:
        match = re.search(pattern, text)
        if match:
            return hint.format(folder=shown(folder), number=lesson.number, **match.groupdict())
    return ""


def statement_line(failure: Failure, lesson: Lesson) -> str:
    if failure.phase == "setup" and failure.statement_at.startswith("tests/conftest.py"):
        return f"the app starts (import {lesson.app_module} in your folder)"
    where = ""
    if failure.statement_at and not failure.statement_at.startswith("tests/test_"):
        file, _, line = failure.statement_at.rpartition(":")
        where = f"  ({file}, line {line})"
    return failure.statement + where


def error_line(failure: Failure) -> str:
    first = failure.message.strip().splitlines()[0] if failure.message.strip() else ""
    if failure.exception in ("AssertionError", "Failed"):
        return first
    return f"{failure.exception}: {first}" if first else failure.exception


def failure_lines(req: RequirementResult, lesson: Lesson, folder: Path, with_hint: bool) -> list[str]:
    """The details of one missed requirement, each line indented under its checklist line."""
    failed = req.failed_cases
    if not failed and not req.cases and req.note and req.requirement.file.startswith("mutants/"):
        hint = req.requirement.hint if with_hint else ""
        return [req.note] + ([f"hint:     {hint}"] if hint else [])
    if not failed:
        where = f"tests/{req.requirement.file}::{req.requirement.test}"
        return [f"test:     {where} ({req.note or 'did not run'})"]
    case, failure = failed[0], failed[0].failure
    name = f"{req.requirement.test}[{case.case}]" if case.case is not None else req.requirement.test
    lines = [f"test:     tests/{req.requirement.file}::{name} (line {req.requirement.line})"]
    if failure is None:
        return lines
    if failure.statement:
        lines.append(f"checks:   {statement_line(failure, lesson)}")
    if failure.actual is not None and failure.expected is not None and failure.op == "==":
        lines += values_lines(failure.actual, failure.expected)
    elif failure.actual is not None and failure.expected is not None:
        lines += [f"asserts:  {failure.actual[:300]} {failure.op} {failure.expected[:300]}"]
    else:
        lines.append(f"error:    {error_line(failure)[:300]}")
    if failure.response and failure.response["status"] != _as_int(failure.actual):
        body = failure.response["body"]
        lines.append(f"answer:   {failure.response['status']} {body[:300]}{'...' if len(body) > 300 else ''}")
    elif failure.response and failure.response["body"]:
        body = failure.response["body"]
        lines.append(f"answer:   {body[:300]}{'...' if len(body) > 300 else ''}")
    if failure.learner_at:
        file, _, line = failure.learner_at.rpartition(":")
        lines.append(f"your code: {file}, line {line}")
    if with_hint:
        lines.append(f"hint:     {req.requirement.hint or hint_for(failure, lesson, folder)}")
    return lines


def _as_int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def checklist(grade: Grade) -> list[str]:
    """The lines make check prints: one per requirement, details under each miss, one hint.
    Requirements taken over from an earlier lesson's tests are one line while they all hold."""
    lines, hinted, seen = [], False, {}
    inherited = [r for r in grade.results if r.requirement.inherited]
    if inherited and all(r.state != "missed" for r in inherited):
        lessons = sorted({r.requirement.inherited.split("_")[1] for r in inherited})
        lines.append(f"  {OK} Everything lesson {' and '.join(lessons)} required ({len(inherited)} "
                     "requirements, on your folder)")
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


def failing_requirements(lesson: Lesson, run: RunResults) -> list[str]:
    """The requirement lines whose tests failed (make test PREVIOUS=1 lists them)."""
    return [r.requirement.text for r in requirement_results(lesson, run) if r.state == "missed" and r.cases]
