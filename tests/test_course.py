"""Repo-wide checks: the manifest against the folders, READMEs, pins, and the Makefile's front door."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT
from lessons import all_lessons

LESSONS = all_lessons()
README_SECTIONS = ["problem", "concept", "what changed", "run it", "try it", "diff", "next"]


def pins(path):
    """{package: version} of a requirements file, every line pinned with ==."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-r"):
            name, sep, version = line.partition("==")
            assert sep, f"{path.relative_to(ROOT)}: {line!r} is not pinned with =="
            found[re.sub(r"\[.*\]", "", name).lower()] = version
    return found


def make(*args):
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True)


def test_manifest_matches_the_lesson_folders():
    folders = sorted(p.name for p in (ROOT / "lessons").iterdir() if p.is_dir())
    assert [lesson.folder for lesson in LESSONS] == folders


def test_lessons_are_numbered_in_order():
    assert [lesson.number for lesson in LESSONS] == [f"{n:02d}" for n in range(1, len(LESSONS) + 1)]
    for lesson in LESSONS:
        assert lesson.folder.startswith(lesson.number + "-"), lesson.folder
        assert set(lesson.needs) <= {"db", "frontend", "llm"}, lesson.needs


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.number)
def test_every_lesson_has_tests_and_a_readme_with_every_section(lesson):
    assert lesson.test_file.is_file(), f"missing {lesson.test_file.relative_to(ROOT)}"
    text = (lesson.path / "README.md").read_text().lower()
    assert [s for s in README_SECTIONS if s not in text] == []
    # The exercise comes first: "## Your task" with a time estimate, before any other section.
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[:1] == ["your task"], headings
    assert re.search(r"about \d+ minutes", text.split("\n## ", 2)[1]), "the task gives no time estimate"
    assert re.search(rf"make run lesson=0?{int(lesson.number)}\b", text), "README lacks its make run line"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.number)
def test_lesson_pins_agree_with_the_root_requirements(lesson):
    root_pins = pins(ROOT / "requirements.txt")
    requirements = lesson.path / "requirements.txt"
    if requirements.exists():
        lesson_pins = pins(requirements)
        assert {name: root_pins.get(name) for name in lesson_pins} == lesson_pins


def test_root_requirements_are_pinned():
    assert pins(ROOT / "requirements.txt")
    assert pins(ROOT / "requirements-dev.txt")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.number)
def test_snapshots_hold_no_todo_markers_or_secrets(lesson):
    for path in lesson.path.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.name not in (".env", "docker.env"):
            assert not re.search(r"\bTODO\b", path.read_text(errors="replace")), path
    if any("os.getenv" in p.read_text() for p in lesson.path.glob("*.py")):
        assert (lesson.path / ".env.example").is_file()


def test_snapshots_track_only_lesson_files():
    tracked = subprocess.run(["git", "ls-files", "lessons"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    allowed = {".py", ".html", ".js", ".css", ".sql", ".yml", ".ini", ".mako", ".md", ".txt", ".example"}
    hidden_folders = [path for path in tracked if any(part.startswith(".") for part in Path(path).parts[:-1])]
    assert [path for path in tracked if Path(path).suffix not in allowed] + hidden_folders == []


def test_local_settings_are_git_ignored():
    for name in (".env", "docker.env", "lessons/09-connect-app-to-db/.env", ".data/x", ".venv/x"):
        assert subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT).returncode == 0, name
    for name in (".env.example", "docker.env.example"):
        assert subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT).returncode == 1, name


def test_readme_lesson_table_is_generated_from_the_manifest():
    table = subprocess.run([sys.executable, "shared/course.py", "table"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    assert table in (ROOT / "README.md").read_text()


def test_make_help_lists_every_lesson_and_target():
    r = make()
    assert r.returncode == 0, r.stderr
    for lesson in LESSONS:
        assert f"{lesson.number}  {lesson.title}" in r.stdout
    for target in ("setup", "run", "diff", "diffs", "test", "lint", "db", "psql"):
        assert f"make {target}" in r.stdout


@pytest.mark.parametrize("value", ["99", "abc", "0", "lessons/nope"])
def test_a_bad_lesson_gets_one_line_listing_the_valid_ones(value):
    r = make("run", f"LESSON={value}")
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert all(lesson.number in lines[0] for lesson in LESSONS)


def test_run_without_a_lesson_says_which_are_valid():
    r = make("run")
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1 and "LESSON=" in r.stderr


@pytest.mark.parametrize("value", ["5", "05", "05-put-delete-user", "lessons/05-put-delete-user/"])
def test_diff_accepts_every_spelling_and_shows_only_the_step(value):
    r = make("diff", f"LESSON={value}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# 04-post-store-user -> 05-put-delete-user")
    changed = re.findall(r"^diff --git (\S+)", r.stdout, re.M)
    assert changed == ["04-post-store-user/main.py"]
    assert "+@app.delete" in r.stdout and "\x1b[" not in r.stdout  # no colour when piped


def test_diff_between_any_two_lessons():
    r = make("diff", "FROM=2", "TO=4")
    assert r.returncode == 0, r.stderr
    assert "+@app.post" in r.stdout and "README" not in r.stdout


def port_in_use(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status, r.read().decode()
    except OSError:
        return None, ""


@pytest.mark.parametrize(("lesson", "url", "text"), [
    ("1", "http://127.0.0.1:8000/", "Dear user, great to meet you!"),
    ("2", "http://127.0.0.1:8000/api/time", '{"time":'),
])
def test_make_run_serves_the_lesson_and_stops_cleanly(lesson, url, text):
    if port_in_use(8000):
        pytest.skip("port 8000 is taken (is your own `make run` going?)")
    proc = subprocess.Popen(["make", "--no-print-directory", "run", f"LESSON={lesson}"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while get(url)[0] != 200 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        status, body = get(url)
        assert status == 200 and text in body, body
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does in a terminal
        output, _ = proc.communicate(timeout=15)
    assert "http://localhost:8000" in output, output
    assert not port_in_use(8000), "something still listens on 8000 after Ctrl-C"
