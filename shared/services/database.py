"""The database a lesson's app runs on: the dev server up, its schema checked, migrations run.

Lessons 15 on migrate with Alembic; earlier ones create their tables themselves. Going back to an
earlier lesson on a database a later one migrated would answer 500s, so make run stops first
with the one command that steps the database back.
"""

import subprocess
import sys
from pathlib import Path

import httpx2
import psycopg2
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from shared.ground import devdb
from shared.ground.manifest import Lesson, all_lessons
from shared.services.settings import folder_settings, write_settings


class NotReady(Exception):
    """The folder's app cannot start on the database as it is; the message says what to do."""


def alembic_lessons() -> list[Lesson]:
    return [x for x in all_lessons() if (x.path / "alembic").is_dir()]


def knows(lesson_folder: Path, revision: str) -> bool:
    """Do the migrations in this folder include `revision`?"""
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
    folder = folder or lesson.path
    migrating = alembic_lessons()
    own = (folder / "alembic").is_dir()
    keeps_tables = own or any((folder / name).exists() for name in ("schema.sql", "models.py"))
    if not migrating or not keeps_tables:
        return None
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
    """What the app in `folder` needs before it starts: settings, database, migrations.
    Raises NotReady (or devdb.DevDBError) with the one thing to do when it cannot start."""
    write_settings(lesson, folder)
    if "db" not in lesson.needs:
        return
    print(devdb.ensure_running(), flush=True)
    conflict = schema_conflict(lesson, folder)
    if conflict:
        raise NotReady(conflict)
    if (folder / "alembic").is_dir():
        print("migrations: alembic upgrade head", flush=True)
        if subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=folder).returncode:
            raise NotReady("alembic upgrade head failed (see above)")


def bench_users(api_url: str, db_env: dict, count: int) -> list[int]:
    """`count` users for a benchmark, their ids: one signed up through the app at api_url (so its
    password hash is the app's own), the rest copies of its row, straight into the table."""
    signup = {"name": "Bench", "email": "bench0@example.com", "password": "bench-password"}
    r = httpx2.post(f"{api_url}/api/users", json=signup, timeout=30)
    if r.status_code != 201:
        raise NotReady(f"signup: {r.status_code} {r.text}")
    conn = psycopg2.connect(host=db_env["DB_HOST"], port=db_env["DB_PORT"], dbname=db_env["DB_NAME"],
                            user=db_env["DB_USER"], password=db_env["DB_PASSWORD"])
    with conn, conn.cursor() as cur:  # copies of the first user (same password hash), committed
        cur.execute("INSERT INTO users (name, email, password_hash) "
                    "SELECT 'Bench', 'bench' || i || '@example.com', password_hash "
                    "FROM users, generate_series(1, %s) AS i WHERE email = 'bench0@example.com'",
                    (count - 1,))
        cur.execute("SELECT id FROM users ORDER BY id")
        ids = [row[0] for row in cur.fetchall()]
    conn.close()
    return ids
