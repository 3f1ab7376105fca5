"""pytest in the process that calls it: a new interpreter's (testrun.PYTEST_THEN_END), or one
forked from a process that has the packages loaded (testrun's fork server, warm.py's server).
Each ends its process as soon as pytest is done."""

import atexit
import os
import sys
from collections.abc import Callable

from shared.ground.paths import ROOT


def pytest_here(args: list[str], env: dict, report: str, last: Callable[[int], None] | None = None) -> None:
    """Runs in a forked process: pytest with the job's environment, its report to `report`,
    and an exit as a new interpreter's would be (atexit's handlers run, pytest's status).
    `last(status)` runs once everything else has, just before the process ends."""
    # Imported here, in the job's process (where the fork server has loaded it already), not
    # by the command line that starts the jobs and never runs a test itself.
    import pytest

    os.chdir(ROOT)
    os.environ.clear()
    os.environ.update(env)
    out = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    sys.argv = ["pytest", *args]
    end_now(int(pytest.main(args)), last)


def pytest_then_end(args: list[str]) -> None:
    """pytest in this process (a new interpreter: testrun.PYTEST_THEN_END), then end_now."""
    import pytest  # in the job's interpreter only, as in pytest_here

    end_now(int(pytest.main(args)))


def end_now(status: int, last: Callable[[int], None] | None = None) -> None:
    """Ends a job's process as an interpreter's exit would, without its last step.

    What an interpreter does on its way out (logging's last flush, temporary folders' clean-up)
    is atexit's handlers: they run, and the output is flushed. What follows them, freeing every
    module and object one by one, took 0.24-0.26 s after each of lesson 14's checks, and
    nothing in it matters once the results are written and the servers stopped. (A process
    that multiprocessing forked skips atexit's handlers too: here they run either way.)
    """
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    if last is not None:
        last(status)
    os._exit(status)
