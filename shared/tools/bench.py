"""make bench: how long a learner and a maintainer wait; numbers for notes, never for tests.

    python -m shared bench                     the check-loop table and a whole make test
    python -m shared bench --lessons 16,20     only these lessons' rows
    python -m shared bench --no-test           without the whole make test
    python -m shared bench --no-first          without the check with no warm server yet
    python -m shared bench --startup           also database starts and make run to first answer

The table, per lesson: `make check` on the model answer (green: the target is 5 s) and on the
previous lesson's folder (a typical red attempt: the target is 10 s), each the wall time of the
whole command as a learner types it, with the warm server up, as it is for every check after a
learner's first (shared/services/warm.py); that first check, on the model answer, with no warm
server yet (AIC_WARM=0; --no-first leaves it out); then `make test` whole (target 90 s wall,
every lesson and every check job). The machine's load is printed beside it
(timings taken beside other work are longer), and a speed probe before and after (speed_probe:
the cores of a shared host change speed). Each check runs with a workspace of its own
(AIC_WORKSPACE), so your progress is never touched. Results also go to build/bench.json.
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

from shared.ground import devdb
from shared.ground.manifest import all_lessons, find, previous
from shared.ground.paths import BUILD, RESULTS, ROOT, shown
from shared.services import warm
from shared.services.testrun import SUMMARY

GREEN_TARGET, RED_TARGET, TEST_TARGET = 5.0, 10.0, 90.0
# A lesson graded by mutants (23) runs the learner's suite once on their app and once per bug.
MUTANTS_GREEN_TARGET = 30.0
TEST_LOG = BUILD / "bench-make-test.log"  # what make test printed: a job that failed says why there


def make(*args: str, env: dict | None = None, log: Path | None = None) -> tuple[float, int]:
    """Wall seconds and exit code of `make ARGS`, as a learner types it; its output to LOG."""
    started = time.perf_counter()
    with log.open("w") if log else open(os.devnull, "w") as out:
        done = subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    return time.perf_counter() - started, done.returncode


def speed_probe() -> float:
    """Seconds a fixed piece of pure-Python work takes here (the best of five): a yardstick for
    comparing runs made on different days. A shared host's cores change speed with what else it
    runs (seen here: the same loop three times as long took 0.57 to 0.94 s within one hour, with
    hardly any steal time in /proc/stat), and every number in the table changes with them."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        sum(range(10_000_000))
        best = min(best, time.perf_counter() - started)
    return best


def warm_up() -> None:
    """The warm server started, and waited for: the checks below are a learner's after their first."""
    warm.start()
    deadline = time.monotonic() + 60
    while not warm.ready() and time.monotonic() < deadline:
        time.sleep(0.1)
    print("  warm server: " + ("ready" if warm.ready() else "NONE (AIC_WARM=0?): every check starts a new "
                               "interpreter"), flush=True)


def check_loop(numbers: list[str], first: bool = True) -> list[dict]:
    rows = []
    warm_up()
    with tempfile.TemporaryDirectory() as workspace:
        env = dict(os.environ, AIC_WORKSPACE=workspace)
        for number in numbers:
            lesson = find(number)
            before = previous(lesson)
            green, green_code = make("check", f"LESSON={lesson.number}", f"DIR={lesson.path}", env=env)
            row = {"lesson": lesson.number, "green_s": round(green, 1), "green_ok": green_code == 0,
                   "green_target": MUTANTS_GREEN_TARGET if lesson.grader == "mutants" else GREEN_TARGET}
            if green_code:  # keep what failed: the red run below writes the same results file
                failed = RESULTS / f"{lesson.number}-check.jsonl"
                if failed.exists():
                    shutil.copyfile(failed, RESULTS / f"{lesson.number}-check-green-failed.jsonl")
            if before:
                red, red_code = make("check", f"LESSON={lesson.number}", f"DIR={before.path}", env=env)
                row.update(red_s=round(red, 1), red_is_red=red_code != 0)
            if first:
                alone, _ = make("check", f"LESSON={lesson.number}", f"DIR={lesson.path}",
                                env=dict(env, AIC_WARM="0"))
                row["first_s"] = round(alone, 1)
            rows.append(row)
            red = f"{row['red_s']:.1f} s" if "red_s" in row else "-"
            alone = f", first check {row['first_s']:.1f} s" if "first_s" in row else ""
            print(f"  {lesson.number}: green {row['green_s']:.1f} s, red {red}{alone}", flush=True)
    return rows


def flag(seconds: float, target: float) -> str:
    return f"{seconds:5.1f}" + (" *" if seconds > target else "  ")


def table(rows: list[dict], test_wall: float | None) -> str:
    lines = ["| lesson | make check, model answer (s) | make check, previous lesson's folder (s) "
             "| make check, model answer, no warm server yet (s) |", "|---|---:|---:|---:|"]
    for row in rows:
        red = flag(row["red_s"], RED_TARGET) if "red_s" in row else "    -  "
        alone = f"{row['first_s']:5.1f}" if "first_s" in row else "    -"
        notes = ("" if row["green_ok"] else f" (model answer NOT green: build/test-results/"
                                            f"{row['lesson']}-check-green-failed.jsonl)") + \
            ("" if row.get("red_is_red", True) else " (previous folder passed)")
        green = flag(row["green_s"], row["green_target"])
        lines.append(f"| {row['lesson']} | {green} | {red} | {alone} |{notes}")
    greens = [r["green_s"] for r in rows]
    reds = [r["red_s"] for r in rows if "red_s" in r]
    firsts = [r["first_s"] for r in rows if "first_s" in r]
    lines.append(f"| max | {max(greens):5.1f} | {max(reds, default=0):5.1f} | "
                 f"{max(firsts, default=0):5.1f} |")
    lines.append(f"| median | {statistics.median(greens):5.1f} | {statistics.median(reds or [0]):5.1f} | "
                 f"{statistics.median(firsts or [0]):5.1f} |")
    mutants = f"{MUTANTS_GREEN_TARGET:.0f} s graded by mutants"
    lines.append(f"\ntargets: green <= {GREEN_TARGET:.0f} s ({mutants}), "
                 f"red <= {RED_TARGET:.0f} s (* marks a miss); "
                 f"{sum(r['green_s'] <= r['green_target'] for r in rows)} of {len(greens)} green and "
                 f"{sum(r <= RED_TARGET for r in reds)} of {len(reds)} red within target")
    if test_wall is not None:
        lines.append(f"make test whole: {test_wall:.1f} s wall (target {TEST_TARGET:.0f} s)"
                     + (" *" if test_wall > TEST_TARGET else ""))
    return "\n".join(lines)


def test_times() -> str:
    """The per-job times of the last whole make test (build/test-results/summary.json)."""
    if not SUMMARY.exists():
        return "test times: no whole `make test` has run yet"
    summary = json.loads(SUMMARY.read_text())
    cores, load = summary["cores"], f"{summary['load_before']} before / {summary['load_after']} after"
    lines = [f"make test of {summary['finished']}: {summary['wall_seconds']:.1f} s wall, {summary['jobs']} "
             f"jobs at once on {cores} cores, load {load}",
             "| job | what | tests | seconds |", "|---|---|---:|---:|"]
    for run in summary["runs"]:
        tests = run["passed"] + run["failed"]
        lines.append(f"| {run['job']} | {run['title']} | {tests} | {run['seconds']:.1f} |"
                     + ("" if run["ok"] else f" FAILED {run.get('note', '')}".rstrip()))
    return "\n".join(lines)


# --- startup: the database and make run ---------------------------------------------------

def timed(argv, **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - started


def bench_database(rounds: int) -> None:
    """Cold and warm starts of a throwaway server (its own data folder and port): the learner's
    database is never stopped or touched."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # the unprivileged server user must reach its data folder
        env = dict(os.environ, DEVDB_PORT="5499", DEVDB_DATA=str(Path(tmp) / "data"))
        tool = [sys.executable, "-m", "shared", "db"]
        cold, warm, running = [], [], []
        try:
            for _ in range(rounds):
                shutil.rmtree(Path(tmp) / "data", ignore_errors=True)
                cold.append(timed([*tool, "up"], env=env, cwd=ROOT))
                running.append(timed([*tool, "up"], env=env, cwd=ROOT))
                timed([*tool, "stop"], env=env, cwd=ROOT)
                warm.append(timed([*tool, "up"], env=env, cwd=ROOT))
                timed([*tool, "stop"], env=env, cwd=ROOT)
        finally:
            subprocess.run([*tool, "stop"], env=env, cwd=ROOT, capture_output=True)
    for name, times in (("cold", cold), ("warm", warm), ("already running", running)):
        print(f"make db, {name:<16} median {statistics.median(times):.2f} s  "
              f"(min {min(times):.2f}, max {max(times):.2f}, {rounds} runs, incl. Python start)")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total, pids = 0, [pid]
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
        print(f"make run LESSON={lesson}: first 200 from {url} after {elapsed:.2f} s; memory of everything "
              f"it started: {rss_mb(proc.pid):.0f} MB")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=15)


def startup(rounds: int) -> None:
    bench_database(rounds)
    # make run finds the database running; the apps use a throwaway database, not your aic_db
    # (variables already in the environment win over a lesson's .env).
    env = {**os.environ, **devdb.create_test_database("aic_bench")}
    try:
        bench_run("01", "http://127.0.0.1:8000/", env)
        bench_run("02", "http://127.0.0.1:8000/api/time", env)
        bench_run("10", "http://127.0.0.1:8000/docs", env)
        bench_run("15", "http://127.0.0.1:8000/api/users", env)  # after alembic upgrade head
    finally:
        devdb.drop_database("aic_bench")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lessons", default="", help="comma-separated lessons (default: all)")
    parser.add_argument("--no-test", action="store_true", help="skip the whole make test")
    parser.add_argument("--no-first", action="store_true", help="skip the checks with no warm server yet")
    parser.add_argument("--only-tests", action="store_true", help="the last make test's per-job times")
    parser.add_argument("--startup", action="store_true", help="database starts and make run too")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of database starts (--startup)")
    args = parser.parse_args(argv)
    if args.only_tests:
        print(test_times())
        return
    numbers = [n for n in args.lessons.split(",") if n] or [x.number for x in all_lessons()]
    probe_before = speed_probe()
    print(f"make check per lesson (load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, speed probe "
          f"{probe_before:.2f} s: lower is faster):", flush=True)
    rows = check_loop(numbers, first=not args.no_first)
    test_wall = None
    if not args.no_test:
        print(f"make test whole (its output: {shown(TEST_LOG)}) ...", flush=True)
        test_wall, _ = make("test", log=TEST_LOG)
    probe_after = speed_probe()
    print()
    print(table(rows, test_wall))
    print(f"speed probe (a fixed Python loop, best of 5): {probe_before:.2f} s before, "
          f"{probe_after:.2f} s after")
    if not args.no_test:
        print("\n" + test_times())
    if args.startup:
        startup(args.rounds)
    out = BUILD / "bench.json"
    data = json.loads(out.read_text()) if out.exists() else {}
    data["check_loop"] = {"measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": os.cpu_count(),
                          "rows": rows, "make_test_wall_s": test_wall and round(test_wall, 1),
                          "speed_probe_s": {"before": round(probe_before, 3), "after": round(probe_after, 3)}}
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
