"""Runs the lessons' tests: each lesson in its own pytest process, several at once.

    python shared/testrun.py            every lesson
    python shared/testrun.py 09         one lesson
    python shared/testrun.py course     one of the checks beside the lessons (course, site,
                                        exercise, coach, fuzz), as CI runs them one per job
    python shared/testrun.py 09 --dir ~/my-coach    lesson 09's tests against another folder
    python shared/testrun.py --against-previous      each lesson's tests against the lesson
                                                     before it: how many fail there (a lesson's
                                                     tests should need that lesson's code)

Lessons share module names (main, models, ...), so each runs in a fresh interpreter with its
own folder as the import root (the LESSON_DIR variable tells tests/conftest.py which folder).
Ends with one line per lesson and a total line; exits non-zero when anything failed.
A run of every lesson also leaves its times in build/test-results/summary.json (make bench
prints them).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lessons import ROOT, Lesson, UnknownLesson, all_lessons, find, previous

RESULTS = ROOT / "build" / "test-results"
PYTEST_NO_TESTS = 5


# The checks that are not one lesson's run as jobs of their own beside the lessons, one job per
# test file, so that the two cores share them out: the repo (test_course.py), the course site,
# exercise mode, the offline coach, and Schemathesis against a few running lessons.
CHECKS = {Lesson(name, title, "", "", ()): ROOT / "tests" / f"test_{name}.py" for name, title in [
    ("course", "repo checks"), ("site", "course site"), ("exercise", "exercise mode"),
    ("coach", "offline coach"), ("fuzz", "schemathesis on 07 10 15")]}


def run_one(lesson, folder: Path, tag: str = "") -> dict:
    is_lesson = lesson not in CHECKS
    # pytest writes its report under a name of this run's own (another `make test` of the same
    # lesson may be running); it replaces build/test-results/NN.xml once pytest is done.
    kept = RESULTS / f"{lesson.number}{tag}.xml"
    junit = RESULTS / f".{lesson.number}{tag}.{os.getpid()}.xml"
    junit.unlink(missing_ok=True)
    env = dict(os.environ, LESSON=lesson.number, LESSON_DIR=str(folder)) if is_lesson else dict(os.environ)
    if tag:  # e.g. the lesson's tests on the previous lesson: a test database of their own
        env["TEST_DB_SUFFIX"] = tag.replace("-", "_")
    test_files = [lesson.test_file] if is_lesson else [CHECKS[lesson]]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *map(str, test_files), f"--junitxml={junit}", "-q"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
    )
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    if junit.exists():
        junit = junit.replace(kept)
        # Count tests, not reports: a test that fails and then errors in teardown is one failure.
        outcomes: dict[tuple, set] = {}
        for case in ET.parse(junit).getroot().iter("testcase"):
            key = (case.get("classname"), case.get("name"))
            outcomes.setdefault(key, set()).update(child.tag for child in case)
        for tags in outcomes.values():
            failed, skipped = tags & {"failure", "error"}, "skipped" in tags
            counts["failed" if failed else "skipped" if skipped else "passed"] += 1
    ok = proc.returncode == 0
    note = ""
    if not ok and not counts["failed"]:
        # No test failed, yet pytest did: it ran no test at all (exit 5), or it could not
        # collect or import them. Either way the lesson is not green: count it as one failure.
        counts["failed"] = 1
        note = "no tests ran" if proc.returncode == PYTEST_NO_TESTS else f"pytest exited {proc.returncode}"
    return {"lesson": lesson, "ok": ok, "seconds": time.monotonic() - started,
            "output": proc.stdout, "note": note, **counts}


def last_seconds(job) -> float | None:
    """How long the job's tests took in the last run (its junit report), None if never run."""
    try:
        return float(next(ET.parse(RESULTS / f"{job.number}.xml").getroot().iter("testsuite")).get("time"))
    except (OSError, ET.ParseError, StopIteration, TypeError, ValueError):
        return None


def longest_first(jobs: list) -> list:
    """The order to start jobs in so that no long one is left for the end: by the time each took
    last run, longest first; jobs never run yet (new lessons) go first, later lessons before
    earlier ones (their suites are the longer)."""
    order = {job.number: i for i, job in enumerate(jobs)}
    return sorted(jobs, key=lambda job: (last_seconds(job) or float("inf"), order[job.number]), reverse=True)


def start_database(lessons) -> None:
    """Start the dev database once, before the parallel runs race to do it."""
    if any("db" in lesson.needs for lesson in lessons):
        up = subprocess.run([sys.executable, str(ROOT / "shared" / "devdb.py"), "up"], check=False)
        if up.returncode:
            sys.exit("the test database could not be started (see above)")
    RESULTS.mkdir(parents=True, exist_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("lesson", nargs="?", default="")
    parser.add_argument("--dir", default="", help="folder to test instead of the lesson's own")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--against-previous", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--list-checks", action="store_true", help="the checks' names, as JSON (for CI)")
    args = parser.parse_args()
    if args.list_checks:
        print(json.dumps([check.number for check in CHECKS]))
        return
    check = next((check for check in CHECKS if check.number == args.lesson), None)
    try:
        lessons = [find(args.lesson)] if args.lesson and not check else all_lessons()
    except UnknownLesson as error:
        sys.exit(str(error))
    if args.against_previous:
        against_previous(lessons, args.jobs)
        return
    if args.dir and len(lessons) != 1:
        sys.exit("--dir grades one folder: name the lesson whose tests to use (LESSON=NN)")
    if args.dir:
        from exercise import folder_problem

        problem = folder_problem(lessons[0], Path(args.dir))
        if problem:
            sys.exit(problem)
    folder_for = {x.number: Path(args.dir).resolve() if args.dir else x.path for x in lessons}
    jobs = [check] if check else longest_first(lessons if args.lesson else [*CHECKS, *lessons])

    start_database(lessons)

    started, load_before = time.monotonic(), os.getloadavg()[0]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda x: run_one(x, folder_for.get(x.number, ROOT)), jobs))
    results.sort(key=lambda r: r["lesson"].number)
    if not args.lesson:
        write_summary(results, time.monotonic() - started, args.jobs, load_before)

    for r in results:
        if not r["ok"]:
            print(f"\n===== {r['lesson'].number} {r['lesson'].folder} =====")
            print(r["output"].rstrip())
    print()
    for r in results:
        status = "ok  " if r["ok"] else "FAIL"
        print(f"{status} {r['lesson'].number} {r['lesson'].folder:<28} "
              f"{r['passed']:3d} passed {r['failed']:2d} failed {r['skipped']:2d} skipped "
              f"{r['seconds']:5.1f} s  {r['note']}".rstrip())
    totals = {k: sum(r[k] for r in results) for k in ("passed", "failed", "skipped")}
    wall = time.monotonic() - started
    failed_lessons = [r["lesson"].number for r in results if not r["ok"]]
    print(f"test runs: {len(results) - len(failed_lessons)} of {len(results)} green in {wall:.1f} s"
          + (f" (failing: {' '.join(failed_lessons)})" if failed_lessons else ""))
    print(f"total: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    sys.exit(1 if failed_lessons else 0)


def write_summary(results, wall: float, jobs: int, load_before: float) -> None:
    """The run's times, for make bench: per job its seconds and counts, the wall time, and how
    busy the machine was (timings taken beside other work are longer)."""
    summary = {
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_seconds": round(wall, 1), "jobs": jobs,
        "cores": os.cpu_count(), "load_before": round(load_before, 1),
        "load_after": round(os.getloadavg()[0], 1),
        "runs": [{"job": r["lesson"].number, "title": r["lesson"].folder, "ok": r["ok"],
                  "seconds": round(r["seconds"], 1), "passed": r["passed"], "failed": r["failed"],
                  "skipped": r["skipped"]} for r in results],
    }
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def against_previous(lessons, jobs: int) -> None:
    """Report, per lesson, how many of its tests fail on the previous lesson's code."""
    pairs = [(lesson, previous(lesson)) for lesson in lessons if previous(lesson)]
    start_database(lessons)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda pair: run_one(pair[0], pair[1].path, tag="-on-previous"), pairs[::-1]))
    from exercise import failing_requirements, unsolved_reason

    unexplained = []
    for (lesson, before), r in zip(pairs, results[::-1], strict=True):
        total = r["passed"] + r["failed"]
        print(f"{lesson.number}: {r['failed']:3d} of {total:3d} tests fail on {before.folder}")
        # What the step must add, in the words of the checklist (make check) and the site.
        for line in failing_requirements(lesson, RESULTS / f"{lesson.number}-on-previous.xml"):
            print(f"      - {line}")
        if not r["failed"]:
            reason = unsolved_reason(lesson)
            print(f"      (every test passes before the lesson: {reason})" if reason else
                  "      every test already passes on the lesson before: the tests do not check "
                  "what this step adds (or say why in lessons.toml: skip_check_unsolved = \"...\")")
            unexplained += [] if reason else [lesson.number]
    if unexplained:
        sys.exit(f"lessons whose tests need nothing of their own step: {' '.join(unexplained)}")


if __name__ == "__main__":
    main()
