"""The structured results of one pytest run: one JSON line per test, written by the plugin in
tests/conftest.py (pytest --results=FILE), read by make test, make test PREVIOUS=1, make check
and bench. Nothing here parses pytest's text output.

A test's line: its node id, file, function, parametrised case id, outcome (passed, failed,
skipped), seconds, and for a failure what went wrong in facts: the exception, the statement in
tests/ that failed and where, the assert's full left and right values (actual, expected), the
HTTP response the test held (status and body), the exception a server the test started logged
meanwhile, and the file and line in the graded folder where the error came from. A last line
(kind "session") says how pytest ended.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Why make check skipped a test (pytest --own-first, tests/conftest.py): the test is one the
# lesson's file takes over from an earlier lesson's, and one of the lesson's own had failed.
HELD_BACK = "held back until this lesson's own requirements are met"


@dataclass
class Failure:
    exception: str              # "AssertionError", "ImportError", "Failed" (pytest.fail), ...
    message: str                # str() of the exception (a long one: its first 1000 and last 3000 characters)
    module: str = ""            # where the exception class lives, when not a builtin: "psycopg2.errors"
    statement: str = ""         # the failing statement, in the test file or tests/helpers.py
    statement_at: str = ""      # where that is: "tests/helpers.py:45"
    op: str = ""                # the compared assert's operator ("==", "in", ...), or ""
    actual: str | None = None   # the assert's left side, in full (repr, or pprint for big values)
    expected: str | None = None  # the assert's right side, in full
    response: dict | None = None  # {"status": 422, "body": "...", "named": True} of the response the
                                  # test held; named: the failing statement names it (else an
                                  # earlier step's, such as a login before a socket)
    learner_at: str = ""        # "main.py:12": innermost frame inside the graded folder
    server_error: str = ""      # a server the test started (uvicorn) logged a traceback meanwhile:
                                # the exception it ended with, "ValueError: bad value"
    phase: str = "call"         # "setup" (a fixture failed: the app did not start), "call", "teardown"
    report: str = ""            # pytest's own short report of it, for VERBOSE=1 and make test


@dataclass
class TestResult:
    nodeid: str
    file: str                   # the test file's name
    function: str
    case: str | None            # the parametrised id ("alg-none"), None for a plain test
    outcome: str                # "passed", "failed" or "skipped"
    seconds: float = 0.0
    skip_reason: str = ""
    failure: Failure | None = None
    kind: str = "test"


@dataclass
class Session:
    exitstatus: int
    collected: int
    seconds: float
    errors: list[str] = field(default_factory=list)  # collection errors, as pytest reports them
    kind: str = "session"


@dataclass
class RunResults:
    tests: list[TestResult]
    session: Session | None     # None: pytest never finished (killed, or it crashed)

    def count(self, outcome: str) -> int:
        return sum(1 for t in self.tests if t.outcome == outcome)

    def for_test(self, file: str, function: str) -> list[TestResult]:
        return [t for t in self.tests if t.file == file and t.function == function]


def to_line(record: TestResult | Session) -> str:
    return json.dumps(asdict(record)) + "\n"


def read(path: Path) -> RunResults:
    tests, session = [], None
    if not path.exists():
        return RunResults(tests, session)
    for line in path.read_text().splitlines():
        data = json.loads(line)
        if data.get("kind") == "session":
            session = Session(**data)
        else:
            failure = data.pop("failure")
            tests.append(TestResult(**data, failure=Failure(**failure) if failure else None))
    return RunResults(tests, session)
