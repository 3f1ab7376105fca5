"""A lesson's files and the diffs between folders (standard library and git only).

A lesson's files leave out README.md (the lesson text, new in every lesson anyway) and what git
ignores (caches, secrets, virtualenvs); outside a git checkout, what IGNORED names. A learner's
folder (workspace/ is git-ignored) is read with IGNORED alone.
"""

import difflib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from shared.ground.manifest import Lesson, all_lessons
from shared.ground.paths import shown

IGNORED = {"__pycache__", ".env", "docker.env", ".venv", ".pytest_cache", ".ruff_cache", ".DS_Store",
           "README.md"}


def is_kept(relative: Path) -> bool:
    """Whether a path, relative to a lesson's or a learner's folder, is one of its files (not a
    cache, a secret or the README)."""
    return relative.suffix != ".pyc" and not IGNORED & set(relative.parts)


def lesson_files(folder: Path) -> list[Path]:
    """The files of a lesson folder, relative to it, as git sees them."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=folder, capture_output=True, text=True, check=False)
    if listed.returncode == 0:
        files = [Path(name) for name in listed.stdout.split("\0") if name]
    else:
        files = [p.relative_to(folder) for p in folder.rglob("*")]
    return sorted(f for f in files if (folder / f).is_file() and is_kept(f))


def learner_files(folder: Path) -> list[Path]:
    """The files of a learner's folder (git ignores workspace/), left out as for a lesson."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*")
                  if p.is_file() and is_kept(p.relative_to(folder)))


def copy_files(source: Path, files: list[Path], target: Path) -> None:
    for rel in files:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target / rel)


def git_diff(old: tuple[str, Path, list[Path]], new: tuple[str, Path, list[Path]], color: bool,
             out=None) -> int:
    """`git diff --no-index` of two folders' files, each given as (name, folder, files), over
    clean copies so paths read name/main.py; renames shown as moves. Returns git's exit code
    (0: the same, 1: different, more: git failed)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder, files in (old, new):
            Path(tmp, name).mkdir()
            copy_files(folder, files, Path(tmp, name))
        return subprocess.run(
            ["git", "--no-pager", "diff", "--no-index", "--stat", "--patch", "--no-prefix", "-M",
             f"--color={'always' if color else 'never'}", old[0], new[0]],
            cwd=tmp, stdout=out, check=False).returncode


def lesson_diff(old: Lesson, new: Lesson, color: bool, out=None) -> int:
    return git_diff((old.folder, old.path, lesson_files(old.path)),
                    (new.folder, new.path, lesson_files(new.path)), color, out)


def diff_header(old: Lesson, new: Lesson) -> str:
    """`# 05-x -> 06-y: what 06 adds`, or for a span one line per lesson it covers."""
    lessons = all_lessons()
    a, b = lessons.index(old), lessons.index(new)
    covered = lessons[a + 1:b + 1] if a < b else lessons[b + 1:a + 1][::-1]
    head = f"# {old.folder} -> {new.folder}"
    if len(covered) == 1:
        return f"{head}: {new.summary}"
    if not covered:
        return f"{head}: the same lesson"
    undone = ", undoing" if a > b else ","
    return "\n".join([f"{head}{undone} lessons {covered[0].number}-{covered[-1].number}:",
                      *(f"#   {x.number} {x.title}: {x.summary}" for x in covered)])


def changed_files(old: Path | None, new: Path) -> list[tuple[str, str, str]]:
    """[(relative path, old text, new text)] of the lesson files that differ."""
    old_files = {str(p): p for p in lesson_files(old)} if old else {}
    new_files = {str(p): p for p in lesson_files(new)}
    changed = []
    for rel in sorted(set(old_files) | set(new_files)):
        a = (old / rel).read_text(errors="replace") if rel in old_files else ""
        b = (new / rel).read_text(errors="replace") if rel in new_files else ""
        if a != b:
            changed.append((rel, a, b))
    return changed


def diff_stats(old: Path, new: Path) -> list[tuple[str, int, int]]:
    """[(relative path, lines added, lines removed)] per changed file."""
    stats = []
    for rel, a, b in changed_files(old, new):
        plus = minus = 0
        for line in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0):
            if line.startswith("+") and not line.startswith("+++"):
                plus += 1
            elif line.startswith("-") and not line.startswith("---"):
                minus += 1
        stats.append((rel, plus, minus))
    return stats


def steps_table(link) -> str:
    """Every step, what it adds, the files it touches, with link(lesson) -> a markdown link
    (the site's steps page and build/diffs/index.md)."""
    lines = ["| Step | What it adds | Files | Lines | |", "|---|---|---|---|---|"]
    lessons = all_lessons()
    for before, lesson in zip(lessons, lessons[1:], strict=False):
        stats = diff_stats(before.path, lesson.path)
        files = ", ".join(f"`{rel}`" for rel, _, _ in stats)
        plus, minus = sum(s[1] for s in stats), sum(s[2] for s in stats)
        lines.append(f"| {before.number} -> {lesson.number} {lesson.title} | {lesson.summary} | {files} "
                     f"| +{plus} -{minus} | {link(lesson)} |")
    return "\n".join(lines) + "\n"


def folder_problem(lesson: Lesson, folder: Path) -> str | None:
    """One line saying why `folder` cannot be graded as lesson `lesson`, or None."""
    if not folder.exists():
        return f"no folder {shown(folder)}"
    if not folder.is_dir():
        return f"{shown(folder)} is a file, not a folder"
    key = lesson.app_file(Path()) if lesson.has_api() else Path("index.html")
    if not (folder / key).is_file():
        found = ", ".join(sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))[:6])
        return (f"{shown(folder)} has no {key}: nothing to grade as lesson {lesson.number} "
                f"(it holds: {found or 'nothing'})")
    return None


def task_text(lesson: Lesson) -> str:
    """The README's "Your task" section, without its heading."""
    readme = lesson.path / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    match = re.search(r"^## Your task\s*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match[1].strip() if match else ""
