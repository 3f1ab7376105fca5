"""Measures the course's speed and memory targets; the numbers go into notes, never into tests.

    .venv/bin/python shared/bench.py              database start times, make run to first 200,
                                                  and the test times of the last full `make test`
    .venv/bin/python shared/bench.py --tests      runs a full `make test` first, for fresh times
    .venv/bin/python shared/bench.py --only-tests just the test times (make bench ARGS=--only-tests)

Test times come from build/test-results/summary.json, which every full `make test` writes:
per lesson the seconds in make test's own summary (two lessons run at once, as on two cores),
with the machine's load beside them; a lesson's tests should stay under 10 s.

Cold and warm database starts are timed on a throwaway copy of the tool (its own data folder,
port 5499), so the learner's database is never stopped or touched. `make run` is timed on the
real ports 8000/8001, which must be free, against a throwaway database aic_bench.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import devdb

ROOT = Path(__file__).resolve().parent.parent


def timed(argv, **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - started


def bench_database(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # the unprivileged server user must reach its data folder
        (Path(tmp) / "shared").mkdir()
        shutil.copy(ROOT / "shared" / "devdb.py", Path(tmp) / "shared")
        shutil.copy(ROOT / "docker.env.example", tmp)
        tool = [sys.executable, str(Path(tmp) / "shared" / "devdb.py")]
        env = dict(os.environ, DEVDB_PORT="5499")
        cold, warm, running = [], [], []
        try:
            for _ in range(rounds):
                shutil.rmtree(Path(tmp) / ".data", ignore_errors=True)
                cold.append(timed([*tool, "up"], env=env))
                running.append(timed([*tool, "up"], env=env))
                timed([*tool, "stop"], env=env)
                warm.append(timed([*tool, "up"], env=env))
                timed([*tool, "stop"], env=env)
        finally:
            subprocess.run([*tool, "stop"], env=env, capture_output=True)
    for name, times in (("cold", cold), ("warm", warm), ("already running", running)):
        print(f"make db, {name:<16} median {statistics.median(times):.2f} s  "
              f"(min {min(times):.2f}, max {max(times):.2f}, {rounds} runs, incl. Python start)")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except FileNotFoundError:
            continue
        total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
        pids += [int(c) for c in children]
    return total / 1024


def bench_run(lesson: str, url: str, env: dict) -> None:
    started = time.perf_counter()
    proc = subprocess.Popen(["make", "--no-print-directory", "run", f"LESSON={lesson}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while time.perf_counter() - started < 60:
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        else:
            print(f"make run LESSON={lesson}: no 200 from {url} within 60 s")
            return
        elapsed = time.perf_counter() - started
        time.sleep(0.5)
        print(f"make run LESSON={lesson}: first 200 from {url} after {elapsed:.2f} s; "
              f"memory of everything it started (make, Python, uvicorn + reloader, page server): "
              f"{rss_mb(proc.pid):.0f} MB")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=15)


SUMMARY = ROOT / "build" / "test-results" / "summary.json"
LESSON_BUDGET = 10  # seconds a lesson's tests may take in make test's summary


def print_test_times() -> None:
    """The per-lesson table of the last full make test (its summary.json)."""
    if not SUMMARY.exists():
        print("test times: no full `make test` has run yet (bench.py --tests runs one)")
        return
    summary = json.loads(SUMMARY.read_text())
    cores, load = summary["cores"], f"{summary['load_before']} before / {summary['load_after']} after"
    print(f"\nmake test of {summary['finished']}: {summary['wall_seconds']:.1f} s wall, "
          f"{summary['jobs']} jobs at once on {cores} cores, load {load} (over {cores}: other work ran too)")
    print(f"| {'job':<8} | {'what':<28} | {'tests':>5} | {'seconds':>7} |")
    print(f"|{'-' * 10}|{'-' * 30}|{'-' * 6}:|{'-' * 8}:|")
    for run in summary["runs"]:
        lesson = run["job"].isdigit()
        flag = " (over 10 s)" if lesson and run["seconds"] > LESSON_BUDGET else ""
        flag += "" if run["ok"] else " FAILED"
        print(f"| {run['job']:<8} | {run['title']:<28} | {run['passed'] + run['failed']:>5} | "
              f"{run['seconds']:>7.1f} |{flag}")
    lessons = [run["seconds"] for run in summary["runs"] if run["job"].isdigit()]
    if lessons:
        print(f"lessons: {len(lessons)}, slowest {max(lessons):.1f} s, sum {sum(lessons):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tests", action="store_true", help="run a full make test first (fresh test times)")
    parser.add_argument("--only-tests", action="store_true", help="only the test times")
    args = parser.parse_args()
    if args.tests:
        started = time.perf_counter()
        done = subprocess.run(["make", "--no-print-directory", "test"], cwd=ROOT, stdout=subprocess.DEVNULL)
        print(f"make test: {time.perf_counter() - started:.1f} s wall, including setup"
              + ("" if done.returncode == 0 else " (some tests FAILED)"))
    if args.only_tests:
        print_test_times()
        return
    bench_database(args.rounds)
    # make run finds the database running; the apps use a throwaway database, not your aic_db
    # (variables already in the environment win over a lesson's .env).
    env = {**os.environ, **devdb.create_test_database("aic_bench")}
    bench_run("01", "http://127.0.0.1:8000/", env)
    bench_run("02", "http://127.0.0.1:8000/api/time", env)
    bench_run("10", "http://127.0.0.1:8000/docs", env)
    bench_run("15", "http://127.0.0.1:8000/api/users", env)  # after alembic upgrade head
    print_test_times()


if __name__ == "__main__":
    main()
