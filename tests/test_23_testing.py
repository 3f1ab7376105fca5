"""Lesson 23: the learner writes the app's test suite; make check grades it by the bugs it catches.

The lesson's folder is the model answer: lesson 22's app, unchanged, and a suite in tests/. The
grader (shared/services/mutation.py) runs a suite on its own app, then on the model app with each bug of
shared/mutants/23-testing.toml planted. These tests hold the model suite to its budget, every
mutant to applying and being caught, and the grader to its verdicts on an empty suite, on one
that tests signup only, on suites that check which app they run on (a hash of app/, the folder's
name) instead of what it does, on a folder without pytest's settings, and on a suite whose tests
lean on each other's order (the grader reorders a mutant's tests only when they do not). The
grader forks, so it runs as its own command line here, as `make check` runs it, and reports
through its JSON results file.
"""

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from shared.ground import mutants

MUTANTS = mutants.load(mutants.mutants_file("23-testing"))
SIGNUP_ONLY = '''
from helpers import PASSWORD


def test_signup_creates_the_user(client):
    r = client.post("/api/users", json={"name": "Ada", "email": "ada@example.com", "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json() == {"id": r.json()["id"], "name": "Ada", "email": "ada@example.com"}
'''


def graded(folder: Path, tmp_path: Path, only: list[str] | None = None) -> tuple[dict, str]:
    """The grade of a folder, as make check LESSON=23 DIR=folder gives it: (results, printed)."""
    results = tmp_path / "grade.json"
    command = [sys.executable, "-m", "shared", "mutants", "check", "23", f"--dir={folder}",
               f"--results={results}", *([f"--only={','.join(only)}"] if only else [])]
    env = {k: v for k, v in os.environ.items() if k not in ("LESSON", "LESSON_DIR", "VERBOSE")}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
                          check=False)
    assert results.exists(), done.stdout + done.stderr
    return json.loads(results.read_text()), done.stdout


ORDER_DEPENDENT = '''
from helpers import PASSWORD

STATE = {}


def test_a_signup_is_201(client):
    r = client.post("/api/users", json={"name": "Ada", "email": "ada@example.com", "password": PASSWORD})
    assert r.status_code == 201, r.text
    STATE["signed_up"] = True


def test_b_login_is_200_after_a_signup(client, user):
    r = client.post("/api/login", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert STATE["signed_up"]  # leans on the test before: fails when run first
'''


def met(grade: dict) -> dict[str, bool]:
    return {r["requirement"]: r["met"] for r in grade["results"]}


@pytest.fixture(scope="module")
def model_grade(lesson, tmp_path_factory) -> tuple[dict, str]:
    """The lesson folder graded whole: the model suite on the model app, and on every mutant."""
    return graded(lesson.path, tmp_path_factory.mktemp("model"))


def test_the_test_tools_are_pinned_as_in_the_root_requirements(lesson):
    def pins(path: Path) -> dict[str, str]:
        lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
        return dict(line.split("==") for line in lines if "==" in line)

    tools = pins(lesson.path / "requirements-dev.txt")
    assert set(tools) == {"pytest", "pytest-cov", "httpx2"}
    assert tools.items() <= pins(ROOT / "requirements-dev.txt").items()
    assert (lesson.path / "requirements-dev.txt").read_text().startswith("# ")


def test_every_mutant_applies_to_the_model_app_and_changes_it(lesson, tmp_path):
    for mutant in MUTANTS:
        folder = tmp_path / mutant.name
        shutil.copytree(lesson.path / "app", folder / "app")
        mutants.plant(mutant, folder)  # MutantError when an edit's text is not found exactly once
        changed = {edit.file for edit in mutant.edits}
        assert all(not filecmp.cmp(lesson.path / f, folder / f, shallow=False) for f in changed), mutant.name


def test_the_model_suite_passes_on_the_model_app_with_90_percent_branch_coverage(model_grade):
    grade, printed = model_grade
    assert grade["results"][0] == {"requirement": mutants.OWN_PASSES, "met": True,
                                   "detail": grade["results"][0]["detail"], "hint": ""}
    assert grade["own"]["counts"]["failed"] == 0
    assert grade["coverage"] >= 90, printed
    assert f"Your tests ran {grade['coverage']:.0f} % of app/ (branches counted" in printed
    # Its time is measured, never held to a number here (make bench's rule): 5 s on a quiet
    # machine; a minute means something hangs.
    assert grade["own"]["seconds"] < 60


def test_the_model_suite_makes_its_own_database_and_catches_every_mutant(model_grade):
    grade, printed = model_grade
    assert met(grade) == {line: True for line in mutants.requirements(MUTANTS)}, printed
    assert f"{len(MUTANTS) + 2} of {len(MUTANTS) + 2} requirements met" in printed


def test_make_start_and_an_empty_tests_folder_catch_no_mutant(lesson, tmp_path):
    workspace = tmp_path / "workspace"
    started = subprocess.run([sys.executable, "-m", "shared", "start", "23"], cwd=ROOT,
                             env={**os.environ, "AIC_WORKSPACE": str(workspace)}, capture_output=True,
                             text=True, check=False)
    assert started.returncode == 0, started.stderr
    folder = workspace / "23-testing"
    (folder / "tests").mkdir()
    grade, printed = graded(folder, tmp_path)
    assert met(grade) == {line: False for line in mutants.requirements(MUTANTS)}, printed
    assert "pytest found no tests" in printed
    for mutant in MUTANTS:
        assert f"\u2718 Your tests catch: {mutant.bug}" in printed


def test_a_suite_that_tests_only_signup_misses_the_login_history_and_stream_bugs(lesson, tmp_path):
    folder = tmp_path / "signup-only"
    shutil.copytree(lesson.path, folder, ignore=shutil.ignore_patterns("test_*.py", "__pycache__", ".env"))
    (folder / "tests" / "test_signup.py").write_text(SIGNUP_ONLY)
    missed = ["any_password", "others_history", "history_reversed", "stream_no_done"]
    grade, printed = graded(folder, tmp_path, only=[*missed, "hash_shown"])
    bugs = {m.name: m.requirement for m in MUTANTS}
    assert met(grade) == {mutants.OWN_PASSES: True, mutants.OWN_DATABASE: True,
                          **{bugs[name]: False for name in missed}, bugs["hash_shown"]: True}, printed


def app_digest(folder: Path) -> str:
    import hashlib

    files = sorted((folder / "app").rglob("*.py"))
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


IDENTITY_CHEATS = {
    # Passes only on the app's bytes as the learner has them: make check's runs never have them.
    "hash": '''
import hashlib
from pathlib import Path

import app


def test_the_app_is_mine():
    root = Path(app.__file__).parent
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.rglob("*.py")))).hexdigest()
    assert digest == "{digest}"
''',
    # Passes where the folder is named as the learner's: every run of make check is.
    "folder": '''
from pathlib import Path

import app


def test_the_app_is_in_my_folder():
    assert Path(app.__file__).parent.parent.name == "{name}"
''',
}


@pytest.mark.parametrize("cheat", IDENTITY_CHEATS)
def test_a_suite_that_checks_which_app_it_runs_on_catches_no_bug(lesson, tmp_path, cheat):
    folder = tmp_path / "identity"
    shutil.copytree(lesson.path, folder, ignore=shutil.ignore_patterns("test_*.py", "__pycache__", ".env"))
    (folder / "tests" / "test_identity.py").write_text(
        IDENTITY_CHEATS[cheat].format(digest=app_digest(folder), name=folder.name))
    grade, printed = graded(folder, tmp_path, only=["any_password"])
    bug = next(m.requirement for m in MUTANTS if m.name == "any_password")
    assert met(grade)[bug] is False, printed
    if cheat == "hash":  # it fails on make check's copy of the learner's own app
        assert met(grade)[mutants.OWN_PASSES] is False, printed


def test_a_folder_without_pytest_settings_fails_the_first_line(lesson, tmp_path):
    folder = tmp_path / "no-settings"
    shutil.copytree(lesson.path, folder, ignore=shutil.ignore_patterns("pytest.ini", "__pycache__", ".env"))
    grade, printed = graded(folder, tmp_path, only=["any_password"])
    assert met(grade)[mutants.OWN_PASSES] is False, printed
    assert "pythonpath = ." in printed


def test_a_suite_whose_tests_lean_on_their_order_gets_no_bug_from_a_reordered_run(lesson, tmp_path):
    """A mutant's run starts with the tests that run its lines (test_b, for a login that accepts
    any password): here test_b would fail for want of test_a, not for the bug. The suite run in
    reverse order fails, so the mutant's run keeps the suite's order, and the bug is missed."""
    folder = tmp_path / "ordered"
    shutil.copytree(lesson.path, folder, ignore=shutil.ignore_patterns("test_*.py", "__pycache__", ".env"))
    (folder / "tests" / "test_order.py").write_text(ORDER_DEPENDENT)
    grade, printed = graded(folder, tmp_path, only=["any_password"])
    bug = next(m.requirement for m in MUTANTS if m.name == "any_password")
    assert met(grade) == {mutants.OWN_PASSES: True, mutants.OWN_DATABASE: True, bug: False}, printed
