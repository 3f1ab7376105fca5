"""Lesson 08: Postgres in Docker Compose; the dev database answers SELECT NOW(). App as in 07."""

import os
import re
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
import yaml
from dotenv import dotenv_values

from helpers import git_ignores
from shared.ground import devdb
from shared.ground.manifest import find

POSTGRES_KEYS = ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD")
CLOSE_ENOUGH = timedelta(seconds=5)


def lesson_file(lesson, name):
    path = lesson.path / name
    if not path.is_file():
        pytest.fail(f"no {name} in {lesson.path}")
    return path


@pytest.fixture(scope="module")
def compose(lesson) -> dict:
    return yaml.safe_load(lesson_file(lesson, "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def db_service(compose) -> dict:
    return compose["services"]["db"]


@pytest.fixture(scope="module")
def docker_env(lesson) -> dict:
    return dotenv_values(lesson_file(lesson, "docker.env.example"))


def test_compose_file_is_valid_yaml_with_services(compose):
    assert isinstance(compose, dict), compose
    assert isinstance(compose.get("services"), dict), compose


def test_compose_has_a_db_service(compose):
    assert "db" in compose["services"], compose["services"]


def test_image_is_postgres_with_a_pinned_version(db_service):
    image = db_service.get("image", "")
    match = re.fullmatch(r"postgres:([\w.-]+)", image)
    assert match, f"want postgres:<version>, got {image!r}"
    assert match[1] != "latest", image
    assert re.match(r"\d", match[1]), f"tag should start with a version number: {image!r}"


def test_every_lesson_folder_shares_one_compose_project(compose):
    """Every lesson folder shares one compose project: name: ai-interview-coach"""
    assert compose.get("name") == "ai-interview-coach", compose.get("name")


def test_container_is_named_interview_db(db_service):
    """The container is named interview-db"""
    assert db_service.get("container_name") == "interview-db", db_service


def test_host_port_5433_maps_to_container_port_5432(db_service):
    # "5433:5432", optionally bound to one address first ("127.0.0.1:5433:5432").
    pairs = [str(p).split(":")[-2:] for p in db_service.get("ports", [])]
    assert ["5433", "5432"] in pairs, db_service.get("ports")


def test_port_is_open_to_this_machine_only(db_service):
    assert db_service.get("ports") == ["127.0.0.1:5433:5432"], db_service.get("ports")


def test_settings_come_from_docker_env(db_service):
    """Settings come from docker.env"""
    env_file = db_service.get("env_file")
    assert env_file in ("docker.env", ["docker.env"]), env_file


def test_data_lives_in_a_named_volume(compose, db_service):
    declared = compose.get("volumes") or {}
    mounted = [str(v).split(":")[0] for v in db_service.get("volumes", [])]
    named = [name for name in mounted if name in declared]
    assert named, f"service volumes {mounted} vs top-level volumes {list(declared)}"


def test_named_volume_holds_the_postgres_data(db_service):
    targets = [str(v).split(":")[1] for v in db_service.get("volumes", []) if ":" in str(v)]
    # Postgres 18's image keeps its data below /var/lib/postgresql (older images used .../data).
    assert "/var/lib/postgresql" in [t.rstrip("/") for t in targets], targets


def test_has_a_healthcheck(db_service):
    healthcheck = db_service.get("healthcheck") or {}
    assert "pg_isready" in str(healthcheck.get("test")), healthcheck


def test_docker_env_example_has_the_three_postgres_settings(docker_env):
    """docker.env.example has the three Postgres settings"""
    assert {key: bool(docker_env.get(key)) for key in POSTGRES_KEYS} == dict.fromkeys(POSTGRES_KEYS, True), \
        docker_env


def test_docker_env_example_matches_the_apps_settings_in_lesson_09(docker_env):
    """docker.env.example holds the course's database name, user and password (lesson 09's app uses them)"""
    app_env = dotenv_values(find("09").path / ".env.example")
    assert (docker_env["POSTGRES_DB"], docker_env["POSTGRES_USER"], docker_env["POSTGRES_PASSWORD"]) == \
        (app_env["DB_NAME"], app_env["DB_USER"], app_env["DB_PASSWORD"])
    assert app_env["DB_PORT"] == "5433", app_env


def test_docker_env_is_git_ignored(lesson, tmp_path):
    """docker.env is git-ignored"""
    assert git_ignores(lesson.path, "docker.env", tmp_path), "docker.env would be committed"


def test_docker_env_example_is_not_git_ignored(lesson, tmp_path):
    """docker.env.example is committed (not git-ignored)"""
    assert not git_ignores(lesson.path, "docker.env.example", tmp_path), "it must be committed"


def test_dev_database_answers_select_now_with_these_credentials(db_env, docker_env):
    server = devdb.settings()  # the server `make db` starts: host 127.0.0.1, port 5433
    conn = psycopg2.connect(host=server["host"], port=server["port"], dbname=docker_env["POSTGRES_DB"],
                            user=docker_env["POSTGRES_USER"], password=docker_env["POSTGRES_PASSWORD"],
                            connect_timeout=3)
    try:
        conn.set_session(readonly=True)  # the learner's database: look, never write
        with conn.cursor() as cur:
            cur.execute("SELECT NOW();")
            now = cur.fetchone()[0]
        conn.rollback()
    finally:
        conn.close()
    # 5433 by convention; DEVDB_PORT moves a second copy of the course (a CI rehearsal) aside.
    assert server["port"] == int(os.environ.get("DEVDB_PORT", "5433")), server
    assert abs(now - datetime.now(UTC)) < CLOSE_ENOUGH, now


def test_app_still_works_as_in_lesson_07(client):
    r = client.post("/api/users", json={"name": "Ada", "role": "developer", "place": "London"})
    assert r.status_code == 201, r.text
    r = client.get(f"/api/users/{r.json()['id']}")
    assert r.json() == {"id": r.json()["id"], "name": "Ada", "role": "developer", "place": "London"}, r.text
