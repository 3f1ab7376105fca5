"""Exercise mode, as a learner meets it: lesson 07 from `make start` to a green `make check`.

The model answer is applied to the learner's folder in stages (a typo first, then half of the
step's changes, then all of them); every red checklist along the way names the folder it graded
and gives a hint for the first miss, without a traceback.
"""

import difflib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import ROOT, statement_of
from shared.ground import results
from shared.ground.manifest import find
from shared.ground.paths import RESULTS
from shared.ground.requirements import requirements, text_and_hint
from shared.ground.results import Failure
from shared.services.grading import (
    HINTS,
    Grade,
    RequirementResult,
    checklist,
    error_line,
    failure_lines,
    hint_for,
    search_lines,
    values_lines,
)

LESSON = find("07")
SHARED = [sys.executable, "-m", "shared"]


@pytest.fixture
def workspace(tmp_path):
    return tmp_path / "workspace"


def exercise(workspace, *args):
    env = dict(os.environ, AIC_WORKSPACE=str(workspace))
    return subprocess.run([*SHARED, *args], cwd=ROOT, env=env, capture_output=True, text=True)


def partly(old: str, new: str, fraction: float) -> str:
    """`old` with the first part of the changes that turn it into `new`."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    changes = [op for op in difflib.SequenceMatcher(None, a, b).get_opcodes() if op[0] != "equal"]
    keep = set(map(tuple, changes[: int(len(changes) * fraction)]))
    out = []
    for op in difflib.SequenceMatcher(None, a, b).get_opcodes():
        tag, i1, i2, j1, j2 = op
        out += b[j1:j2] if tag != "equal" and op in keep else a[i1:i2]
    return "".join(out)


def assert_red_with_a_hint(r, folder):
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"Grading {folder}" in r.stdout or str(folder) in r.stdout, r.stdout
    assert "\u2718" in r.stdout and "hint:" in r.stdout, r.stdout
    assert r.stdout.count("hint:") == 1, r.stdout  # one hint: for the first miss
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    return int(r.stdout.split(" of ")[-2].split()[-1])  # "N of M requirements met"


@pytest.fixture(scope="module")
def started_07(tmp_path_factory):
    """`make start LESSON=07` in a fresh workspace, then what a learner runs before changing a
    line: start again, solution and check (the check grades lesson 06's code as lesson 07).
    Run once: the tests below read these outputs; only the first goes on to change the folder."""
    workspace = tmp_path_factory.mktemp("workspace")
    start = exercise(workspace, "start", "07")
    return workspace, start, {args: exercise(workspace, *args) for args in
                              [("start", "07"), ("solution", "07"), ("check", "07")]}


def test_lesson_07_from_start_to_green(started_07):
    workspace, r, first = started_07
    assert r.returncode == 0, r.stderr
    folder = workspace / LESSON.folder
    assert "## Your task" not in r.stdout and "Pydantic model" in r.stdout, r.stdout  # the task
    assert "make check LESSON=07" in r.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["main.py", "requirements.txt"]

    again = first["start", "07"]
    assert again.returncode == 2 and "FORCE=1" in again.stderr  # work is never overwritten

    # The copy of lesson 06 does not do lesson 07 yet.
    r = first["check", "07"]
    met_at_start = assert_red_with_a_hint(r, folder)
    assert "expected: 422" in r.stdout and "got:      201" in r.stdout, r.stdout

    # A typo: one clear error and a hint, no traceback.
    started = (folder / "main.py").read_text()
    (folder / "main.py").write_text(started + "\ndef broken(:\n")
    r = exercise(workspace, "check", "07")
    assert assert_red_with_a_hint(r, folder) == 0
    assert "syntax error" in r.stdout, r.stdout

    # Half of the step's changes, then all of them.
    answer = (LESSON.path / "main.py").read_text()
    (folder / "main.py").write_text(partly(started, answer, 0.5))
    r = exercise(workspace, "check", "07")
    if r.returncode:
        assert_red_with_a_hint(r, folder)
    for name in ("main.py", "requirements.txt"):
        shutil.copy2(LESSON.path / name, folder / name)
    r = exercise(workspace, "check", "07")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\u2718" not in r.stdout and "Lesson 07 done" in r.stdout, r.stdout
    met, total = map(int, r.stdout.split(" requirements met")[0].split()[-3::2])
    assert met == total > met_at_start

    progress = json.loads((workspace / ".progress.json").read_text())
    assert progress["07"]["met"] == progress["07"]["total"] and progress["07"]["passed"]
    assert "07  Validation with Pydantic" in exercise(workspace, "progress").stdout
    assert "Your folder has the same files" in exercise(workspace, "solution", "07").stdout


def test_solution_shows_what_is_left(started_07):
    r = started_07[2]["solution", "07"]
    assert r.returncode == 0, r.stderr
    assert "(yours) -> lessons/07-validate-with-pydantic (the model answer)" in r.stdout
    assert "+class User(BaseModel):" in r.stdout


class Lines:
    """A running command's output, read line by line in a thread: .until() waits for a line,
    .rest() reads to the end once the command has ended."""

    def __init__(self, proc: subprocess.Popen):
        self.seen: list[str] = []
        self.queue: queue.Queue = queue.Queue()

        def read():
            for line in proc.stdout:
                self.queue.put(line)
            self.queue.put(None)  # the end

        threading.Thread(target=read, daemon=True).start()

    def until(self, condition, what: str, seconds: float = 30) -> str:
        deadline = time.monotonic() + seconds
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if not line:
                pytest.fail(f"not within {seconds} s: {what}\n" + "".join(self.seen))
            self.seen.append(line)
            if condition(line):
                return line

    def rest(self) -> str:
        while (line := self.queue.get(timeout=10)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


def test_make_watch_checks_again_on_each_save_and_stops_on_ctrl_c(workspace):
    """make watch on lesson 02: waits for main.py, checks each save, leaves an editor's swap files
    and caches alone, stops on Ctrl-C with exit 0."""
    lesson = find("02")
    assert exercise(workspace, "start", "02").returncode == 0
    folder = workspace / lesson.folder  # lesson 01's index.html: no main.py yet
    env = dict(os.environ, AIC_WORKSPACE=str(workspace))
    with subprocess.Popen([*SHARED, "watch", "02"], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as proc:
        try:
            out = Lines(proc)
            out.until(lambda line: "has no main.py" in line and "waiting for it" in line, "no main.py yet")
            for name in ("main.py", "requirements.txt"):
                shutil.copy2(lesson.path / name, folder / name)
            out.until(lambda line: "Lesson 02 done" in line, "the model answer checked green")
            (folder / ".main.py.swp").write_text("an editor's swap file")
            (folder / "__pycache__").mkdir(exist_ok=True)
            (folder / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"")
            (folder / "main.py").write_text((lesson.path / "main.py").read_text().replace('"time"', '"tme"'))
            met = out.until(lambda line: " requirements met in " in line, "the saved typo checked")
            out.until(lambda line: line.startswith("Fix the first \u2718, then save"), "what to do next")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0, "".join(out.seen)
            printed = out.rest()
        finally:
            proc.kill()  # a failed step above leaves it watching (Popen's `with` would wait for it)
    assert int(met.split()[0]) < 8, printed
    changed = [line.split(" ", 2)[2] for line in printed.splitlines() if line.startswith("--- ")]
    assert changed == ["main.py, requirements.txt changed ---", "main.py changed ---"], printed
    assert printed.endswith("Stopped watching.\n") and "Traceback" not in printed, printed
    assert json.loads((workspace / ".progress.json").read_text())["02"]["met"] == int(met.split()[0])


@pytest.mark.parametrize("command", ["check", "watch", "solution", "run"])
def test_a_missing_folder_gets_one_line(workspace, command):
    r = exercise(workspace, command, "07", *(["--mine"] if command == "run" else []))  # make run MINE=1
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"no folder {workspace / LESSON.folder}: make start LESSON=07 creates it"]


def test_a_wrong_folder_gets_one_line_also_from_make_test():
    r = subprocess.run(["make", "--no-print-directory", "test", "LESSON=07", "DIR=lessons"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "lessons has no main.py: nothing to grade as lesson 07" in r.stderr, r.stderr
    assert "No module named" not in r.stdout + r.stderr


def test_checklist_lines_come_from_the_tests():
    lines = [r.text for r in requirements(LESSON)]
    assert "Unknown id get is 404" in lines  # test_unknown_id_get_is_404
    assert len(lines) == len(set(lines))


def test_a_miss_among_the_lessons_own_requirements_holds_back_those_it_keeps(tmp_path):
    """make check runs a lesson's own tests first; once one fails, the tests it takes over from
    earlier lessons are not run (one line says so), and the checklist says which of its own missed.
    Lesson 22's model answer with one setting read outside app/config.py."""
    folder = tmp_path / "22-bigger-app"
    shutil.copytree(find("22").path, folder, ignore=shutil.ignore_patterns("__pycache__", ".env"))
    users = folder / "app" / "routers" / "users.py"
    users.write_text(users.read_text().replace("import logging\n", "import logging\nimport os\n", 1)
                     + '\nPAGE = int(os.getenv("PAGE", "50"))\n')
    env = dict(os.environ, AIC_WORKSPACE=str(tmp_path / "workspace"), CHECK_WORKERS="1")
    r = subprocess.run([*SHARED, "check", "22", "--dir", str(folder)], cwd=ROOT, env=env, capture_output=True,
                       text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    reqs = requirements(find("22"))
    kept, own = [q for q in reqs if q.inherited], [q for q in reqs if not q.inherited]
    assert (f"  - What lessons 17, 18, 20 and 21 required that this lesson keeps ({len(kept)} requirements): "
            "not checked yet: they wait until this lesson's own are met") in r.stdout.splitlines(), r.stdout
    assert "  \u2718 Only app/config.py reads the environment" in r.stdout, r.stdout
    summary = f"{len(own) - 1} of {len(reqs)} requirements met ({len(kept)} not checked yet) in "
    assert summary in r.stdout, r.stdout
    run = results.read(RESULTS / "22-check.jsonl")
    taken_over = {q.test for q in kept}
    for test in run.tests:
        if test.function in taken_over:
            assert (test.outcome, test.skip_reason) == ("skipped", f"Skipped: {results.HELD_BACK}"), test


def test_the_kept_requirements_line_counts_those_met_before_the_miss():
    """With several processes, some kept tests may have run before an own test failed: the line
    counts them, so that the total adds up."""
    lesson = find("22")
    reqs = requirements(lesson)
    own, kept = [q for q in reqs if not q.inherited], [q for q in reqs if q.inherited]
    held = results.TestResult("x", "f", "t", None, "skipped", skip_reason=f"Skipped: {results.HELD_BACK}")
    graded = [RequirementResult(own[0], "missed"), *(RequirementResult(q, "met") for q in own[1:]),
              RequirementResult(kept[0], "met"), *(RequirementResult(q, "held", [held]) for q in kept[1:])]
    lines = checklist(Grade(lesson, lesson.path, graded, 1.0))
    assert lines[0] == (f"  - What lessons 17, 18, 20 and 21 required that this lesson keeps ({len(kept)} "
                        f"requirements): 1 met, the other {len(kept) - 1} wait until this lesson's own "
                        "are met"), lines


# --- the checklist's details, from the structured results -----------------------------------

def pairs_shown(output: str) -> list[tuple[str, str]]:
    lines = output.splitlines()
    return [(a.split("expected: ", 1)[1], b.split("got:      ", 1)[1])
            for a, b in zip(lines, lines[1:], strict=False) if "expected: " in a and "got:      " in b]


@pytest.fixture(scope="module", autouse=True)
def lesson_16_check_going(request, tmp_path_factory):
    """make check LESSON=16 on a copy of lesson 15, as a learner starts it, started before this
    module's first test: the red run spends most of its time waiting (for an app that cannot
    start, for pages that never change), and the tests before it use that time."""
    if not any("lesson_16_on_15" in item.fixturenames for item in request.session.items):
        yield None
        return
    workspace = tmp_path_factory.mktemp("workspace")
    assert exercise(workspace, "start", "16").returncode == 0
    env = dict(os.environ, AIC_WORKSPACE=str(workspace))

    def check():
        r = subprocess.run([*SHARED, "check", "16"], cwd=ROOT, env=env, capture_output=True, text=True)
        return r, results.read(RESULTS / "16-check.jsonl")  # at once: the next check 16 rewrites it

    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(check)


@pytest.fixture(scope="module")
def lesson_16_on_15(lesson_16_check_going):
    """That check's output and structured results."""
    r, run = lesson_16_check_going.result()
    assert r.returncode == 1, r.stdout + r.stderr
    return r.stdout, run


def test_a_parametrised_requirement_names_its_failing_cases(lesson_16_on_15):
    output, run = lesson_16_on_15
    lines = {line.strip().split(": ")[0].removeprefix("\u2718 "): line for line in output.splitlines()
             if line.strip().startswith("\u2718")}
    checked = 0
    for req in requirements(find("16")):
        failed = [t.case for t in run.for_test(req.file, req.test) if t.outcome == "failed"]
        if failed and failed[0] is not None:
            line = lines[req.text]
            assert f"{len(failed)} of " in line and all(case in line for case in failed[:6]), line
            checked += 1
    assert checked >= 2, output


@pytest.mark.parametrize("number", ["24", "25"])
def test_tests_imported_by_name_are_requirements_too(number):
    """pytest runs the tests a lesson's file imports by name from an earlier one (24 takes 11 of
    lesson 22's); make check must grade them, as it grades those imported with *."""
    reqs = {r.test: r for r in requirements(find(number))}
    taken = reqs.get("test_cors_origins_come_from_the_settings")
    assert taken is not None and taken.inherited == "test_22_bigger_app.py", sorted(reqs)


def test_no_expected_and_got_pair_looks_equal(lesson_16_on_15):
    output, _ = lesson_16_on_15
    pairs = pairs_shown(output)
    assert pairs, output
    assert [pair for pair in pairs if pair[0] == pair[1]] == []


def test_no_line_points_into_installed_packages(lesson_16_on_15):
    output, _ = lesson_16_on_15
    assert "site-packages" not in output and "starlette" not in output.lower(), output
    assert "hint:" in output


def test_a_failing_assert_in_helpers_shows_both_values(started_07):
    """Lesson 07 on 06's code: helpers.broken_fields asserts the 422 (tests/helpers.py)."""
    r = started_07[2]["check", "07"]
    in_helpers = [i for i, line in enumerate(r.stdout.splitlines()) if "(tests/helpers.py, line" in line]
    assert in_helpers, r.stdout
    after = r.stdout.splitlines()[in_helpers[0] + 1:in_helpers[0] + 3]
    assert after[0].startswith("      expected: ") and after[1].startswith("      got:      "), r.stdout
    assert after[0].split(": ", 1)[1].strip() != after[1].split(": ", 1)[1].strip()


@pytest.mark.parametrize(("expected", "actual"), [
    ("('error', {'detail': 'Invalid or expired token: log in again'})",
     "('error', {'detail': 'Invalid or expired token, log in again'})"),
    ("x" * 500 + "a", "x" * 500 + "b"),
    ("short", "x" * 200),
])
def test_long_values_show_where_they_first_differ(expected, actual):
    shown = values_lines(actual, expected)
    assert shown[0] != shown[1].replace("got:     ", "expected:"), shown
    first = next(i for i, (a, b) in enumerate(zip(expected, actual, strict=False)) if a != b)
    assert f"from character {first + 1} on" in shown[-1], shown


def test_a_folders_own_modules_are_never_the_courses(tmp_path):
    """A learner's coach.py, llm.py, auth.py, helpers.py, shared.py or app/ is what their code
    imports under the tests, as it is under uvicorn: never the course's module of that name."""
    folder = tmp_path / "02-own"
    shutil.copytree(find("02").path, folder)
    names = ["app", "auth", "coach", "conftest", "helpers", "llm", "shared"]
    for name in names:
        (folder / f"{name}.py").write_text("")
    (folder / "app.py").unlink()
    (folder / "app").mkdir()
    (folder / "app" / "__init__.py").write_text("")
    (folder / "main.py").write_text(
        "from pathlib import Path\n\n"
        f"import {', '.join(names)}\n\n"
        f"for own in ({', '.join(names)}):\n"
        "    assert Path(own.__file__).resolve().is_relative_to(Path(__file__).resolve().parent), own\n\n"
        + (find("02").path / "main.py").read_text())
    r = exercise(tmp_path, "check", "02", "--dir", str(folder))
    assert r.returncode == 0, r.stdout + r.stderr


# --- what a miss says, piece by piece -------------------------------------------------------

def failed(**fields) -> Failure:
    return Failure(**{"exception": "AssertionError", "message": "assert False", **fields})


@pytest.mark.parametrize(("failure", "words"), [
    (failed(exception="SyntaxError", message="invalid syntax (main.py, line 3)"), "syntax error at the line"),
    (failed(exception="SyntaxError", module="psycopg2.errors", message='syntax error at or near "Brien"'),
     "pass values as %s parameters"),
    (failed(exception="ProgrammingError", module="sqlalchemy.exc",
            message='(psycopg2.errors.SyntaxError) syntax error at or near "Brien"'), "%s parameters"),
    (failed(exception="DuplicateTable", module="psycopg2.errors", message='relation "users" already exists'),
     "IF NOT EXISTS"),
    (failed(exception="UniqueViolation", module="psycopg2.errors",
            message='duplicate key value violates unique constraint "users_pkey"'), "let Postgres number"),
    (failed(op="==", actual="500", expected="201", server_error="KeyError: 'name'"), "server:"),
    (failed(op="==", actual="500", expected="503", server_error="sqlalchemy.exc.OperationalError: (psycopg2."
            "OperationalError) connection to server failed: Connection refused"), "exception_handler"),
    (failed(exception="ResponseValidationError", module="fastapi.exceptions",
            message="1 validation errors:\n  {'type': 'get_attribute_error', 'loc': ('response', 'id'), "
            "'msg': 'Error extracting attribute: DetachedInstanceError: Instance <User> is not bound to a "
            "Session'}"),
     "db.refresh(obj)"),
    (failed(), "VERBOSE=1"),
], ids=["python-syntax", "sql-syntax", "sql-syntax-through-sqlalchemy", "table-made-twice", "id-worked-out",
        "server-500", "database-down-500", "expired-orm-object", "any-other"])
def test_hints_name_what_went_wrong(failure, words):
    assert words in hint_for(failure, LESSON, LESSON.path)


def test_hints_point_at_the_task_not_at_the_tests_or_an_online_page():
    for _, hint in HINTS:
        assert "/docs" not in hint and "test named above" not in hint, hint


def test_an_in_assert_shows_what_was_looked_for_and_where():
    log = "\n".join([f"INFO: request {n}" for n in range(20)] + ["INFO: login ok", "INFO: shutting down"])
    shown = search_lines("in", repr("login: user 7"), repr(log))
    assert shown[0] == "looked for: 'login: user 7'", shown
    assert any("INFO: login ok" in line for line in shown), shown
    short = search_lines("in", repr("[5, 7]"), repr("Running upgrade 0002 -> 0003\nemails set to NULL"))
    assert any("emails set to NULL" in line for line in short), short
    leak = search_lines("not in", repr("secret123"), repr("x" * 100 + "password secret123 here" + "y" * 100))
    assert any("password secret123 here" in line for line in leak), leak


@pytest.mark.parametrize(("line", "statement"), [
    (6, "assert f.read( ) == 1"),   # a statement over two lines, from its second: the whole of it
    (3, 'with open( "x" ) as f:'),  # a with that failed on entering: its head, not its body
    (7, "x = 1"),
])
def test_a_failure_names_its_whole_statement_and_no_more(tmp_path, line, statement):
    source = tmp_path / "test_x.py"
    source.write_text('def test():\n    with open(\n        "x"\n    ) as f:\n        assert f.read(\n'
                      '            ) == 1\n    x = 1\n')
    assert statement_of(source, line) == statement


def test_a_long_message_shows_its_first_and_last_lines():
    output = "\n".join(["uvicorn stopped: ValueError: no", *[f"line {n}" for n in range(10)], "the end"])
    shown = error_line(failed(exception="Failed", message=output)).splitlines()
    assert shown[0] == "uvicorn stopped: ValueError: no" and shown[-1].endswith("the end"), shown


@pytest.mark.parametrize(("docstring", "text", "hint"), [
    ("Database down gives 503\nHint: the tests change DB_PORT\nbetween requests.",
     "Database down gives 503", "the tests change DB_PORT between requests."),
    ("While the coach thinks, the session has given its connection back: no\nconnection sits in a "
     "transaction. Hint: close it.", "While the coach thinks, the session has given its connection back: "
     "no connection sits in a transaction.", "close it."),
    ("uvicorn pings every 0.1 s here. Its\npongs are read.", "uvicorn pings every 0.1 s here.", ""),
    ("The app is the package app/: main, routers/.\napp/routers/ holds users.",
     "The app is the package app/: main, routers/.", ""),
])
def test_a_requirement_is_its_docstrings_whole_first_sentence(docstring, text, hint):
    assert text_and_hint(docstring) == (text, hint)


@pytest.mark.parametrize(("failure", "words"), [
    (Failure("TimeoutError", "Page.wait_for_url: Timeout 5000ms exceeded."), "browser's console"),
    (Failure("ModuleNotFoundError", "No module named 'main'"), "no main.py"),
    (Failure("AssertionError", "assert 404 == 201", op="==", actual="404", expected="201"), "add the route"),
    (Failure("AssertionError", "assert 404 == 200", op="==", actual="404", expected="200",
             response={"status": 404, "body": '{"detail":"Not Found"}'}), "add the route"),
    (Failure("AssertionError", "assert 404 == 200", op="==", actual="404", expected="200",
             response={"status": 404, "body": '{"detail":"User not found"}'}), "commit the change"),
    (Failure("AssertionError", "assert 404 == 422", op="==", actual="404", expected="422",
             response={"status": 404, "body": '{"detail":"User not found"}'}), "bad input was accepted"),
])
def test_hints_come_from_the_table(failure, words):
    assert all(isinstance(pattern, str) and isinstance(hint, str) for pattern, hint in HINTS)
    assert words in hint_for(failure, LESSON, LESSON.path)


def test_an_http_answer_the_failing_line_does_not_name_is_shown_as_an_earlier_one():
    """A socket test that logged in over HTTP first fails on a frame: the login's answer is no
    answer to the failing line, and the report says so instead of showing it as `answer:`."""
    from conftest import response_in

    class Answer:  # what the tests' HTTP clients give back, as far as the report reads it
        status_code, text = 401, '{"detail":"Invalid or expired token: log in again"}'

    def steps():
        r, ws = Answer(), object()  # noqa: F841  (read from the frame)
        return sys._getframe()

    frame = steps()
    socket_line = "assert receive(ws)['type'] == 'token'"
    assert response_in([(frame, socket_line)])["named"] is False
    assert response_in([(frame, "assert r.status_code == 200, r.text")])["named"] is True
    lesson = find("21")
    requirement = next(q for q in requirements(lesson) if q.test.startswith("test_the_first_token"))
    failure = Failure("AssertionError", "assert 'error' == 'token'", statement=socket_line, op="==",
                      actual="'error'", expected="'token'", response=response_in([(frame, socket_line)]))
    case = results.TestResult("x", requirement.file, requirement.test, None, "failed", failure=failure)
    lines = failure_lines(RequirementResult(requirement, "missed", [case]), lesson, lesson.path, False)
    assert not any(line.startswith("answer:") for line in lines), lines
    earlier = [line for line in lines if line.startswith("earlier:  401 ")]
    assert earlier and "before the failing line" in earlier[0], lines
    failure.response["body"] = 'data: {"token": "Hi"}\n\nevent: done\ndata: {}\n\n'  # a stream's
    lines = failure_lines(RequirementResult(requirement, "missed", [case]), lesson, lesson.path, False)
    shown = 'earlier:  401 data: {"token": "Hi"} event: done data: {} ('  # one line of the report
    assert any(line.startswith(shown) for line in lines), lines


def test_a_failure_before_the_requirement_gets_the_tables_hint_not_the_requirements_own():
    """No socket route at all: the requirement's own hint (how to answer mid-answer messages)
    would send the learner after the wrong thing."""
    lesson = find("21")
    requirement = next(q for q in requirements(lesson) if q.test.startswith("test_a_message_sent_mid_answer"))
    assert requirement.hint, requirement
    failure = Failure("Failed", "the server refused the WebSocket at ws://127.0.0.1:5/ws/chat with HTTP 403: "
                      "most often there is no WebSocket route there (@app.websocket)")
    case = results.TestResult("x", requirement.file, requirement.test, None, "failed", failure=failure)
    lines = failure_lines(RequirementResult(requirement, "missed", [case]), lesson, lesson.path, True)
    start = next(i for i, line in enumerate(lines) if line.startswith("hint:"))
    hint = " ".join(line.removeprefix("hint:").strip() for line in lines[start:])
    assert "include_router" in hint and requirement.hint not in hint, lines


def test_what_went_wrong_inside_a_task_group_or_a_started_answer_is_what_a_line_names():
    """A stream's failure reaches the test wrapped: in an ExceptionGroup (a task group's), or in
    Starlette's "response already started". The line names what is inside, and its place."""
    from conftest import STARTED_ANSWER, first_inside

    inner = TimeoutError("QueuePool limit of size 1 overflow 0 reached")
    grouped = ExceptionGroup("unhandled errors in a TaskGroup", [ExceptionGroup("a stream", [inner])])
    assert first_inside(grouped) is inner
    try:
        try:
            raise inner
        except TimeoutError:
            raise RuntimeError(f"{STARTED_ANSWER}.") from None  # `from None` keeps __context__
    except RuntimeError as started:
        assert first_inside(started) is inner
    plain = RuntimeError("something else")
    assert first_inside(plain) is plain
