"""The learner's command line: run, diff, start, check, watch, solution, progress (help is in front.py).

    python -m shared run 09 [--dir FOLDER]    a lesson (or your folder) with all it needs
    python -m shared diff --lesson 09         what lesson 09 changed (or --from 05 --to 09)
    python -m shared start 07                 copy lesson 06's snapshot to workspace/07-.../
    python -m shared check 07                 grade that folder: one line per requirement
    python -m shared watch 07                 check it again each time a file in it changes
    python -m shared solution 07              your folder against the model answer (a diff)
    python -m shared progress                 which lessons you have passed
"""

import argparse
import json
import os
import queue
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from watchfiles import Change, DefaultFilter, watch

from shared.cli.front import Stop
from shared.ground import devdb
from shared.ground.files import (
    copy_files,
    diff_header,
    folder_problem,
    git_diff,
    is_kept,
    learner_files,
    lesson_diff,
    lesson_files,
    task_text,
)
from shared.ground.manifest import Lesson, UnknownLesson, all_lessons, find, following, previous
from shared.ground.paths import ROOT, shown
from shared.ground.requirements import checklist_requirements
from shared.services.grading import NO, OK, checklist, grade

WORKSPACE = Path(os.environ.get("AIC_WORKSPACE") or ROOT / "workspace")
PROGRESS = WORKSPACE / ".progress.json"



def workspace_folder(lesson: Lesson) -> Path:
    return WORKSPACE / lesson.folder


def resolve_folder(lesson: Lesson, given: str) -> Path:
    """The folder to grade or run: DIR= when given, else the lesson's workspace folder."""
    folder = Path(given).expanduser() if given else workspace_folder(lesson)
    problem = folder_problem(lesson, folder)
    if problem:
        if not given and not folder.exists():
            problem += f": make start LESSON={lesson.number} creates it"
        elif not given:
            problem += f"; the task is at the top of lessons/{lesson.folder}/README.md"
        raise Stop(problem, code=Stop.BAD_ARGUMENT)
    return folder.resolve()


# --- run, diff ------------------------------------------------------------------------------

def cmd_run(args) -> None:
    # Imported here, not at the top: make run brings Alembic and SQLAlchemy (0.3 s of imports),
    # which start, check, solution, progress and diff never use; make check stays that much faster.
    from shared.services.run import CannotRun, run_folder

    lesson = find(args.lesson)
    folder = resolve_folder(lesson, args.dir) if args.mine or args.dir else lesson.path
    try:
        run_folder(lesson, folder)
    except CannotRun as error:
        raise Stop(str(error), code=Stop.RED) from None


def cmd_diff(args) -> None:
    if args.from_ and args.to:
        old, new = find(args.from_), find(args.to)
    else:
        new = find(args.lesson)
        old = previous(new) or new
    print(diff_header(old, new), flush=True)
    if lesson_diff(old, new, color=sys.stdout.isatty()) > 1:
        raise Stop("git diff failed", code=Stop.RED)


# --- start ----------------------------------------------------------------------------------

def cmd_start(args) -> None:
    lesson = find(args.lesson)
    before = previous(lesson)
    target = workspace_folder(lesson)
    if target.exists() and any(target.iterdir()) and not args.force:
        raise Stop(f"{shown(target)} already exists and holds your work: keep going, or start over "
                   f"with make start LESSON={lesson.number} FORCE=1 (deletes it)", code=Stop.BAD_ARGUMENT)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    copied = lesson_files(before.path) if before else []
    if before:
        copy_files(before.path, copied, target)
    # Every lesson starts from the model answer before it, never from the learner's own folder of
    # that lesson: the task, the checklist and `make diff` all describe the step from that code.
    origin = (f"a copy of lesson {before.number}'s model answer (lessons/{before.folder}/, not your "
              f"own {shown(workspace_folder(before))}/: each lesson starts from the same code, the code its "
              "task and make diff describe)" if before else "an empty folder")
    print(f"Lesson {lesson.number}: {lesson.title}")
    print(f"Your folder: {shown(target)}, {origin}; {len(copied)} files.\n")
    print(task_text(lesson) or f"(lesson {lesson.number}'s README has no \"Your task\" section yet: "
          f"the goal is {lesson.summary})")
    count = len(checklist_requirements(lesson))
    print(f"\nThe full lesson text: lessons/{lesson.folder}/README.md (the model answer follows the task)."
          f"\nNext:\n"
          f"  make run LESSON={lesson.number} MINE=1    run your folder\n"
          f"  make check LESSON={lesson.number}         which of its {count} requirements you meet\n"
          f"  make watch LESSON={lesson.number}         the same check again each time you save a file\n"
          f"  make solution LESSON={lesson.number}      when stuck: your folder against the model answer")


# --- check ----------------------------------------------------------------------------------

def record(lesson: Lesson, folder: Path, met: int, total: int) -> None:
    WORKSPACE.mkdir(parents=True, exist_ok=True)
    progress = json.loads(PROGRESS.read_text()) if PROGRESS.exists() else {}
    entry = progress.get(lesson.number, {})
    entry.update(folder=shown(folder), met=met, total=total, last=time.strftime("%Y-%m-%d %H:%M"))
    if met == total and total:
        entry["passed"] = entry["last"]
    progress[lesson.number] = entry
    PROGRESS.write_text(json.dumps(progress, indent=2, sort_keys=True) + "\n")


def check_once(lesson: Lesson, folder: Path, watching: bool = False) -> bool:
    """Grades the folder and prints the checklist (or why the tests could not run, on stderr);
    records the progress. True when every requirement is met. `watching`: make watch's check
    (its last line says what to do next there)."""
    graded_by = (f"lesson {lesson.number}'s tests" if lesson.grader != "mutants"
                 else "your own tests, on your app and on bugs planted in the model answer's")
    print(f"Grading {shown(folder)} with {graded_by} ({lesson.title})...", flush=True)
    if "db" in lesson.needs:
        devdb.ensure_running()
    result = grade(lesson, folder)
    verbose = bool(os.environ.get("VERBOSE"))
    if verbose and result.run:
        print(result.run.output)
    if result.problem:
        print(result.problem, file=sys.stderr, flush=True)
        return False
    print("\n".join(checklist(result)))
    if result.notes:
        print("\n" + "\n".join(result.notes))
    total = len(result.results)
    record(lesson, folder, result.met, total)
    held = sum(1 for r in result.results if r.state == "held")
    waiting = f" ({held} not checked yet)" if held else ""
    print(f"\n{result.met} of {total} requirements met{waiting} in {result.seconds:.1f} s ({shown(folder)}).")
    again = "save: the check runs again" if watching else f"run make check LESSON={lesson.number} again"
    if result.met == total:
        after = following(lesson)
        print(f"Lesson {lesson.number} done." + (f" Next: make start LESSON={after.number}" if after else ""),
              flush=True)
        return True
    if lesson.grader == "mutants":  # the bugs are independent: each miss is a test still to write
        print(f"Each {NO} \"Your tests catch\" is a bug your tests do not catch yet: write a test that "
              f"fails on it, then {again}.", flush=True)
    else:
        print(f"Fix the first {NO}, then {again}"
              + ("" if verbose else " (VERBOSE=1 shows pytest's full report)") + ".", flush=True)
    return False


def cmd_check(args) -> None:
    lesson = find(args.lesson)
    folder = resolve_folder(lesson, args.dir)
    # Ctrl-C, or a SIGTERM (a kill): the check's pytest stops, and the servers its tests started
    # with it, even when whatever started the check had SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        met = check_once(lesson, folder)
    except KeyboardInterrupt:
        raise Stop("\nStopped: the check did not finish.", code=Stop.INTERRUPTED) from None
    if not met:
        raise Stop("", code=Stop.RED)


def changes_to(folder: Path) -> queue.Queue[set[str] | Exception]:
    """A queue that gets, from now on, the names of the folder's own files (is_kept) each time
    some change: by watchfiles (uvicorn --reload's watcher: the operating system's change
    notifications; changes close together, such as an editor's save-all, come as one set), in
    a thread of its own, so that nothing saved while a check runs is missed. Where the system
    gives no notifications (none left: inotify's limit of instances), watchfiles looks at the
    files every 0.3 s instead; if that fails too, the queue gets the error."""
    saves: queue.Queue[set[str] | Exception] = queue.Queue()
    editors = DefaultFilter()  # an editor's swap and backup files (.swp, ~), caches, .git

    def ours(change: Change, path: str) -> bool:
        return editors(change, path) and is_kept(Path(path).relative_to(folder))

    def watching() -> None:
        # Ctrl-C is the main thread's, which waits on the queue: a SIGINT this thread (or the
        # watcher's own thread, which inherits the mask) took would never wake it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        for polling in (False, True):
            try:
                for changes in watch(folder, watch_filter=ours, raise_interrupt=False, force_polling=polling,
                                     poll_delay_ms=300):
                    # A file added and gone again in one set: an editor's (or sed -i's) temporary copy.
                    added = {path for change, path in changes if change == Change.added}
                    names = {Path(path).relative_to(folder).as_posix() for _, path in changes
                             if not (path in added and not Path(path).exists())}
                    if names:
                        saves.put(names)
            except Exception as error:  # whatever stopped the watcher: the learner reads it
                if polling:
                    saves.put(error)

    threading.Thread(target=watching, daemon=True).start()
    return saves


def next_saves(saves: queue.Queue[set[str] | Exception], folder: Path) -> list[str]:
    """Waits for the next change to the folder's files: their names, with any saved meanwhile
    (during a check, say) for one check of all of them."""
    while True:
        changed = saves.get()
        while not saves.empty() and not isinstance(changed, Exception):
            more = saves.get()
            changed = more if isinstance(more, Exception) else changed | more
        if isinstance(changed, Exception):
            why = f"{type(changed).__name__}: {changed}"
            raise Stop(f"stopped watching {shown(folder)}: {why}", code=Stop.RED)
        if not folder.is_dir():  # deleted or moved away: the watcher has nothing left to watch
            raise Stop(f"{shown(folder)} is gone: stopped watching", code=Stop.RED)
        changed.discard(".")  # the folder itself (its own time stamp)
        if changed:
            return sorted(changed)


def cmd_watch(args) -> None:
    """make check now, then again each time one of the folder's files changes, until Ctrl-C.

    Its checks are make check's: forked from the warm server (warm.py) once one runs.
    """
    lesson = find(args.lesson)
    folder = (Path(args.dir).expanduser() if args.dir else workspace_folder(lesson)).resolve()
    if not folder.is_dir():
        resolve_folder(lesson, args.dir)  # stops with make check's line: no folder, or a file
    # Ctrl-C, or a SIGTERM (the terminal closed, a kill): both end the watch the same way, even
    # when whatever started it had SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    saves = changes_to(folder)
    print(f"Watching {shown(folder)}: make check LESSON={lesson.number} now, and again each time you "
          "save a file in it (Ctrl-C stops).\n", flush=True)
    try:
        while True:
            # A folder without its main file yet (lesson 02's main.py) is watched until it has one.
            problem = folder_problem(lesson, folder)
            if problem:
                print(f"{problem}: waiting for it", flush=True)
            else:
                check_once(lesson, folder, watching=True)
            names = next_saves(saves, folder)
            named = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            print(f"\n--- {time.strftime('%H:%M:%S')} {named} changed ---\n", flush=True)
    except KeyboardInterrupt:
        print("\nStopped watching.")


# --- solution, progress ---------------------------------------------------------------------

def cmd_solution(args) -> None:
    lesson = find(args.lesson)
    folder = resolve_folder(lesson, args.dir)
    print(f"# {shown(folder)} (yours) -> lessons/{lesson.folder} (the model answer)", flush=True)
    same = git_diff(("yours", folder, learner_files(folder)),
                    ("model-answer", lesson.path, lesson_files(lesson.path)), color=sys.stdout.isatty())
    if same == 0:
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("run", cmd_run), ("start", cmd_start), ("check", cmd_check), ("watch", cmd_watch),
                       ("solution", cmd_solution)):
        p = sub.add_parser(name)
        p.add_argument("lesson", nargs="?", default="")
        p.add_argument("--dir", default="")
        p.add_argument("--force", action="store_true")
        p.add_argument("--mine", action="store_true")
        p.set_defaults(func=func)
    p = sub.add_parser("diff")
    for name in ("--lesson", "--from", "--to"):
        p.add_argument(name, default="", dest=name.strip("-").replace("from", "from_"))
    p.set_defaults(func=cmd_diff)
    sub.add_parser("progress").set_defaults(func=cmd_progress)
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    try:
        if args.command not in ("progress", "diff") and not args.lesson.strip():
            raise Stop(f"which lesson? e.g. make {args.command} LESSON=07", code=Stop.BAD_ARGUMENT)
        args.func(args)
    except Stop as stop:
        if str(stop):
            print(stop, file=sys.stderr)
        return stop.code
    except UnknownLesson as error:
        print(error, file=sys.stderr)
        return 2
    return 0
