"""Running pytest: one process per job (a lesson, or a check job beside the lessons), several at
once, each writing its structured results (shared/ground/results.py) for whoever reads them.

Lessons share module names (main, models, ...), so each runs in a process that has imported
none of them (a new interpreter, or one forked from the fork server below or from warm.py's
server), with its own folder as the import root: LESSON and LESSON_DIR tell tests/conftest.py
which lesson's tests grade which folder.
"""

import json
import multiprocessing
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from shared.ground import devdb, results
from shared.ground.manifest import CheckJob, Lesson
from shared.ground.paths import RESULTS, ROOT
from shared.services import warm
from shared.services.inprocess import pytest_here

PYTEST_NO_TESTS = 5
TIMED_OUT = -1  # the exit status of a run stopped at its time limit
STATUS_LOST = 255  # a forked job's exit status when the fork server could not report it
# pytest's own report of each failure, as Python prints a traceback. Its default (--tb=auto,
# long) parses the source of every frame to show whole statements: a red check of lesson 07
# (25 failures, each through Starlette's and anyio's frames) took 13.5 s with it and 2.2 s with
# this. Runs whose report nobody reads in full (make check unless VERBOSE=1, make test
# PREVIOUS=1) use it; the structured results (conftest.py) are the same either way.
BRIEF_TRACEBACKS = ("--tb=native",)
# Jobs at once: two more than the cores. A job is mostly one busy Python process, but the later
# lessons' jobs also wait (for a stream's next token, a timeout, a page), and the extra jobs fill
# those waits. Measured, make test whole on 2 cores, every job green each time: 2 at once 175 s;
# 3 at once 134.6, 134.7 and 139.2 s; 4 at once 144.4 s. Once the jobs' CPU shrank (gc.freeze,
# no CA certificates in the test processes): 3 at once 119.3 and 117.9 s (86-88 % of both cores
# busy), 4 at once 112.8 and 115.2 s (94-96 %).
JOBS = (os.cpu_count() or 2) + 2


@dataclass
class JobRun:
    job: Lesson | CheckJob
    folder: Path | None       # the folder a lesson's tests graded (None for a check job)
    exitstatus: int
    seconds: float
    output: str               # pytest's own -q report, shown when a job fails
    results: results.RunResults
    note: str = ""            # why a job with no failing test is red ("no tests ran")

    @property
    def ok(self) -> bool:
        return self.exitstatus == 0

    def counts(self) -> dict[str, int]:
        counts = {k: self.results.count(k) for k in ("passed", "failed", "skipped")}
        if not self.ok and not counts["failed"]:
            counts["failed"] = 1  # it ran no test, or could not collect them: never green
        return counts


def results_file(job: Lesson | CheckJob, tag: str = "") -> Path:
    """Where a job's results are kept after its run: build/test-results/NN[tag].jsonl."""
    return RESULTS / f"{job.key}{tag}.jsonl"


def run_job(job: Lesson | CheckJob, folder: Path | None = None, tag: str = "", options: tuple = (),
            timeout: float | None = None, forked: bool = False, warmed: bool = False) -> JobRun:
    """pytest on the job's test files; a lesson's against `folder` (default: the lesson's own).
    `tag` names a run of its own (a test database and a results file): "-on-previous", "-check".
    `forked`: pytest in a process forked from the fork server (see forked_pytest), not a new
    interpreter. `warmed`: forked from the warm server (warm.py; make check), if one runs, else
    a new interpreter, and a warm server started for the next run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    # Written under a name of this run's own (another run of the same job may be going), then
    # moved to results_file() once pytest is done.
    running = RESULTS / f".{job.key}{tag}.{os.getpid()}.{time.monotonic_ns()}.jsonl"
    # make passes its command line's variables on (in the environment, and in MAKEFLAGS to any
    # make a test runs): `make test LESSON=site` must not reach the tests as LESSON=site.
    dropped = ("LESSON", "LESSON_DIR", "TEST_DB_SUFFIX", "DIR", "PREVIOUS", "MAKEFLAGS", "MFLAGS",
               "MAKELEVEL")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    if isinstance(job, Lesson):
        folder = (folder or job.path).resolve()
        env.update(LESSON=job.number, LESSON_DIR=str(folder))
        if tag:  # e.g. the lesson's tests on the previous lesson: a test database of its own
            env["TEST_DB_SUFFIX"] = tag.replace("-", "_")
    started = time.monotonic()
    args = [*map(str, job.test_files), f"--results={running}", "-q", *options]
    exitstatus, output = (forked_pytest if forked else warm_pytest if warmed else pytest_process)(
        args, env, timeout, running)
    seconds = time.monotonic() - started
    # Read before it is moved: another run of the same job (make bench beside make check) may
    # replace the kept file at any moment.
    found = results.read(running)
    if forked and exitstatus == STATUS_LOST and found.session is not None:
        # The fork server lost how the job ended (multiprocessing then says 255, "perhaps the
        # forkserver process itself got killed"; seen once in a clean-clone make test, on a job
        # whose every test had passed). pytest wrote its own status as the session's last line.
        exitstatus = found.session.exitstatus
    kept = results_file(job, tag)
    if running.exists():
        running.replace(kept)
    else:
        kept.unlink(missing_ok=True)
    note = ""
    if exitstatus == PYTEST_NO_TESTS:
        note = "no tests ran"
    elif exitstatus == TIMED_OUT:
        note = f"did not finish within {timeout:.0f} s"
    elif exitstatus and not any(t.outcome == "failed" for t in found.tests):
        note = f"pytest exited {exitstatus}"
    return JobRun(job, folder, exitstatus, seconds, output, found, note)


# `python -m pytest`, except that the interpreter ends as soon as pytest is done (end_now).
PYTEST_THEN_END = ("import sys; from shared.services.inprocess import pytest_then_end; "
                   "pytest_then_end(sys.argv[1:])")


def pytest_process(args: list[str], env: dict, timeout: float | None, running: Path) -> tuple[int, str]:
    """pytest in a new interpreter: its exit status and its report."""
    try:
        proc = subprocess.run([sys.executable, "-c", PYTEST_THEN_END, *args], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False, timeout=timeout)
        return proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout or ""
        return TIMED_OUT, output.decode(errors="replace") if isinstance(output, bytes) else output


def warm_pytest(args: list[str], env: dict, timeout: float | None, running: Path) -> tuple[int, str]:
    """pytest forked from the warm server (warm.py): its exit status and its report. With no
    server to fork from, a new interpreter (pytest_process), and a warm server started beside it
    for the next run."""
    report = running.with_suffix(".out")
    try:
        exitstatus = warm.run([*ALREADY_IMPORTED, *args], env, report, timeout)
    except warm.TimedOut:
        exitstatus = TIMED_OUT
    if exitstatus is None:
        warm.start()
        return pytest_process(args, env, timeout, running)
    output = report.read_text(errors="replace") if report.exists() else ""
    report.unlink(missing_ok=True)
    return exitstatus, output


# Many jobs (make test, make test PREVIOUS=1) start their pytest from a fork server: a process
# started once, which imports the packages every job imports (preload.py), then forks a process
# per job. Each job still runs alone, in a process that has never imported a lesson's modules,
# but without the 1.3 s of imports. make test whole on 2 cores, a new interpreter per job: 133 s,
# 248 s of CPU; forked: 109-124 s, 206-228 s of CPU. (multiprocessing's "forkserver": the server
# is a new interpreter, so no job inherits the threads or the state of the command line.) A
# single job (make check, make watch) forks from the warm server instead (warm.py), which
# outlives the command line, for the checks to come; make test LESSON=NN starts a new interpreter.
FORK_SERVER = multiprocessing.get_context("forkserver")
FORK_SERVER.set_forkserver_preload(["shared.services.preload"])
# pytest rewrites the asserts of every package that ships a pytest plugin, and warns (an error
# here) when one is imported already. The fork server imports anyio (FastAPI is built on it),
# whose plugin the tests do not use. Another such package fails make test, and is added here.
PRELOADED_PLUGIN_PACKAGES = ("anyio",)
ALREADY_IMPORTED = tuple(f"-Wignore:Module already imported so cannot be rewritten; {name}:"
                         "pytest.PytestAssertRewriteWarning" for name in PRELOADED_PLUGIN_PACKAGES)


def forked_pytest(args: list[str], env: dict, timeout: float | None, running: Path) -> tuple[int, str]:
    """pytest in a process forked from the fork server: its exit status and its report."""
    report = running.with_suffix(".out")
    proc = FORK_SERVER.Process(target=pytest_here, args=([*ALREADY_IMPORTED, *args], env, str(report)),
                               name="pytest")
    proc.start()
    try:
        proc.join(timeout)
        if proc.exitcode is None:  # still running at its time limit
            proc.kill()
            proc.join()
            exitstatus = TIMED_OUT
        else:
            exitstatus = proc.exitcode
    except BaseException:  # Ctrl-C, or SIGTERM (the command line makes it one): as subprocess.run
        proc.kill()
        proc.join()
        raise
    finally:
        output = report.read_text(errors="replace") if report.exists() else ""
        report.unlink(missing_ok=True)
    return exitstatus, output


def spread(workers: int, folder: Path = warm.FOLDER) -> tuple[str, ...]:
    """pytest options that run one job's tests in `workers` processes (pytest-xdist); the tests
    that share a costly module fixture stay on one of them (tests/conftest.py marks them), and
    the tests are handed out in the order conftest.py gives them (without --no-loadscope-reorder,
    xdist would hand out the groups with the most tests first). With the warm server on, each
    worker is started by warm_worker.py, which has the server fork it (or, when the server
    cannot, becomes the interpreter `-n` would start)."""
    if workers <= 1:
        return ()
    how = ("-n", str(workers))
    if warm.enabled(folder):
        relay = shlex.join([sys.executable, "-S", str(Path(warm.__file__).with_name("warm_worker.py")),
                            str(folder)])
        # -n's own default for --max-worker-restart, which --tx alone does not set
        how = ("--tx", f"{workers}*popen//python={relay}", "--max-worker-restart", str(4 * workers))
    return (*how, "--dist", "loadgroup", "--no-loadscope-reorder")


def start_database(jobs) -> None:
    """Start the dev database once, before parallel runs race to do it."""
    if any(isinstance(job, Lesson) and "db" in job.needs for job in jobs):
        print(devdb.ensure_running(), flush=True)


def last_seconds(job) -> float | None:
    """How long the job's tests took in its last run, None if it never ran."""
    session = results.read(results_file(job)).session
    return session.seconds if session else None


def longest_first(jobs: list) -> list:
    """The order to start jobs in so that no long one is left for the end: by the time each took
    last run, longest first. Jobs never run yet (a new lesson; every job in a fresh clone, as
    in CI) go first: the check jobs, then the lessons from the last, which build on the ones
    before and test the most. Simulated with measured times of make test's jobs on 2 cores: 124 s
    in the manifest's order backwards, 115 s in this one, as in the order of their times."""
    new = [job for job in jobs if last_seconds(job) is None]
    checks = [job for job in new if isinstance(job, CheckJob)]
    lessons = [job for job in new if isinstance(job, Lesson)]
    timed = sorted((job for job in jobs if job not in new), key=last_seconds, reverse=True)
    return checks + lessons[::-1] + timed


def run_jobs(pairs: list[tuple], tag: str = "", jobs: int = JOBS, options: tuple = ()) -> list[JobRun]:
    """Runs (job, folder) pairs, `jobs` at once, longest first, each with pytest `options`;
    results in the given order."""
    start_database([job for job, _ in pairs])
    folder_of = {job.key: folder for job, folder in pairs}
    ordered = longest_first([job for job, _ in pairs])
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            done = pool.map(lambda job: run_job(job, folder_of[job.key], tag, options, forked=len(pairs) > 1),
                            ordered)
            runs = {run.job.key: run for run in done}
        except BaseException:  # Ctrl-C, or SIGTERM (the command line makes it one): start no more jobs
            pool.shutdown(cancel_futures=True)
            raise
    return [runs[job.key] for job, _ in pairs]


def write_summary(runs: list[JobRun], wall: float, jobs: int, load_before: float) -> None:
    """The run's times, for make bench: per job its seconds and counts, the wall time, and how
    busy the machine was (timings taken beside other work are longer)."""
    summary = {
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_seconds": round(wall, 1), "jobs": jobs,
        "cores": os.cpu_count(), "load_before": round(load_before, 1),
        "load_after": round(os.getloadavg()[0], 1),
        "runs": [{"job": r.job.key, "title": r.job.label, "ok": r.ok, "seconds": round(r.seconds, 1),
                  **r.counts(), "note": r.note} for r in runs],
    }
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


SUMMARY = RESULTS / "summary.json"
