"""The course's command line, called by the Makefile: help, check, resolve, run, settings, diff,
diffs, table, numbers.

`make` is the front door; this file does the work behind it. Everything but `run` and
`settings` uses only the standard library, so it works before `make setup`. `run` gives each
lesson's .env the dev database's real settings (docker.env is their one source), so the app
connects under make run and under a plain `uvicorn main:app` in the folder alike.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lessons import ROOT, Lesson, UnknownLesson, all_lessons, find, previous, valid_list

# The ports of make run (the curriculum's); tests move them with AIC_*_PORT to run beside yours.
API_PORT = int(os.environ.get("AIC_API_PORT", "8000"))
PAGES_PORT = int(os.environ.get("AIC_PAGES_PORT", "8001"))
COACH_PORT = int(os.environ.get("AIC_COACH_PORT", "8002"))
# `make help`, in two groups: what a learner types, then what an instructor or maintainer types.
# One line per target: (group, target, what it does). Add yours with a small edit.
LEARN, MAINTAIN = "Learning (start here)", "Teaching and maintaining"
TARGETS = [
    (LEARN, "run LESSON=NN", "run a lesson with everything it needs; Ctrl-C stops it all"),
    (LEARN, "diff LESSON=NN", "what lesson NN changed since the previous one (or FROM=05 TO=09)"),
    (LEARN, "test LESSON=NN", "a lesson's tests (DIR=path grades your own folder with them)"),
    (LEARN, "start LESSON=NN", "do lesson NN yourself in workspace/ (a copy of the lesson before)"),
    (LEARN, "check LESSON=NN", "grade your workspace folder: a checklist with a hint"),
    (LEARN, "run LESSON=NN MINE=1", "run your workspace folder instead of the model answer"),
    (LEARN, "solution LESSON=NN", "your workspace folder against the model answer (a diff)"),
    (LEARN, "progress", "which lessons you have passed (make check records them)"),
    (LEARN, "site / site-serve", "the course as a website in build/site/ (offline); serve it on :8080"),
    (LEARN, "db / db-stop / db-status", "start, stop, or ask who answers: the development Postgres"),
    (LEARN, "db-reset CONFIRM=1", "delete the development data (after changing docker.env, say)"),
    (LEARN, "psql", "a psql prompt on the development database"),
    (LEARN, "alembic LESSON=NN ARGS=..", "an alembic command in a lesson folder, e.g. ARGS=\"history\""),
    (LEARN, "setup", "create .venv with the pinned requirements (other targets do it for you)"),
    (LEARN, "clean", "remove caches and build/ (keeps .venv and your database)"),
    (LEARN, "help", "this list"),
    (MAINTAIN, "test", "test every lesson and the repo checks, two at a time"),
    (MAINTAIN, "test PREVIOUS=1", "how many of each lesson's tests fail on the lesson before it"),
    (MAINTAIN, "diffs", "every lesson's diff, written to build/diffs/"),
    (MAINTAIN, "lint", "ruff over lessons, shared and tests"),
    (MAINTAIN, "bench", "measure database start and make run times (ARGS=--tests adds make test)"),
    (MAINTAIN, "bench-stream", "streaming under load, lessons 20-21 (make bench runs it too)"),
    (MAINTAIN, "fuzz LESSON=NN", "Schemathesis against the lesson's API, every check (EXAMPLES=n, ARGS=..)"),
    (MAINTAIN, "table", "the README's lesson table, from shared/lessons.toml"),
    (MAINTAIN, "numbers", "the lesson numbers as JSON (CI's test matrix)"),
]
# Left out of diffs: README.md, the lesson text, which is new in every lesson anyway, and (when
# git cannot say what it ignores) what a learner's folder may hold besides the lesson.
IGNORED = {"__pycache__", ".env", "docker.env", ".venv", ".pytest_cache", ".ruff_cache", ".DS_Store",
           "README.md"}


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def cmd_help(_args) -> None:
    print("AI Interview Coach: a FastAPI course in small steps\n\nLessons:")
    for lesson in all_lessons():
        print(f"  {lesson.number}  {lesson.title:<28} {lesson.summary}")
    for group in (LEARN, MAINTAIN):
        print(f"\n{group}:")
        for _, target, text in (t for t in TARGETS if t[0] == group):
            print(f"  make {target:<26} {text}")
    print("\nStart here: make run LESSON=02   then open http://localhost:8000/docs")


def cmd_check(args) -> None:
    """Validate the Makefile's variables; print one line (the error) or nothing."""
    goals = set(args.goals.split())
    try:
        needing = sorted(goals & {"run", "diff", "alembic", "fuzz"})
        if "diff" in goals and bool(args.from_) != bool(args.to):
            given, missing = ("FROM", "TO") if args.from_ else ("TO", "FROM")
            raise UnknownLesson(f"make diff with {given}= needs {missing}= too, e.g. make diff FROM=05 TO=09 "
                                "(or LESSON=09 for one step)")
        if needing and not (args.lesson or (args.from_ and args.to)):
            raise UnknownLesson(f"which lesson? e.g. make {needing[0]} LESSON=09 (valid: {valid_list()})")
        if "alembic" in goals and not (find(args.lesson).path / "alembic").is_dir():
            with_alembic = " ".join(x.number for x in all_lessons() if (x.path / "alembic").is_dir())
            raise UnknownLesson(f"lesson {find(args.lesson).number} has no alembic/ folder "
                                f"(lessons with one: {with_alembic})")
        for value in (args.lesson, args.from_, args.to):
            if value:
                find(value)
        if "diff" in goals and args.lesson and not args.from_ and previous(find(args.lesson)) is None:
            raise UnknownLesson(f"lesson {find(args.lesson).number} is the first: nothing before it to diff")
    except UnknownLesson as error:
        print(error)


def cmd_resolve(args) -> None:
    print(find(args.lesson).folder)


def cmd_numbers(_args) -> None:
    """The lesson numbers as a JSON list (the GitHub workflow's matrix)."""
    print(json.dumps([lesson.number for lesson in all_lessons()]))


def manifest_data() -> dict:
    import tomllib

    from lessons import MANIFEST

    with MANIFEST.open("rb") as f:
        return tomllib.load(f)


def cmd_table(_args) -> None:
    print("| # | Lesson | What it adds | Needs |")
    print("|---|---|---|---|")
    for lesson in all_lessons():
        needs = ", ".join({"db": "database", "frontend": "front end", "llm": "LLM"}[n]
                          for n in lesson.needs) or "-"
        print(f"| {lesson.number} | [{lesson.title}](lessons/{lesson.folder}/README.md) "
              f"| {lesson.summary} | {needs} |")
    coming = [c for c in manifest_data().get("coming", []) if c["number"] not in
              {lesson.number for lesson in all_lessons()}]
    if coming:
        print("\nComing: " + ", ".join(f"{c['number']} {c['title']}" for c in coming)
              + " (being written; not in lessons/ yet).")


# --- diff ---------------------------------------------------------------------------------

def lesson_files(folder: Path) -> list[Path]:
    """The files of a lesson folder, leaving out README.md and what git ignores (caches,
    secrets, virtualenvs); outside a git checkout, what IGNORED names."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=folder, capture_output=True, text=True, check=False)
    if listed.returncode == 0:
        files = [Path(name) for name in listed.stdout.split("\0") if name]
    else:
        files = [p.relative_to(folder) for p in folder.rglob("*") if p.suffix != ".pyc"]
    return sorted(f for f in files if (folder / f).is_file() and not IGNORED & set(f.parts))


def git_diff(old: Path, new: Path, color: bool, out=None) -> None:
    """`git diff --no-index` over clean copies, so paths read 04-name/main.py -> 05-name/main.py."""
    with tempfile.TemporaryDirectory() as tmp:
        for folder in (old, new):
            for rel in lesson_files(folder):
                target = Path(tmp, folder.name, rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(folder / rel, target)
            Path(tmp, folder.name).mkdir(exist_ok=True)
        result = subprocess.run(
            ["git", "--no-pager", "diff", "--no-index", "--stat", "--patch", "--no-prefix", "-M",
             f"--color={'always' if color else 'never'}", old.name, new.name],
            cwd=tmp, stdout=out, check=False,
        )
        if result.returncode > 1:
            fail("git diff failed")


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


def cmd_diff(args) -> None:
    if args.from_ and args.to:
        old, new = find(args.from_), find(args.to)
    else:
        new = find(args.lesson)
        old = previous(new) or new
    print(diff_header(old, new), flush=True)
    git_diff(old.path, new.path, color=sys.stdout.isatty())


def cmd_diffs(_args) -> None:
    out_dir = ROOT / "build" / "diffs"
    out_dir.mkdir(parents=True, exist_ok=True)
    lessons = all_lessons()
    for old, new in zip(lessons, lessons[1:], strict=False):
        with open(out_dir / f"{new.folder}.diff", "w") as out:
            out.write(diff_header(old, new) + "\n")
            out.flush()
            git_diff(old.path, new.path, color=False, out=out)
    from website import write_diff_index

    index = write_diff_index(out_dir)
    print(f"wrote {len(lessons) - 1} diffs to {out_dir.relative_to(ROOT)}/ (index: {index.name})")


# --- run ----------------------------------------------------------------------------------

def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def env_line(key: str, value: str) -> str:
    """KEY=value as python-dotenv reads it back: quoted when the value has spaces, # or quotes."""
    if re.fullmatch(r"[\w.:/@+,-]*", value):
        return f"{key}={value}"
    if "'" not in value:
        return f"{key}='{value}'"
    return f'{key}="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def same(key: str, old: str | None, new: str) -> bool:
    """Equal settings; for DB_HOST, localhost and 127.0.0.1 are one (the dev server is on both)."""
    loopback = {"localhost", "127.0.0.1"}
    return old == new or (key == "DB_HOST" and {old, new} <= loopback)


def owned_settings(lesson: Lesson, example: Path, current: dict) -> dict:
    """The lines of a settings file that make run keeps for the learner: the dev database's real
    settings (docker.env is their one source) and a generated JWT_SECRET where none is set."""
    from dotenv import dotenv_values

    import devdb

    wanted = {}
    if "db" in lesson.needs:
        server = devdb.settings()
        wanted.update(devdb.dev_env())
        wanted.update(POSTGRES_DB=server["dbname"], POSTGRES_USER=server["user"],
                      POSTGRES_PASSWORD=server["password"])
    if dotenv_values(example).get("JWT_SECRET") == "" and not current.get("JWT_SECRET"):
        wanted["JWT_SECRET"] = secrets.token_urlsafe(32)
    return wanted


def write_settings(lesson: Lesson, folder: Path) -> None:
    """Every *.example in the folder -> its real file (0600: it holds secrets), created when
    missing and kept in step with owned_settings(); the learner's other lines stay as they are."""
    from dotenv import dotenv_values

    import devdb

    for example in sorted(folder.glob("*.example")):
        real = example.with_suffix("")
        created = not real.exists()
        source = example if created else real
        lines, current = source.read_text().splitlines(), dotenv_values(source)
        wanted = owned_settings(lesson, example, {} if created else current)
        changed = []
        for i, line in enumerate(lines):
            match = re.match(r"\s*(?:export\s+)?([A-Za-z_]\w*)\s*=", line)
            key = match and match[1]
            if key in wanted:
                value = wanted.pop(key)
                if not same(key, current.get(key), value):
                    lines[i] = env_line(key, value)
                    changed.append(key)
        # Lines the example has and the learner's file lost come back.
        for key, value in wanted.items():
            if key in dotenv_values(example):
                lines.append(env_line(key, value))
                changed.append(key)
        if created or changed:
            devdb.write_private(real, "\n".join(lines) + "\n")
        real.chmod(0o600)
        # Names only: the values are secrets.
        secret = " and a new JWT_SECRET" if "JWT_SECRET" in changed else ""
        followed = [key for key in changed if key != "JWT_SECRET"]
        if created:
            kept = "" if "db" not in lesson.needs else (
                "; make run keeps its DB_* lines in step with docker.env, edit the others freely"
                if real.name == ".env" else " (for docker compose there), with the values of docker.env")
            print(f"created {shown(real)} from {example.name}{secret}{kept}")
        elif followed:
            print(f"updated {', '.join(followed)} in {shown(real)} to follow docker.env{secret}")
        elif secret:
            print(f"wrote a new JWT_SECRET into {shown(real)}")


def folder_settings(folder: Path) -> dict:
    """The settings the app in `folder` will see: its .env, overridden by the environment."""
    from dotenv import dotenv_values

    return {**dotenv_values(folder / ".env"), **os.environ}


def alembic_lessons() -> list[Lesson]:
    return [x for x in all_lessons() if (x.path / "alembic").is_dir()]


def knows(lesson_folder: Path, revision: str) -> bool:
    """Do the migrations in this folder include `revision`?"""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    scripts = ScriptDirectory.from_config(Config(str(lesson_folder / "alembic.ini")))
    try:
        return scripts.get_revision(revision) is not None
    except (RevisionError, CommandError):
        return False


def schema_conflict(lesson: Lesson, folder: Path | None = None) -> str | None:
    """Why the lesson's app cannot use the database as a later lesson migrated it, and the one
    command that steps it back; None when it can. A lesson from before Alembic on a table lesson
    15 changed (role and place dropped) would answer 500s; a lesson with migrations cannot
    upgrade from a revision only a later lesson knows."""
    import psycopg2
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    folder = folder or lesson.path
    migrating = alembic_lessons()
    own = (folder / "alembic").is_dir()
    keeps_tables = own or any((folder / name).exists() for name in ("schema.sql", "models.py"))
    if not migrating or not keeps_tables:
        return None
    import devdb

    settings = {**devdb.dev_env(), **folder_settings(folder)}  # make run writes .env before this
    try:
        conn = psycopg2.connect(host=settings.get("DB_HOST"), port=settings.get("DB_PORT"),
                                dbname=settings.get("DB_NAME"), user=settings.get("DB_USER"),
                                password=settings.get("DB_PASSWORD"), connect_timeout=3)
    except psycopg2.Error:
        return None  # the app itself will report an unreachable database
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
            row = None
            if cur.fetchone()[0]:
                cur.execute("SELECT version_num FROM alembic_version")
                row = cur.fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    revision = row[0]
    scripts_of = migrating[0].path if not own else folder
    target = ScriptDirectory.from_config(Config(str(scripts_of / "alembic.ini")))
    wanted = target.get_current_head() if own else target.get_base()
    if (own and knows(folder, revision)) or (not own and revision == wanted):
        return None
    newer = next((x for x in migrating if knows(x.path, revision)), None)  # the one that made it
    if newer is None:
        return (f"database {settings.get('DB_NAME')} is at alembic revision {revision}, which no lesson "
                f"knows: start it over with make db-reset CONFIRM=1 (deletes its data)")
    return (f"lesson {lesson.number} cannot run on database {settings.get('DB_NAME')} as it is: lesson "
            f"{newer.number} migrated it (alembic revision {revision}), so its tables are not the ones "
            f"lesson {lesson.number} expects. Step it back first (your data stays where the schema allows):\n"
            f'  make alembic LESSON={newer.number} ARGS="downgrade {wanted}"')


def prepare(lesson: Lesson, folder: Path) -> None:
    """What the app in `folder` needs before it starts: settings, database, migrations."""
    write_settings(lesson, folder)
    if "db" not in lesson.needs:
        return
    subprocess.run([sys.executable, str(ROOT / "shared" / "devdb.py"), "up"], check=True)
    conflict = schema_conflict(lesson, folder)
    if conflict:
        fail(f"\n{conflict}\n")
    if (folder / "alembic").is_dir():
        print("migrations: alembic upgrade head", flush=True)
        subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=folder, check=True)


def real_key(key: str | None) -> bool:
    """An OPENAI_API_KEY that could be real: not empty and not a placeholder such as sk-..."""
    key = (key or "").strip()
    return bool(key) and not re.search(r"\.\.\.|<|your|change|placeholder|xxx", key, re.IGNORECASE)


def llm_setup(folder: Path) -> tuple[dict, str, list | None]:
    """(environment for the app, the banner's LLM line, the coach's command or None)."""
    settings = folder_settings(folder)
    base, model = settings.get("OPENAI_BASE_URL"), settings.get("OPENAI_MODEL")
    named = f"model {model}" if model else "the app's default model"
    if base:  # a server of the learner's choice (Ollama, say): it may want no key, the client does
        extra = {} if real_key(settings.get("OPENAI_API_KEY")) else {"OPENAI_API_KEY": "unused"}
        return extra, f"the OpenAI-compatible server at {base} ({named})", None
    if real_key(settings.get("OPENAI_API_KEY")):
        return {}, f"OpenAI ({named})", None
    coach = ROOT / "shared" / "coach.py"
    if not coach.is_file():
        return {}, ("none: no OPENAI_API_KEY in .env and no offline coach (shared/coach.py) yet, "
                    "so chat answers 502"), None
    base = f"http://127.0.0.1:{COACH_PORT}/v1"
    return ({"OPENAI_BASE_URL": base, "OPENAI_API_KEY": "offline-coach"},
            f"the offline coach at {base} (shared/coach.py; put an OPENAI_API_KEY in "
            f"{shown(folder / '.env')} for OpenAI)",
            [str(coach), "--host", "127.0.0.1", "--port", str(COACH_PORT)])


def page_origin(settings: dict) -> tuple[str, str]:
    """(base URL to print for the pages, a note when the API would refuse them)."""
    if settings.get("CORS_ORIGINS") is None:
        return f"http://localhost:{PAGES_PORT}", ""  # the app's own default
    allowed = [o.strip().rstrip("/") for o in settings["CORS_ORIGINS"].split(",")]
    works = [f"http://{host}:{PAGES_PORT}" for host in ("localhost", "127.0.0.1")
             if f"http://{host}:{PAGES_PORT}" in allowed]
    if len(works) == 2:
        return works[0], ""
    if works:
        other = works[0].replace("localhost", "127.0.0.1") if "localhost" in works[0] else \
            works[0].replace("127.0.0.1", "localhost")
        return works[0], f"  (exactly this address: CORS_ORIGINS in .env does not list {other})"
    return (f"http://localhost:{PAGES_PORT}",
            f"  (CORS_ORIGINS in .env lists neither http://localhost:{PAGES_PORT} nor "
            f"http://127.0.0.1:{PAGES_PORT}: the pages cannot call the API)")


def run_folder(lesson: Lesson, folder: Path) -> None:
    """Serve `folder` (the lesson's snapshot, or a learner's copy of it) with what `lesson` needs,
    print where to find it all, and stop everything on Ctrl-C."""
    has_api = (folder / lesson.app_file).is_file()  # main.py, or app/main.py (lessons.toml's `app`)
    has_pages = "frontend" in lesson.needs and (folder / "frontend").is_dir()
    needs_llm = "llm" in lesson.needs
    ports = [API_PORT] + [PAGES_PORT] * has_pages
    busy = [str(p) for p in ports if not port_free(p)]
    if busy:
        fail(f"port {' and '.join(busy)} is already in use: stop the other server (another make run?) first")
    try:
        prepare(lesson, folder)
    except subprocess.CalledProcessError:
        fail(f"could not prepare lesson {lesson.number} (see the message above)")

    commands, app_env = [], dict(os.environ)
    where = "" if folder == lesson.path else f" ({shown(folder)})"
    print(f"\nLesson {lesson.number}: {lesson.title}{where}")
    if needs_llm:
        extra, llm_line, coach = llm_setup(folder)
        app_env.update(extra)
        if coach:
            if not port_free(COACH_PORT):
                fail(f"port {COACH_PORT} is already in use: stop the other server (another make run?) first")
            commands.append((coach, ROOT))
    if has_api:
        commands.append((["-m", "uvicorn", lesson.app, "--reload", "--host", "127.0.0.1",
                          "--port", str(API_PORT)], folder))
        print(f"  API docs: http://localhost:{API_PORT}/docs  (Swagger UI: try every endpoint)")
    else:
        commands.append((["-m", "http.server", str(API_PORT), "--bind", "127.0.0.1"], folder))
        print(f"  Page:     http://localhost:{API_PORT}/")
    if "db" in lesson.needs:
        import devdb

        server = devdb.settings()
        print(f"  Database: {server['dbname']} on {server['host']}:{server['port']} as {server['user']} "
              "(make psql opens a prompt)")
    if has_pages:
        commands.append((["-m", "http.server", str(PAGES_PORT), "--bind", "127.0.0.1"], folder / "frontend"))
        origin, note = page_origin(folder_settings(folder))
        pages = sorted(p.name for p in (folder / "frontend").glob("*.html"))
        print("  Pages:    " + "  ".join(f"{origin}/{p}" for p in pages) + note)
    if needs_llm:
        print(f"  LLM:      {llm_line}")
    print("Press Ctrl-C to stop.\n", flush=True)

    # Ctrl-C (SIGINT) or a plain `kill` (SIGTERM) stop everything started here, even when this
    # process was started in the background (where a shell would have it ignore SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    children = [subprocess.Popen([sys.executable, *argv], cwd=cwd, env=app_env) for argv, cwd in commands]
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.3)
    except KeyboardInterrupt:
        pass
    finally:
        # A terminal's Ctrl-C reached the children too; a second one would make them print tracebacks.
        deadline = time.monotonic() + 1
        while any(child.poll() is None for child in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
    print("\nstopped.")


def cmd_run(args) -> None:
    lesson = find(args.lesson)
    run_folder(lesson, lesson.path)


def cmd_settings(args) -> None:
    """The lesson's .env as make run writes it (make alembic runs this first)."""
    lesson = find(args.lesson)
    write_settings(lesson, lesson.path)


def main() -> None:
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("help").set_defaults(func=cmd_help)
    sub.add_parser("table").set_defaults(func=cmd_table)
    sub.add_parser("numbers").set_defaults(func=cmd_numbers)
    sub.add_parser("diffs").set_defaults(func=cmd_diffs)
    for name, func in (("check", cmd_check), ("diff", cmd_diff)):
        p = sub.add_parser(name)
        p.add_argument("--goals", default="")
        p.add_argument("--lesson", default="")
        p.add_argument("--from", dest="from_", default="")
        p.add_argument("--to", default="")
        p.set_defaults(func=func)
    for name, func in (("resolve", cmd_resolve), ("run", cmd_run), ("settings", cmd_settings)):
        p = sub.add_parser(name)
        p.add_argument("lesson")
        p.set_defaults(func=func)
    args = parser.parse_args()
    os.chdir(ROOT)
    try:
        args.func(args)
    except UnknownLesson as error:
        fail(str(error), code=2)


if __name__ == "__main__":
    main()
