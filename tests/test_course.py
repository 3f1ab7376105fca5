"""Repo-wide checks: the manifest against the folders, READMEs, pins, and the Makefile's front door."""

import ast
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg2
import pytest
import yaml
from dotenv import dotenv_values

import helpers
from helpers import BROWSER_WAIT_MS, ROOT, ForkedServer, ReusedTab, Servers, free_port, serve_folder
from shared.ground import devdb, results
from shared.ground.files import lesson_files
from shared.ground.manifest import all_lessons, find
from shared.ground.paths import listens_on
from shared.services import proxy, run, settings, testrun, warm
from webclient import web

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


def names_file(section: str, path: str) -> bool:
    """Whether a README section names a file: its path, or its name as a word; a folder of it in
    backticks (`frontend/`); or a `...` pattern in backticks (`alembic/versions/..._0005_...py`)."""
    name = path.rsplit("/", 1)[-1]
    if path in section or re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", section):
        return True
    for token in (" ".join(t.split()) for t in re.findall(r"`([^`]+)`", section)):
        if token.endswith("/") and path.startswith(token):
            return True
        if "..." in token and re.fullmatch(".*".join(map(re.escape, token.split("..."))), path):
            return True
    return False


@pytest.mark.parametrize("lesson", LESSONS[1:], ids=lambda lesson: lesson.number)
def test_what_changed_names_every_file_the_step_changes(lesson):
    """Every file that differs from the lesson before is named in the README's "What changed":
    one it does not name is either part of the step the README forgot, or a fix to the lesson
    before that never reached this one (lesson 24's later fixes once missed 25 that way)."""
    before = LESSONS[LESSONS.index(lesson) - 1]
    old, new = ({str(p) for p in lesson_files(x.path)} for x in (before, lesson))

    def differs(path: str) -> bool:
        return path not in old or path not in new or \
            (before.path / path).read_bytes() != (lesson.path / path).read_bytes()

    changed = sorted(path for path in old | new if path != "README.md" and differs(path))
    readme = (lesson.path / "README.md").read_text()
    found = re.search(r"^## What changed\n(.*?)(?=^## )", readme, re.S | re.M)
    assert found, "the README has no What changed section"
    assert [path for path in changed if not names_file(found.group(1), path)] == []


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
    allowed = {".py", ".html", ".js", ".css", ".sql", ".yml", ".ini", ".mako", ".md", ".txt", ".example",
               ".conf", ".toml"}
    shipping = {"Dockerfile", ".dockerignore"}  # lesson 25 on: the image a lesson builds
    hidden_folders = [path for path in tracked if any(part.startswith(".") for part in Path(path).parts[:-1])]
    odd = [path for path in tracked if Path(path).suffix not in allowed and Path(path).name not in shipping]
    assert odd + hidden_folders == []


def test_local_settings_are_git_ignored():
    for name in (".env", "docker.env", "lessons/09-connect-app-to-db/.env", ".data/x", ".venv/x"):
        assert subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT).returncode == 0, name
    for name in (".env.example", "docker.env.example"):
        assert subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT).returncode == 1, name


DOCS = ["README.md", "CONTRIBUTING.md", *(f"lessons/{x.folder}/README.md" for x in LESSONS)]


@pytest.mark.parametrize("doc", DOCS)
def test_links_point_to_files_that_exist(doc):
    """No page links to a lesson (or any file) that is not there yet."""
    path = ROOT / doc
    for target in re.findall(r"(?<!!)\[[^\]]+\]\(([^)\s]+)\)", path.read_text()):
        if not re.match(r"[a-z]+:|#", target):
            assert (path.parent / target.split("#")[0]).exists(), f"{doc} links to {target}"


def test_readme_lesson_table_is_generated_from_the_manifest():
    table = subprocess.run([sys.executable, "-m", "shared", "table"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    assert table in (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def make_help():
    """What `make` (no target: help) prints, run once for the tests that read it."""
    return make()


def test_make_help_lists_every_lesson_and_target(make_help):
    r = make_help
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


def test_make_help_puts_learner_commands_before_the_maintainers(make_help):
    out = make_help.stdout
    learn, maintain = out.index("Learning"), out.index("Teaching and maintaining")
    assert learn < out.index("make run LESSON=NN") < out.index("make psql") < maintain, out
    assert maintain < out.index("make diffs ") and maintain < out.index("make bench"), out


def test_make_help_names_every_makefile_target(make_help):
    out = make_help.stdout
    targets = re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M)
    assert [t for t in targets if not re.search(rf"^  make (\S+ / )*{t}\b", out, re.M)] == []


def test_diff_with_from_but_no_to_says_to_is_missing():
    r = make("diff", "FROM=09")
    assert r.returncode == 2 and "needs TO=" in r.stderr, r.stderr


def test_a_span_diff_names_every_lesson_it_covers():
    header = make("diff", "FROM=5", "TO=8").stdout.split("\n diff", 1)[0]
    for lesson in LESSONS[5:8]:
        assert f"#   {lesson.number} {lesson.title}: {lesson.summary}" in header, header


# --- compose files --------------------------------------------------------------------------

def is_the_dev_database(path: Path) -> bool:
    """A compose file of the development database (lesson 25's runs the whole app instead)."""
    return sorted(yaml.safe_load(path.read_text())["services"]) == ["db"]


COMPOSE_FILES = [ROOT / "docker-compose.yml", *sorted(ROOT.glob("lessons/*/docker-compose.yml"))]
DEV_DATABASE_COMPOSE_FILES = [path for path in COMPOSE_FILES if is_the_dev_database(path)]


def compose_facts(path):
    """What must agree across compose files: project, service, container, port, volume."""
    compose = yaml.safe_load(path.read_text())
    db = compose["services"]["db"]
    return {"project": compose.get("name"), "services": sorted(compose["services"]),
            "container": db.get("container_name"), "ports": db.get("ports"),
            "volumes": [str(v).split(":")[0] for v in db.get("volumes", [])],
            "declared": sorted(compose.get("volumes") or {}), "env_file": db.get("env_file")}


@pytest.mark.parametrize("path", DEV_DATABASE_COMPOSE_FILES[1:], ids=lambda p: p.parent.name)
def test_every_compose_file_means_the_same_container_and_data(path):
    assert compose_facts(COMPOSE_FILES[0]) == {
        "project": "ai-interview-coach", "services": ["db"], "container": "interview-db",
        "ports": ["127.0.0.1:5433:5432"], "volumes": ["pgdata"], "declared": ["pgdata"],
        "env_file": "docker.env"}
    assert compose_facts(path) == compose_facts(COMPOSE_FILES[0])


def docker_compose() -> bool:
    try:
        found = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return found.returncode == 0


@pytest.mark.skipif(not docker_compose(), reason="no Docker CLI with the compose plugin here")
@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.parent.name)
def test_docker_compose_accepts_every_compose_file(path, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(path.read_text())
    (tmp_path / "docker.env").write_text((ROOT / "docker.env.example").read_text())
    r = subprocess.run(["docker", "compose", "config", "--format", "json"], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert '"name": "ai-interview-coach"' in r.stdout, r.stdout


# --- settings: docker.env is the one source -------------------------------------------------

@pytest.fixture
def lesson_copy(tmp_path):
    """A copy of lesson 12's folder, without the .env and docker.env make run writes."""
    lesson = find("12")
    folder = tmp_path / lesson.folder
    shutil.copytree(lesson.path, folder, ignore=shutil.ignore_patterns(".env", "docker.env", "__pycache__"))
    return lesson, folder


@pytest.mark.parametrize("lesson", [x for x in LESSONS if "db" in x.needs], ids=lambda lesson: lesson.number)
def test_settings_examples_say_make_run_keeps_them_in_step(lesson):
    for example in lesson.path.glob("*.example"):
        text = example.read_text()
        assert "make run" in text and "match docker.env" not in text, example
        assert dotenv_values(example).get("DB_PORT", "5433") == "5433", example


def test_make_run_writes_a_private_env_with_the_databases_settings(lesson_copy, capsys):
    lesson, folder = lesson_copy
    settings.write_settings(lesson, folder)
    env = dotenv_values(folder / ".env")
    assert {k: env[k] for k in ("DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD")} == {
        k: v for k, v in devdb.dev_env().items() if k != "DB_HOST"}
    assert (folder / ".env").stat().st_mode & 0o777 == 0o600
    assert (folder / "docker.env").stat().st_mode & 0o777 == 0o600
    assert "created" in capsys.readouterr().out


def test_make_run_refreshes_stale_db_lines_and_keeps_the_learners_others(lesson_copy, capsys):
    lesson, folder = lesson_copy
    settings.write_settings(lesson, folder)
    with open(folder / ".env", "a") as f:
        f.write("MY_OWN=kept\n")
    text = (folder / ".env").read_text()
    (folder / ".env").write_text(re.sub(r"DB_PASSWORD=.*", "DB_PASSWORD=old", text))
    capsys.readouterr()
    settings.write_settings(lesson, folder)
    out = capsys.readouterr().out
    assert out == f"updated DB_PASSWORD in {folder}/.env to follow docker.env\n", out
    assert dotenv_values(folder / ".env")["MY_OWN"] == "kept"
    settings.write_settings(lesson, folder)
    assert capsys.readouterr().out == ""  # nothing stale, nothing said


def test_make_run_writes_a_fresh_jwt_secret_where_the_example_leaves_it_empty(lesson_copy):
    lesson, folder = lesson_copy
    with open(folder / ".env.example", "a") as f:
        f.write("JWT_SECRET=\n")
    settings.write_settings(lesson, folder)
    secret = dotenv_values(folder / ".env")["JWT_SECRET"]
    assert len(secret) >= 32, secret
    settings.write_settings(lesson, folder)
    assert dotenv_values(folder / ".env")["JWT_SECRET"] == secret  # kept once written


@pytest.mark.parametrize(("key", "uses_coach"), [("", True), ("sk-...", True), ("sk-proj-abc123", False)])
def test_an_llm_lesson_without_a_real_key_gets_the_offline_coach(tmp_path, monkeypatch, key, uses_coach):
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={key}\nOPENAI_MODEL=gpt-x\n")
    (tmp_path / "coach.py").write_text("")
    monkeypatch.setattr(settings, "COACH", tmp_path / "coach.py")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    env, line, command = settings.llm_setup(tmp_path)
    if uses_coach:
        assert env["OPENAI_BASE_URL"] == f"http://127.0.0.1:{settings.COACH_PORT}/v1", env
        assert command[-4:] == ["--host", "127.0.0.1", "--port", str(settings.COACH_PORT)], command
        assert "offline coach" in line, line
    else:
        assert (env, line, command) == ({}, "OpenAI (model gpt-x)", None)


def test_an_openai_base_url_of_the_learners_choice_is_used_as_is(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("OPENAI_API_KEY=\nOPENAI_BASE_URL=http://localhost:11434/v1\n")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    env, line, command = settings.llm_setup(tmp_path)
    assert (env, command) == ({"OPENAI_API_KEY": "unused"}, None), env
    assert line == "the OpenAI-compatible server at http://localhost:11434/v1 (the app's default model)"


def test_without_a_key_or_a_coach_make_run_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "COACH", tmp_path / "no-coach.py")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    env, line, command = settings.llm_setup(tmp_path)
    assert (env, command) == ({}, None) and "no offline coach" in line, line


@pytest.mark.parametrize(("origins", "printed"), [
    ("http://localhost:{0},http://127.0.0.1:{0}", "http://localhost:{0}"),
    ("http://127.0.0.1:{0}", "http://127.0.0.1:{0}"),
])
def test_make_run_prints_page_urls_the_api_lets_in(origins, printed):
    port = settings.PAGES_PORT
    origin, note = run.page_origin({"CORS_ORIGINS": origins.format(port)})
    assert origin == printed.format(port)
    assert (note == "") == ("," in origins), note


# --- a fresh clone with its own database: what a learner does -------------------------------

LLM_LESSONS = [lesson for lesson in LESSONS if "llm" in lesson.needs and lesson.path.is_dir()]


@pytest.fixture(scope="module")
def clone():
    """This checkout's tooling and lesson 12 in a fresh folder, with its own embedded Postgres on
    a free port (never the dev database), run as a new user would: through make. The folder is
    open to others (0755) as a home folder is, so the server keeps its data in .data/ there."""
    top = Path(tempfile.mkdtemp(prefix="aic-clone-"))
    top.chmod(0o755)
    where = top / "repo"
    for name in ("Makefile", "docker-compose.yml", "docker.env.example", "requirements.txt",
                 "requirements-dev.txt"):
        (where / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, where / name)
        os.utime(where / name, (0, 0))  # older than .venv/.installed: no reinstall
    shutil.copytree(ROOT / "shared", where / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    for lesson in [x for x in LESSONS if "db" in x.needs and x.path.is_dir()]:
        shutil.copytree(lesson.path, where / "lessons" / lesson.folder,
                        ignore=shutil.ignore_patterns(".env", "docker.env", "__pycache__"))
    (where / ".venv").symlink_to(ROOT / ".venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "OPENAI_"))}
    env.update(DEVDB_PORT=str(free_port()), AIC_API_PORT=str(free_port()), AIC_PAGES_PORT=str(free_port()),
               AIC_COACH_PORT=str(free_port()), AIC_WORKERS_PORT=str(free_port()),
               AIC_STREAMS_PORT=str(free_port()))
    yield where, env
    subprocess.run(["make", "--no-print-directory", "db-stop"], cwd=where, env=env, capture_output=True)
    shutil.rmtree(top)


def make_in(clone, *args):
    where, env = clone
    return subprocess.run(["make", "--no-print-directory", *args], cwd=where, env=env, capture_output=True,
                          text=True)


def make_run_in(clone, lesson: str, ready_url: str, action):
    """`make run LESSON=<lesson>` in the clone until `ready_url` answers 200 (60 s at most), then
    `action()`, then Ctrl-C; returns (what action returned, what make run printed)."""
    where, env = clone
    command = ["make", "--no-print-directory", "run", f"LESSON={lesson}"]
    proc = subprocess.Popen(command, cwd=where, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while get(ready_url)[0] != 200 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        result = action()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=15)
    return result, output


def run_lesson_12_and_sign_up(clone) -> str:
    """`make run LESSON=12`, one signup through the API, Ctrl-C; returns what make run printed."""
    api = f"http://127.0.0.1:{clone[1]['AIC_API_PORT']}"
    profile = {"name": "Ada", "role": "developer", "place": "London", "password": "secret123"}
    r, output = make_run_in(clone, "12", api + "/docs", lambda: web.post(api + "/api/users", json=profile))
    assert r.status_code == 201, r.text + output
    return output


def test_a_changed_password_and_a_reset_leave_make_run_working(clone):
    where, env = clone
    folder = where / "lessons" / "12-use-sqlalchemy"
    assert make_in(clone, "db").returncode == 0  # cold start: a database with the old password
    shutil.copy(folder / ".env.example", folder / ".env")  # the learner's .env, old password too
    docker_env = where / "docker.env"
    docker_env.write_text(docker_env.read_text().replace("aic_dev_password", "n3w pass#word"))
    reset = make_in(clone, "db-reset", "CONFIRM=1")
    assert reset.returncode == 0, reset.stderr
    output = run_lesson_12_and_sign_up(clone)
    # One line names what changed (DB_PORT too: this copy's database has a port of its own).
    assert re.search(r"^updated \S*DB_PASSWORD\S* in lessons/12-use-sqlalchemy/.env to follow docker.env$",
                     output.replace(", ", ","), re.M), output
    assert "n3w" not in output  # names, never values
    assert f"Database: aic_db on 127.0.0.1:{env['DEVDB_PORT']} as aic" in output, output
    assert f"API docs: http://localhost:{env['AIC_API_PORT']}/docs" in output, output
    # uvicorn started by hand in the folder reads the same .env
    assert dotenv_values(folder / ".env")["DB_PASSWORD"] == "n3w pass#word"
    # and so does every other lesson's, once make run (here: its first step) has written it
    write_all = ("from shared.ground.manifest import all_lessons\n"
                 "from shared.services.settings import write_settings\n"
                 "for x in all_lessons():\n"
                 "    if 'db' in x.needs and x.path.is_dir(): write_settings(x, x.path)")
    subprocess.run([sys.executable, "-c", write_all], cwd=where, env=env, check=True, capture_output=True)
    env_files = sorted(where.glob("lessons/*/.env"))
    assert len(env_files) == len(list(where.glob("lessons/*/.env.example"))), env_files
    for env_file in env_files:
        s = dotenv_values(env_file)
        psycopg2.connect(host=s["DB_HOST"], port=s["DB_PORT"], dbname=s["DB_NAME"], user=s["DB_USER"],
                         password=s["DB_PASSWORD"]).close()


def test_secrets_and_the_server_log_are_private_and_hold_no_values(clone):
    where, env = clone
    assert make_in(clone, "db").returncode == 0
    settings = dotenv_values(where / "docker.env")
    conn = psycopg2.connect(host="127.0.0.1", port=env["DEVDB_PORT"], dbname=settings["POSTGRES_DB"],
                            user=settings["POSTGRES_USER"], password=settings["POSTGRES_PASSWORD"])
    conn.autocommit = True
    with conn, conn.cursor() as cur:
        for value in ("s3cr3t-value", "s3cr3t-value"):  # the second breaks the unique name
            try:
                cur.execute("CREATE TABLE IF NOT EXISTS leak (v text UNIQUE, n int)")
                cur.execute("INSERT INTO leak (v) VALUES (%s)", (value,))
                cur.execute("INSERT INTO leak (n) VALUES (%s)", (value,))  # not a number
            except psycopg2.Error:
                pass
    conn.close()
    assert make_in(clone, "db-stop").returncode == 0  # flushes the log
    log = where / ".data" / "postgres.log"
    assert "s3cr3t" not in log.read_text()
    for path in (where / "docker.env", log, where / ".data"):
        path.chmod(0o755)  # as an older version of the tooling left them
    assert make_in(clone, "db").returncode == 0
    modes = {p: oct(p.stat().st_mode & 0o777) for p in (where / "docker.env", log, where / ".data")}
    assert modes == {where / "docker.env": "0o600", log: "0o600", where / ".data": "0o700"}


@pytest.mark.skipif(not LLM_LESSONS, reason="no lesson needs an LLM yet")
def test_make_run_starts_the_offline_coach_for_a_lesson_without_a_key_and_stops_it(clone):
    """Last in this file: the lesson's migrations move the clone's database past lesson 12."""
    env = clone[1]
    lesson, coach = LLM_LESSONS[0], f"http://127.0.0.1:{env['AIC_COACH_PORT']}"
    models = coach + "/v1/models"
    (status, _), output = make_run_in(clone, lesson.number, models, lambda: get(models))
    assert status == 200, output
    assert f"LLM:      the offline coach at {coach}/v1" in output, output
    assert not port_in_use(int(env["AIC_COACH_PORT"])), "the coach still listens after Ctrl-C"


SHIPPED = [lesson for lesson in LESSONS if (lesson.path / "nginx.conf").is_file()]


@pytest.mark.skipif(not SHIPPED or not proxy.binary(), reason="no lesson with an nginx.conf, or no nginx")
def test_make_run_puts_the_workers_behind_nginx_for_a_lesson_with_an_nginx_conf(clone):
    """make run LESSON=25 says nginx is in front of two groups of two workers (the API's, the
    streams'); through it, /readyz is 200 and a signup, a login and a streamed chat work; Ctrl-C
    stops nginx and the workers."""
    env = clone[1]
    api, workers = f"http://127.0.0.1:{env['AIC_API_PORT']}", int(env["AIC_WORKERS_PORT"])
    streams = int(env["AIC_STREAMS_PORT"])
    user = {"name": "Ada", "email": "ada@example.com", "password": "correct-horse"}

    def signup_login_chat():
        assert web.post(api + "/api/users", json=user, timeout=30).status_code == 201
        login = web.post(api + "/api/login", json={k: user[k] for k in ("email", "password")}, timeout=30)
        token = login.json()["access_token"]
        with web.stream("POST", api + "/api/chat/stream", json={"message": "Hello"}, timeout=30,
                        headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status_code, r.headers.get("server", ""), "".join(r.iter_text())

    (status, server, body), output = make_run_in(clone, SHIPPED[0].number, api + "/readyz", signup_login_chat)
    assert status == 200 and server.startswith("nginx"), output
    assert "event: done" in body, body
    assert (f"(nginx on :{env['AIC_API_PORT']} -> 2 uvicorn workers on :{workers}, and for the streams "
            f"and sockets 2 on :{streams})") in output, output
    assert not port_in_use(int(env["AIC_API_PORT"])), "nginx still listens after Ctrl-C"
    assert not port_in_use(workers), "the API's workers still listen after Ctrl-C"
    assert not port_in_use(streams), "the stream workers still listen after Ctrl-C"


PROBE_APP = """\
import logging, os, warnings

import passlib.hash
from fastapi import FastAPI

logging.getLogger("uvicorn.error").info("probe imported with PROBE=%s", os.environ.get("PROBE"))
app = FastAPI()


@app.get("/")
def probe():
    warnings.warn("shown in the log, not raised", UserWarning)
    rounds = passlib.hash.bcrypt.default_rounds
    return {"rounds": rounds, "probe": os.environ.get("PROBE"), "cwd": os.getcwd()}
"""


def test_a_forked_uvicorn_serves_as_a_fresh_process_would(tmp_path, monkeypatch):
    """Servers.start forks `python -m uvicorn` (helpers.fork_uvicorn): the app is its folder's
    own (not a `main` this process imported from elsewhere), it sees that folder, the environment
    it was given and the tests' bcrypt cost (conftest.py: 4, not 12); a warning is
    logged, not raised as the tests' filters would; its log reaches the pipe; SIGTERM ends it as
    it ends uvicorn: shut down in order, then the signal raised again (exit -15)."""
    served, elsewhere = tmp_path / "served", tmp_path / "elsewhere"
    served.mkdir()
    elsewhere.mkdir()
    (served / "main.py").write_text(PROBE_APP)
    (elsewhere / "main.py").write_text("from fastapi import FastAPI\n\napp = FastAPI()\n")
    spec = importlib.util.spec_from_file_location("main", elsewhere / "main.py")
    monkeypatch.setitem(sys.modules, "main", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(sys.modules["main"])
    servers = Servers()
    try:
        port, proc = servers.start([sys.executable, "-m", "uvicorn", "main:app", "--port", "{port}"],
                                   cwd=served, env={"PROBE": "given"}, keep_log=True)
        assert isinstance(proc, ForkedServer)
        r = web.get(f"http://127.0.0.1:{port}/")
        assert r.status_code == 200, r.text
        assert r.json() == {"rounds": 4, "probe": "given", "cwd": str(served)}
    finally:
        servers.stop_all()
    log = servers.log(proc)
    assert proc.returncode == -signal.SIGTERM and "Finished server process" in log, log
    assert "probe imported with PROBE=given" in log and "UserWarning: shown in the log" in log, log


def test_an_app_that_refuses_to_start_ends_a_forked_uvicorn_as_a_fresh_one(tmp_path):
    """exit_or_listen forks one-worker uvicorns too: an app whose import raises SystemExit with
    a message ends it as it ends an interpreter (the message on stderr, exit code 1); one that
    starts is stopped once it listens (None)."""
    (tmp_path / "main.py").write_text('raise SystemExit("SECRET is not set")\n')
    command = [sys.executable, "-m", "uvicorn", "main:app", "--port", "{port}"]
    env = {"PATH": os.environ["PATH"]}
    assert helpers.exit_or_listen(command, tmp_path, env) == (1, "SECRET is not set\n")
    (tmp_path / "main.py").write_text("from fastapi import FastAPI\n\napp = FastAPI()\n")
    code, output = helpers.exit_or_listen(command, tmp_path, env)
    assert code is None and "Uvicorn running on" in output, output


PROBE_TEST = """\
import os, sys

PRELOADED = "fastapi" in sys.modules  # before this file imported anything


def test_probe():
    print("probe ran in", os.getcwd())
    assert PRELOADED and "main" not in sys.modules
    assert os.environ["PROBE"] == "given" and "NOT_GIVEN" not in os.environ
"""


def forked_probe(tmp_path, test: str, timeout: float | None = None) -> tuple[int, str, float]:
    (tmp_path / "test_probe.py").write_text(test)
    started = time.monotonic()
    status, report = testrun.forked_pytest(
        [str(tmp_path / "test_probe.py"), f"--rootdir={tmp_path}", "-c", str(ROOT / "pyproject.toml"), "-s"],
        {"PATH": os.environ["PATH"], "PROBE": "given"}, timeout, tmp_path / "probe.jsonl")
    return status, report, time.monotonic() - started


def test_a_forked_job_runs_as_a_new_interpreter_would_with_the_packages_loaded(tmp_path, monkeypatch):
    """make test's jobs fork from a server that imported the common packages (testrun.py): a job
    has them loaded, but no module of the process that started it (its `main`), only the
    environment it was given, the repo as its folder, and the course's pytest settings, warnings
    as errors, without a warning about the packages loaded before it; its report comes back."""
    monkeypatch.setenv("NOT_GIVEN", "1")
    monkeypatch.setitem(sys.modules, "main", sys.modules[__name__])
    status, report, _ = forked_probe(tmp_path, PROBE_TEST)
    assert status == 0, report
    assert f"probe ran in {ROOT}" in report and "1 passed" in report, report
    assert not (tmp_path / "probe.out").exists()


def test_a_forked_job_past_its_time_limit_is_stopped(tmp_path):
    sleeps = "import time\n\n\ndef test_sleeps():\n    time.sleep(60)\n"
    status, report, seconds = forked_probe(tmp_path, sleeps, timeout=3)
    # Well short of the test's 60 s, with room for a machine busy with two lessons' tests
    assert status == testrun.TIMED_OUT and seconds < 30, (status, seconds, report)


@pytest.mark.parametrize(("written", "status"), [(True, 0), (False, testrun.STATUS_LOST)],
                         ids=["pytest wrote its status", "pytest wrote none"])
def test_a_forked_job_whose_end_the_fork_server_lost_ends_as_pytest_said(monkeypatch, written, status):
    """multiprocessing gives 255 for a forked job whose end the fork server could not report:
    the job then ends with the status pytest wrote as its results' last line, and only when it
    wrote none (it never finished) is it red, as "pytest exited 255"."""
    def lost(args, env, timeout, running):
        if written:
            running.write_text(results.to_line(results.Session(exitstatus=0, collected=1, seconds=0.1)))
        return testrun.STATUS_LOST, ""

    monkeypatch.setattr(testrun, "forked_pytest", lost)
    job = find("02")
    run_ = testrun.run_job(job, tag="-probe-lost", forked=True)
    testrun.results_file(job, "-probe-lost").unlink(missing_ok=True)
    assert (run_.exitstatus, run_.note) == (status, "" if written else "pytest exited 255")


@pytest.fixture(scope="module")
def warm_server(tmp_path_factory):
    """A warm server of these tests' own (warm.py), in a folder of theirs; stopped afterwards."""
    folder = tmp_path_factory.mktemp("warm")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIC_WARM", "1")  # conftest.py turns it off for the make checks of tests
        warm.start(folder)
        helpers.wait_for(lambda: warm.ready(folder), "the warm server to take requests", seconds=30)
        yield folder
    assert warm.stop(folder)


def warm_probe(folder: Path, tmp_path, test: str, timeout: float | None = None, options: tuple = (),
               **env) -> tuple:
    (tmp_path / "test_probe.py").write_text(test)
    report = tmp_path / "probe.out"
    status = warm.run([*testrun.ALREADY_IMPORTED, str(tmp_path / "test_probe.py"), f"--rootdir={tmp_path}",
                       "-c", str(ROOT / "pyproject.toml"), "-s", *options],
                      {"PATH": os.environ["PATH"], "PROBE": "given", **env}, report, timeout, folder)
    return status, report.read_text() if report.exists() else ""


def test_a_check_forked_by_the_warm_server_runs_as_a_new_interpreter_would(warm_server, tmp_path,
                                                                            monkeypatch):
    """make check forks its pytest from the warm server once one runs (warm.py): the job has the
    packages loaded, but no module of the check's process, only the environment the check
    gave it, the repo as its folder, the course's warnings as errors, a process group of its own;
    its exit status and report come back."""
    monkeypatch.setenv("NOT_GIVEN", "1")
    status, report = warm_probe(warm_server, tmp_path, PROBE_TEST)
    assert status == 0, report
    assert f"probe ran in {ROOT}" in report and "1 passed" in report, report
    status, report = warm_probe(warm_server, tmp_path, PROBE_TEST.replace('== "given"', '== "other"'))
    assert status == 1 and "1 failed" in report, report


WORKER_PROBE = """\
import os, sys

PRELOADED = "fastapi" in sys.modules  # before this file imported anything


def test_probe(worker_id):
    assert worker_id.startswith("gw") and os.getcwd() == os.environ["WHERE"]
    assert os.environ["PROBE"] == "given" and "NOT_GIVEN" not in os.environ
    assert PRELOADED == (os.environ["FORKED"] == "yes"), "forked" if PRELOADED else "a new interpreter"
    if PRELOADED:  # in the job's process group: stopped with it
        assert os.getpgid(0) == int(os.environ["JOB"]) != os.getpid()
"""


def test_the_workers_of_a_warm_check_are_forked_by_the_server_too(warm_server, tmp_path, monkeypatch):
    """make check spreads some lessons' tests over pytest-xdist workers (testrun.spread): each
    is forked by the warm server like the check's own pytest (warm_worker.py), in its folder and
    environment, in its process group. A pytest not forked by the server gets new interpreters."""
    monkeypatch.setenv("NOT_GIVEN", "1")
    job = "import os; os.environ['JOB'] = str(os.getpgid(0))\n"  # the job's process group
    (tmp_path / "conftest.py").write_text(job)
    status, report = warm_probe(warm_server, tmp_path, WORKER_PROBE, options=testrun.spread(2, warm_server),
                                FORKED="yes", WHERE=str(ROOT))
    assert status == 0 and "2 workers" in report and "1 passed" in report, report
    alone = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_probe.py"),
                            f"--rootdir={tmp_path}", "-c", str(ROOT / "pyproject.toml"),
                            *testrun.spread(2, warm_server)],
                           cwd=tmp_path, env={"PATH": os.environ["PATH"], "PROBE": "given", "FORKED": "no",
                                              "WHERE": str(tmp_path), "AIC_WARM": "1"},
                           capture_output=True, text=True, timeout=120)
    assert "--tx" in testrun.spread(2, warm_server) and alone.returncode == 0, alone.stdout + alone.stderr


GROUP_PROBE = """\
import os, time


def test_waits():
    assert os.getpgid(0) == os.getpid()  # its own process group: stopped with whatever it starts
    with open(os.environ["PID_FILE"] + ".new", "w") as pid_file:
        pid_file.write(str(os.getpid()))
    os.replace(os.environ["PID_FILE"] + ".new", os.environ["PID_FILE"])  # whole, or not there
    time.sleep(60)
"""


def test_a_warm_check_past_its_time_limit_is_stopped(warm_server, tmp_path):
    """The job is killed at the limit, whether or not its test has begun by then (on a busy
    machine, 2 s may end it while pytest still collects: the pid comes from the server)."""
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(warm.TimedOut) as stopped:
        warm_probe(warm_server, tmp_path, GROUP_PROBE, timeout=2, PID_FILE=str(pid_file))
    assert time.monotonic() - started < 30
    job = stopped.value.pid
    assert not pid_file.exists() or int(pid_file.read_text()) == job
    helpers.wait_for(lambda: not warm.alive(job), "the job to be gone")


def state_and_group(stat: Path) -> tuple[str, int] | None:
    """(state, process group) from a /proc/PID/stat, or None when the process is gone."""
    try:
        state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        return state, int(group)
    except (OSError, IndexError, ValueError):  # gone meanwhile
        return None


def group_gone(pgid: int) -> bool:
    """No process of group PGID runs. A zombie has ended and only waits to be reaped: by PID 1
    for the orphans of a killed job, which some containers' PID 1 does late or never."""
    found = (state_and_group(stat) for stat in Path("/proc").glob("[0-9]*/stat"))
    return not any(f is not None and f[1] == pgid and f[0] != "Z" for f in found)


def ended(pid: int) -> bool:
    """PID runs no more: gone, or a zombie (ended, not yet reaped; warm.alive counts it alive)."""
    found = state_and_group(Path(f"/proc/{pid}/stat"))
    return found is None or found[0] == "Z"


def test_the_workers_of_a_warm_check_past_its_time_limit_are_stopped_with_it(warm_server, tmp_path):
    pid_file = tmp_path / "pid"
    sleeps = GROUP_PROBE.replace("assert os.getpgid(0) == os.getpid()", "assert os.getpgid(0) != os.getpid()")
    with pytest.raises(warm.TimedOut) as stopped:
        warm_probe(warm_server, tmp_path, sleeps, timeout=10, options=testrun.spread(2, warm_server),
                   PID_FILE=str(pid_file))
    # The workers are in the job's process group (once one has written its pid, at the latest)
    helpers.wait_for(lambda: group_gone(stopped.value.pid), "the job and its workers to be gone")
    assert not pid_file.exists() or ended(int(pid_file.read_text()))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_a_warm_check_stopped_stops_its_job(warm_server, tmp_path, sig):
    """Ctrl-C reaches the check's process group, not the job's (a group of the server's): the
    check sends it on, so that pytest stops as it would in the check's own group. A check killed
    outright cannot: the job sees its connection closed, and stops itself the same way."""
    pid_file = tmp_path / "pid"
    (tmp_path / "test_probe.py").write_text(GROUP_PROBE)
    client = (f"from pathlib import Path; from shared.services import warm, testrun; warm.run(["
              f"*testrun.ALREADY_IMPORTED, {str(tmp_path / 'test_probe.py')!r}, '--rootdir={tmp_path}', "
              f"'-c', {str(ROOT / 'pyproject.toml')!r}], {{'PATH': {os.environ['PATH']!r}, "
              f"'PID_FILE': {str(pid_file)!r}}}, Path({str(tmp_path / 'probe.out')!r}), None, "
              f"Path({str(warm_server)!r}))")
    with subprocess.Popen([sys.executable, "-c", client], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, AIC_WARM="1")) as proc:
        try:
            helpers.wait_for(pid_file.exists, "the job to start", seconds=30)
            job = int(pid_file.read_text())
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == -sig or "KeyboardInterrupt" in err, err
    helpers.wait_for(lambda: not warm.alive(job), "the job to be gone")
    assert "KeyboardInterrupt" in (tmp_path / "probe.out").read_text()


def test_a_warm_server_out_of_date_ends_and_the_check_runs_without_it(warm_server, tmp_path):
    """After a git pull or make setup, the server's modules or packages are not what is
    installed: it answers no request, ends, and the check starts a new interpreter (None)."""
    ours = ROOT / "shared/services/inprocess.py"
    times = ours.stat()
    try:
        os.utime(ours, ns=(times.st_atime_ns, times.st_mtime_ns + 1_000_000_000))
        assert warm_probe(warm_server, tmp_path, PROBE_TEST)[0] is None
    finally:
        os.utime(ours, ns=(times.st_atime_ns, times.st_mtime_ns))
    helpers.wait_for(lambda: not warm.ready(warm_server), "the server to end")
    warm.start(warm_server)  # for the fixture's stop
    helpers.wait_for(lambda: warm.ready(warm_server), "a new server", seconds=30)


def test_no_warm_server_with_aic_warm_0(tmp_path, monkeypatch):
    monkeypatch.setenv("AIC_WARM", "0")
    warm.start(tmp_path / "warm")
    assert warm.run(["--version"], {}, tmp_path / "out", 5, tmp_path / "warm") is None
    assert not (tmp_path / "warm").exists()


EXIT_PROBE = """
import atexit, os


def test_exit_probe():
    atexit.register(lambda: open(os.environ["LEFT_BY_ATEXIT"], "w").close())
    print("probe printed")
    assert os.environ["PROBE"] == "passes"
"""


def test_a_job_in_a_new_interpreter_ends_at_once_but_keeps_its_status_output_and_atexit(tmp_path):
    """make check's one job ends its interpreter as soon as pytest is done (inprocess.end_now):
    pytest's exit status, its whole report and what atexit's handlers do are kept."""
    (tmp_path / "test_exit_probe.py").write_text(EXIT_PROBE)
    args = [str(tmp_path / "test_exit_probe.py"), f"--rootdir={tmp_path}", "-c", str(ROOT / "pyproject.toml"),
            "-s"]
    for probe, expected in (("passes", 0), ("fails", 1)):
        left = tmp_path / f"atexit-{probe}"
        env = {"PATH": os.environ["PATH"], "PROBE": probe, "LEFT_BY_ATEXIT": str(left)}
        status, report = testrun.pytest_process(args, env, 60, tmp_path / "probe.jsonl")
        assert status == expected, report
        assert "probe printed" in report and f"1 {'passed' if expected == 0 else 'failed'}" in report, report
        assert left.exists(), report


def test_no_lesson_module_has_the_name_of_a_package_the_jobs_fork_with():
    """A lesson's own module named like a preloaded package would lose to it in a forked job."""
    tree = ast.parse((ROOT / "shared/services/preload.py").read_text())
    packages = next(ast.literal_eval(node.value) for node in tree.body
                    if isinstance(node, ast.Assign) and node.targets[0].id == "PACKAGES")
    preloaded = {name.split(".")[0] for name in packages}
    for lesson in LESSONS:
        own = {p.stem for p in lesson.path.glob("*.py")}
        own |= {p.parent.name for p in lesson.path.glob("*/__init__.py")}
        assert not own & preloaded, (lesson.folder, own & preloaded)


@pytest.mark.parametrize("template", ["missing", "${UNKNOWN}"])
def test_nginx_that_cannot_be_configured_says_why_and_leaves_nothing_behind(template, tmp_path, monkeypatch):
    """A lesson without an nginx.conf (lesson 25's tests on lesson 24's folder) or with a
    placeholder nobody fills in: a ProxyError that says which, and no empty folder left in /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    conf = tmp_path / "nginx.conf"
    if template != "missing":
        conf.write_text(f"server {{ listen {template}; }}\n")
    with pytest.raises(proxy.ProxyError) as error:
        proxy.Nginx(conf, free_port(), "127.0.0.1:1", "127.0.0.1:1").start()
    assert ("no nginx.conf in" if template == "missing" else "${UNKNOWN}") in str(error.value)
    assert [p.name for p in tmp_path.iterdir()] == ([] if template == "missing" else ["nginx.conf"])


@pytest.fixture
def taken_port():
    """A port another program listens on, as when a run beside this one (make check beside make
    test) took the same free port a moment earlier."""
    with socket.create_server(("127.0.0.1", 0)) as other:
        yield other.getsockname()[1]


def test_a_server_whose_free_port_was_taken_meanwhile_starts_on_another(taken_port, monkeypatch):
    """Servers.start never takes another program on its port for its server (that one answered
    with another run's database behind it: a socket test's 1008, page tests failing at random)."""
    ports = iter([taken_port])
    monkeypatch.setattr(helpers, "free_port", lambda: next(ports, None) or free_port())
    servers = Servers()
    try:
        port, proc = servers.start([sys.executable, str(ROOT / "shared" / "coach.py"), "--port", "{port}"],
                                   cwd=ROOT, what="the offline coach")
        assert port != taken_port
        assert listens_on(proc.pid, port) and not listens_on(proc.pid, taken_port)
    finally:
        servers.stop_all()


def test_nginx_on_a_port_another_program_took_says_so(taken_port):
    """nginx that cannot listen is a ProxyError, even though the port answers (another program)."""
    nginx = proxy.Nginx(find("25").path / "nginx.conf", taken_port, "127.0.0.1:1", "127.0.0.1:1")
    with pytest.raises(proxy.ProxyError, match="Address already in use"):
        nginx.start()


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5])
def test_each_relationship_step_of_lesson_19s_demo_does_what_its_readme_says(step, capsys):
    """Lesson 19's relationships_demo.py (the course's, not a learner's) does at each step what its
    README says: a claim of the lesson text, so a repo check, not a requirement of the task."""
    demo = find("19").path / "relationships_demo.py"
    spec = importlib.util.spec_from_file_location("relationships_demo", demo)
    relationships_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(relationships_demo)
    results = relationships_demo.run(step)
    works = {what for what, ok in results.items() if ok}
    expected = {
        1: {"filter by user_id"},
        2: {"filter by user_id", "msg.user.name"},
        3: {"filter by user_id", "msg.user.name", "user.messages", "msg.user_id after the flush"},
        4: {"filter by user_id", "msg.user.name", "user.messages",
            "msg.user = user, then msg in user.messages", "msg.user_id after the flush"},
        5: set(results) - {"msg.user_id before the flush"},
    }[step]
    assert works == expected, capsys.readouterr().out


def test_the_manifest_is_opened_in_one_place():
    """lessons.toml is read by shared/ground/manifest.py only; everything else asks its registry."""
    path_literal = '"lessons' + '.toml"'
    sources = [p for folder in ("shared", "tests") for p in (ROOT / folder).rglob("*.py")]
    assert [str(p.relative_to(ROOT)) for p in sources if path_literal in p.read_text()] == [
        "shared/ground/manifest.py"]


# --- the tests' own tools ------------------------------------------------------------------------

def test_a_reused_tab_keeps_nothing_from_the_test_before(browser, tmp_path):
    """The `page` every page test gets is one tab per module (helpers.ReusedTab): what one test
    leaves in it (a token in localStorage, a cookie, a dialog handler, a route, another wait
    bound, a closed page) must be gone for the next."""
    (tmp_path / "index.html").write_text("<p>page</p>")
    server = serve_folder(tmp_path)
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        with ReusedTab(browser, BROWSER_WAIT_MS) as tab:
            with tab.lent() as page:
                page.goto(f"{url}/index.html")
                page.evaluate("localStorage.setItem('token', 'old'); document.cookie = 'seen=1'")
                page.on("dialog", lambda dialog: dialog.accept())
                page.route("**/faked", lambda route: route.fulfill(body="faked"))
                page.set_default_timeout(1)
            with tab.lent() as page:
                page.goto(f"{url}/index.html")
                assert page.evaluate("[localStorage.getItem('token'), document.cookie]") == [None, ""]
                assert page.evaluate("fetch('/faked').then(r => r.status)") == 404
                assert page.evaluate("confirm('OK?')") is False  # no handler left: dismissed, as by default
                page.locator("p").wait_for()  # the bound is the usual one again, not 1 ms
                page.close()
            with tab.lent() as page:
                page.goto(f"{url}/index.html")
                assert page.text_content("p") == "page"
    finally:
        server.shutdown()
        server.server_close()
