"""Exercise mode: do a lesson yourself in workspace/NN-slug/ and let the lesson's tests grade it.

    python shared/exercise.py start 07        copy lesson 06's snapshot to workspace/07-.../
    python shared/exercise.py check 07        grade that folder: one line per requirement
    python shared/exercise.py solution 07     your folder against the model answer (a diff)
    python shared/exercise.py progress        which lessons you have passed
    python shared/exercise.py run 07          serve your folder as `make run` serves a lesson
    python shared/exercise.py requirements 07 the requirement lines of a lesson (from its tests)

The requirement lines come from the lesson's test file: a test's docstring (its first line)
when it has one, else its name made into a sentence (test_unknown_id_is_404 -> "Unknown id is
404"). The checklist, `make test PREVIOUS=1` and the course site all print these same lines.
A line "Hint: ..." in a test's docstring is shown when that test is the first to fail.
"""

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from lessons import MANIFEST, ROOT, Lesson, UnknownLesson, all_lessons, find, previous

WORKSPACE = Path(os.environ.get("AIC_WORKSPACE") or ROOT / "workspace")
PROGRESS = WORKSPACE / ".progress.json"
RESULTS = ROOT / "build" / "test-results"
OK, NO = "\u2714", "\u2718"
CHECK_TIMEOUT = 300  # seconds: a lesson's tests take about 10


def shown(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def manifest_entry(lesson: Lesson) -> dict:
    with MANIFEST.open("rb") as f:
        return next(e for e in tomllib.load(f)["lesson"] if e["number"] == lesson.number)


def workspace_folder(lesson: Lesson) -> Path:
    return WORKSPACE / lesson.folder


# --- requirements: the lesson's tests, in plain words ---------------------------------------

@dataclass
class Requirement:
    test: str      # the test function's name
    text: str      # the line a learner reads
    hint: str      # from a "Hint:" line of the docstring, or ""
    line: int      # where the test starts in its file


# Words a test name can only spell in lower case.
SPELLING = {"api": "API", "openapi": "OpenAPI", "json": "JSON", "html": "HTML", "url": "URL",
            "cors": "CORS", "sql": "SQL", "utf8": "UTF-8", "jwt": "JWT", "hs256": "HS256", "orm": "ORM",
            "ui": "UI", "http": "HTTP", "sse": "SSE", "llm": "LLM", "ascii": "ASCII", "nul": "NUL",
            "crud": "CRUD", "js": "JS", "iso": "ISO", "uvicorn": "uvicorn", "swagger": "Swagger",
            "postgres": "Postgres", "bcrypt": "bcrypt", "alembic": "Alembic", "sqlalchemy": "SQLAlchemy"}


def sentence(name: str) -> str:
    words = [SPELLING.get(word, word) for word in name.removeprefix("test_").split("_") if word]
    text = " ".join(words).replace("dot env", ".env")
    return text[:1].upper() + text[1:]


def requirements(lesson: Lesson) -> list[Requirement]:
    """One line per test function, in the order of the test file."""
    if not lesson.test_file.is_file():
        return []
    tree = ast.parse(lesson.test_file.read_text())
    # Test functions, and the test methods of Test* classes, in the order of the file.
    nodes = [n for top in tree.body
             for n in (top.body if isinstance(top, ast.ClassDef) and top.name.startswith("Test") else [top])]
    found = []
    for node in nodes:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            doc = ast.get_docstring(node) or ""
            lines = [x.strip() for x in doc.splitlines()]
            hint = " ".join(x.removeprefix("Hint:").strip() for x in lines if x.startswith("Hint:"))
            first = lines[0] if lines and not lines[0].startswith("Hint:") else ""
            text = first or sentence(node.name)
            found.append(Requirement(node.name, text.rstrip("."), hint, node.lineno))
    return found


def results_from_junit(junit: Path) -> dict[str, list[tuple[str, str]]]:
    """{test function: [(outcome, failure text), ...]}, one entry per case (parameters)."""
    outcomes: dict[str, list[tuple[str, str]]] = {}
    if not junit.exists():
        return outcomes
    for case in ET.parse(junit).getroot().iter("testcase"):
        function = case.get("name", "").split("[", 1)[0]
        bad = [c for c in case if c.tag in ("failure", "error")]
        skipped = [c for c in case if c.tag == "skipped"]
        if bad:
            text = "\n".join((c.get("message") or "") + "\n" + (c.text or "") for c in bad)
            outcomes.setdefault(function, []).append(("failed", text))
        elif skipped:
            outcomes.setdefault(function, []).append(("skipped", skipped[0].get("message") or ""))
        else:
            outcomes.setdefault(function, []).append(("passed", ""))
    return outcomes


def failing_requirements(lesson: Lesson, junit: Path) -> list[str]:
    """The requirement lines whose tests failed in a junit file (for `make test PREVIOUS=1`)."""
    outcomes = results_from_junit(junit)
    return [r.text for r in requirements(lesson)
            if any(o == "failed" for o, _ in outcomes.get(r.test, []))]


def unsolved_reason(lesson: Lesson) -> str:
    """Why a lesson's tests may all pass on the lesson before it (lessons.toml's
    skip_check_unsolved), or "" when they must not."""
    return manifest_entry(lesson).get("skip_check_unsolved", "")


# --- folder checks ------------------------------------------------------------------------

def folder_problem(lesson: Lesson, folder: Path) -> str | None:
    """One line saying why `folder` cannot be graded as lesson `lesson`, or None."""
    folder = Path(folder)
    if not folder.exists():
        return f"no folder {shown(folder)}"
    if not folder.is_dir():
        return f"{shown(folder)} is a file, not a folder"
    # The file that holds the app (lessons.toml's `app`: main.py, or app/main.py from 22 on).
    key = lesson.app_file if (lesson.path / lesson.app_file).is_file() else "index.html"
    if not (folder / key).is_file():
        found = ", ".join(sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))[:6])
        return (f"{shown(folder)} has no {key}: nothing to grade as lesson {lesson.number} "
                f"(it holds: {found or 'nothing'})")
    return None


def resolve_folder(lesson: Lesson, given: str) -> Path:
    folder = Path(given).expanduser() if given else workspace_folder(lesson)
    problem = folder_problem(lesson, folder)
    if problem:
        if not given and not folder.exists():
            problem += f": make start LESSON={lesson.number} creates it"
        elif not given:
            problem += f"; the task is at the top of lessons/{lesson.folder}/README.md"
        fail(problem)
    return folder.resolve()


def fail(message: str, code: int = 2) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


# --- start --------------------------------------------------------------------------------

def task_text(lesson: Lesson) -> str:
    """The README's "Your task" section, without its heading."""
    text = (lesson.path / "README.md").read_text() if (lesson.path / "README.md").is_file() else ""
    match = re.search(r"^## Your task\s*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match[1].strip() if match else ""


def cmd_start(args) -> None:
    from course import lesson_files

    lesson = find(args.lesson)
    before = previous(lesson)
    target = workspace_folder(lesson)
    if target.exists() and any(target.iterdir()) and not args.force:
        fail(f"{shown(target)} already exists and holds your work: keep going, or start over "
             f"with make start LESSON={lesson.number} FORCE=1 (deletes it)")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    copied = []
    if before:
        for rel in lesson_files(before.path):
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(before.path / rel, target / rel)
            copied.append(rel)
    origin = f"a copy of lesson {before.number} ({before.folder})" if before else "an empty folder"
    print(f"Lesson {lesson.number}: {lesson.title}")
    print(f"Your folder: {shown(target)}, {origin}, {len(copied)} files.\n")
    task = task_text(lesson)
    print(task or f"(lesson {lesson.number}'s README has no \"Your task\" section yet: "
          f"the goal is {lesson.summary})")
    count = len(requirements(lesson))
    print(f"\nThe full lesson text: lessons/{lesson.folder}/README.md (the model answer follows the task)."
          f"\nNext:\n"
          f"  make run LESSON={lesson.number} MINE=1    run your folder\n"
          f"  make check LESSON={lesson.number}         which of its {count} requirements you meet\n"
          f"  make solution LESSON={lesson.number}      when stuck: your folder against the model answer")


# --- check --------------------------------------------------------------------------------

def failure_details(text: str, folder: Path | None = None) -> tuple[str, str, str, str]:
    """(the failing statement, expected, actual, the error's last words) from pytest's report."""
    statement = next((line[1:].strip() for line in text.splitlines() if line.startswith(">")), "")
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    expected = actual = ""
    for line in errors:
        match = re.match(r"(?:AssertionError: )?assert (.+?) == (.+)$", line)
        if match:
            actual, expected = match[1], match[2]
            break
    if not expected:
        # An assert in a helper that pytest does not rewrite shows no "assert 201 == 422" line:
        # the expected status is in the statement, the actual one in the response shown.
        inner = [line[1:].strip() for line in text.splitlines() if line.startswith(">")]
        wanted = next((m[1] for line in inner[::-1] if (m := re.search(r"status_code == (\d{3})", line))), "")
        got = re.search(r"<Response \[(\d{3})", text)
        if wanted and got:
            expected, actual = wanted, got[1]
    head = text.strip().splitlines()[0] if text.strip() else ""
    # An exception (ImportError, SyntaxError, ...) says more than the lines pytest shows above it.
    raised = [line for line in errors if re.match(r"[\w.]*(Error|Exception)\b", line)
              and not line.startswith("AssertionError")]
    message = raised[0] if raised else errors[0] if errors else head
    # Where in the learner's own code: a syntax error names its file; a traceback lists frames
    # as path:line: (the last one in the graded folder is where it went wrong).
    where = [(m[1], m[2]) for m in re.finditer(r'File "([^"]+)", line (\d+)', text)]
    where += [(m[1], m[2]) for m in re.finditer(r"(?m)^(\S+\.py):(\d+): ", text)]
    own = [(f, n) for f, n in where if folder and Path(f).resolve().is_relative_to(folder)]
    if raised and own:
        message += f" ({Path(own[-1][0]).name}, line {own[-1][1]})"
    if "import_module" in statement:
        statement = "import main (your main.py)"
    return statement, expected, actual, message


def hint_for(lesson: Lesson, folder: Path, statement: str, expected: str, actual: str, message: str) -> str:
    number = lesson.number
    missing = re.search(r"No module named '([\w.]+)'", message)
    if missing and missing[1] in ("main", "database", "models", "schemas", "deps", "auth"):
        return f"Python found no {missing[1]}.py in {shown(folder)}: is the file there, with that name?"
    if missing:
        return (f"your code imports {missing[1]}, which is not installed: check the spelling, or add it "
                "to requirements.txt")
    if "SyntaxError" in message or "IndentationError" in message:
        return "fix the syntax error at the line named above (Python stops reading the file there)"
    table = re.search(r'relation "(\w+)" does not exist', message)
    if table:
        return f"there is no table {table[1]}: your app must create it when it starts (see the task)"
    column = re.search(r'column "?([\w.]+)"? does not exist', message)
    if column:
        return f"the table has no column {column[1]}: add it to the table your app creates"
    if "could not connect" in message or "Connection refused" in message:
        return "the database does not answer: start it with make db"
    undefined = re.search(r"NameError: name '(\w+)' is not defined", message)
    if undefined:
        return (f"your code still uses {undefined[1]}, which is gone (or misspelled): "
                "replace that use, at the line named above")
    if "ImportError" in message or "AttributeError" in message:
        return "a name the tests use is missing from your code: compare the spelling with the task"
    if re.fullmatch(r"\d{3}", actual or "") and re.fullmatch(r"\d{3}", expected or ""):
        got, want = int(actual), int(expected)
        if got == 404 and want != 404:
            return "nothing answers at that path with that method: add the route (@app.post(\"/api/...\"))"
        if got == 405:
            return "the path exists, but not for this method: add a route with its decorator (@app.put, ...)"
        if got == 500:
            return (f"your code raised an error while answering: run make run LESSON={number} MINE=1, "
                    "repeat the request in /docs and read the traceback in that terminal")
        if want == 422:
            return "bad input was accepted: a rule is missing from your model (Field(...), Literal[...])"
        if got == 422:
            return "FastAPI refused input the task calls valid: compare your model's rules with the task"
        if want == 201 and got == 200:
            return "right answer, wrong status: give the decorator status_code=201"
        if want == 404:
            return "an unknown id must answer 404: raise HTTPException(status_code=404, detail=...)"
        return f"the answer's status should be {want}: see the task and the test named above"
    return "read the test named above: it shows exactly what is sent and what must come back"


def run_tests(lesson: Lesson, folder: Path, tag: str) -> tuple[Path, subprocess.CompletedProcess, float]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    # One file per run (two checks at once must not read each other's); kept for a look later.
    junit = RESULTS / f"{lesson.number}-{tag}-{os.getpid()}.xml"
    if "db" in lesson.needs:
        subprocess.run([sys.executable, str(ROOT / "shared" / "devdb.py"), "up"], check=True,
                       stdout=subprocess.DEVNULL)
    env = dict(os.environ, LESSON=lesson.number, LESSON_DIR=str(folder))
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", str(lesson.test_file),
                               f"--junitxml={junit}", "-q", "-p", "no:cacheprovider"], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=False, timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        fail(f"the tests of lesson {lesson.number} ran for {CHECK_TIMEOUT} s without finishing: does your "
             "app hang somewhere (a loop, a request that never returns)?", code=1)
    return junit, proc, time.monotonic() - started


def checklist(lesson: Lesson, folder: Path, junit: Path) -> tuple[list[str], int, int]:
    """(lines to print, requirements met, requirements in all)."""
    outcomes = results_from_junit(junit)
    lines, met, first_failure = [], 0, None
    reqs = requirements(lesson)
    for req in reqs:
        runs = outcomes.get(req.test, [])
        failed = [text for outcome, text in runs if outcome == "failed"]
        if runs and all(outcome == "skipped" for outcome, _ in runs):
            lines.append(f"  - {req.text} (not checked here: {runs[0][1]})")
            continue
        if runs and not failed:
            met += 1
            lines.append(f"  {OK} {req.text}")
            continue
        lines.append(f"  {NO} {req.text}")
        if first_failure is None:
            first_failure = req
            text = failed[0] if failed else "the test did not run"
            statement, expected, actual, message = failure_details(text, folder)
            where = f"tests/{lesson.test_file.name}::{req.test} (line {req.line})"
            detail = [f"      test:     {where}"]
            if statement:
                detail.append(f"      checks:   {statement}")
            if expected:
                detail += [f"      expected: {expected}", f"      got:      {actual}"]
                if message and not re.match(r"(AssertionError: )?assert ", message):
                    detail.append(f"      answer:   {message.removeprefix('AssertionError: ')[:300]}")
            elif message:
                detail.append(f"      error:    {message[:300]}")
            hint = req.hint or hint_for(lesson, folder, statement, expected, actual, message)
            detail.append(f"      hint:     {hint}")
            lines += detail
    return lines, met, len(reqs)


def record(lesson: Lesson, folder: Path, met: int, total: int) -> None:
    WORKSPACE.mkdir(parents=True, exist_ok=True)
    progress = json.loads(PROGRESS.read_text()) if PROGRESS.exists() else {}
    entry = progress.get(lesson.number, {})
    entry.update(folder=shown(folder), met=met, total=total, last=time.strftime("%Y-%m-%d %H:%M"))
    if met == total and total:
        entry["passed"] = entry["last"]
    progress[lesson.number] = entry
    PROGRESS.write_text(json.dumps(progress, indent=2, sort_keys=True) + "\n")


def cmd_check(args) -> None:
    lesson = find(args.lesson)
    folder = resolve_folder(lesson, args.dir)
    print(f"Grading {shown(folder)} with lesson {lesson.number}'s tests ({lesson.title})...", flush=True)
    junit, proc, seconds = run_tests(lesson, folder, "check")
    if os.environ.get("VERBOSE"):
        print(proc.stdout + proc.stderr)
    lines, met, total = checklist(lesson, folder, junit)
    ran = bool(results_from_junit(junit))
    if junit.exists():
        junit.replace(RESULTS / f"{lesson.number}-check.xml")
    if not ran:
        print((proc.stdout + proc.stderr)[-3000:])
        fail(f"the tests of lesson {lesson.number} did not run (see above)", code=1)
    print("\n".join(lines))
    record(lesson, folder, met, total)
    print(f"\n{met} of {total} requirements met in {seconds:.1f} s ({shown(folder)}).")
    if met == total:
        after = [x for x in all_lessons() if x.number > lesson.number]
        print(f"Lesson {lesson.number} done."
              + (f" Next: make start LESSON={after[0].number}" if after else ""))
        return
    print(f"Fix the first {NO}, then run make check LESSON={lesson.number} again"
          + ("" if os.environ.get("VERBOSE") else " (VERBOSE=1 shows pytest's full report)") + ".")
    sys.exit(1)


# --- solution, progress, run --------------------------------------------------------------

def learner_files(folder: Path) -> list[Path]:
    """The files of a learner's folder (git ignores workspace/), without caches, secrets and
    README.md, as lesson_files() leaves them out of a lesson."""
    from course import IGNORED

    return sorted(p.relative_to(folder) for p in folder.rglob("*")
                  if p.is_file() and p.suffix != ".pyc" and not IGNORED & set(p.relative_to(folder).parts))


def cmd_solution(args) -> None:
    from course import lesson_files

    lesson = find(args.lesson)
    folder = resolve_folder(lesson, args.dir)
    with tempfile.TemporaryDirectory() as tmp:
        for name, source, files in (("yours", folder, learner_files(folder)),
                                    ("model-answer", lesson.path, lesson_files(lesson.path))):
            Path(tmp, name).mkdir()
            for rel in files:
                Path(tmp, name, rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / rel, Path(tmp, name, rel))
        print(f"# {shown(folder)} (yours) -> lessons/{lesson.folder} (the model answer)", flush=True)
        result = subprocess.run(["git", "--no-pager", "diff", "--no-index", "--stat", "--patch",
                                 "--no-prefix",
                                 f"--color={'always' if sys.stdout.isatty() else 'never'}",
                                 "yours", "model-answer"], cwd=tmp, check=False)
    if result.returncode == 0:
        print("Your folder has the same files as the model answer.")


def cmd_progress(_args) -> None:
    progress = json.loads(PROGRESS.read_text()) if PROGRESS.exists() else {}
    print(f"Your progress ({shown(PROGRESS)}):")
    for lesson in all_lessons():
        entry = progress.get(lesson.number)
        if entry and entry.get("passed"):
            state = f"{OK} passed {entry['passed']}"
        elif entry:
            state = f"{NO} {entry['met']} of {entry['total']} requirements at the last check, {entry['last']}"
        elif workspace_folder(lesson).exists():
            state = "  started, not checked yet"
        else:
            state = "  -"
        print(f"  {lesson.number}  {lesson.title:<36} {state}")
    passed = sum(1 for e in progress.values() if e.get("passed"))
    print(f"{passed} of {len(all_lessons())} lessons passed.")


def cmd_run(args) -> None:
    from course import run_folder

    lesson = find(args.lesson)
    run_folder(lesson, resolve_folder(lesson, args.dir))


def cmd_requirements(args) -> None:
    for req in requirements(find(args.lesson)):
        print(req.text)


def cmd_folder(args) -> None:
    """Exit 2 with one line when DIR cannot be graded as the lesson (make test DIR=...)."""
    problem = folder_problem(find(args.lesson), Path(args.dir))
    if problem:
        fail(problem)


def main() -> None:
    parser = argparse.ArgumentParser(prog="exercise", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("start", cmd_start), ("check", cmd_check), ("solution", cmd_solution),
                       ("run", cmd_run), ("requirements", cmd_requirements), ("folder", cmd_folder)):
        p = sub.add_parser(name)
        p.add_argument("lesson", nargs="?", default="")
        p.add_argument("--dir", default="")
        p.add_argument("--force", action="store_true")
        p.set_defaults(func=func, command=name)
    sub.add_parser("progress").set_defaults(func=cmd_progress, command="progress")
    args = parser.parse_args()
    if args.command != "progress" and not args.lesson.strip():
        fail(f"which lesson? e.g. make {args.command} LESSON=07")
    try:
        args.func(args)
    except UnknownLesson as error:
        fail(str(error))


if __name__ == "__main__":
    main()
