"""make fuzz in the repo checks: Schemathesis flags nothing in a few lessons, on a small budget.

Each run starts the lesson's app on a database of its own and checks every answer against the
app's OpenAPI document (shared/services/fuzzing.py). Four lessons stand for the rest, to keep
`make test` fast: 07 (Pydantic, in memory), 10 (raw SQL), 15 (the ORM, the paged list, Alembic)
and 21 (tokens: fuzzed anonymously and logged in). `make fuzz LESSON=NN` runs any lesson, with
a bigger budget.
"""

import json
import subprocess
import sys

import pytest

from helpers import ROOT


def fuzz(number: str, report) -> tuple[subprocess.CompletedProcess, dict]:
    # 3 examples per operation, not make fuzz's 50: make test runs on every change, and Schemathesis's
    # coverage phase (every documented boundary and type, whatever the budget) finds what a wrong
    # document or an unhandled input shows; the longer random search is make fuzz LESSON=NN's, for
    # a maintainer changing the API. (Lesson 21: 7 s of CPU at 3, 14 s at 50; make test has four.)
    command = [sys.executable, "-m", "shared", "fuzz", number, "--max-examples", "3", "--report", str(report),
               "--", "--seed", "1"]
    r = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    return r, json.loads(report.read_text()) if report.exists() else {}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("number", ["07", "10", "15"])
def test_schemathesis_flags_nothing(number, tmp_path):
    r, report = fuzz(number, tmp_path / "report.json")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert [p["name"] for p in report["passes"]] == ["anonymous"], report


@pytest.fixture(scope="module")
def fuzzed_21(tmp_path_factory):
    """make fuzz LESSON=21 once (two passes: anonymous, logged in): (the run, its report)."""
    return fuzz("21", tmp_path_factory.mktemp("fuzz") / "report.json")


@pytest.mark.timeout(300)  # two passes of Schemathesis: about 10 s alone, longer beside make test's others
def test_a_lesson_with_a_login_is_fuzzed_anonymously_and_with_a_valid_token_on_every_operation(fuzzed_21):
    r, report = fuzzed_21
    passes = {p["name"]: p["counts"] for p in report.get("passes", [])}
    assert sorted(passes) == ["anonymous", "logged in"], r.stdout[-4000:] + r.stderr[-2000:]
    no_token = [op for op, counts in passes["logged in"].items() if counts["with_token"] == 0]
    assert no_token == [], passes["logged in"]


def test_schemathesis_flags_nothing_in_lesson_21(fuzzed_21):
    r, report = fuzzed_21
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
