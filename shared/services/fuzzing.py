"""make fuzz LESSON=NN: Schemathesis against a running lesson, with every check it has.

The lesson's app runs in uvicorn on a free port. A lesson that needs the database gets a
database of this run's own (aic_fuzz_NN_<random>, migrated with `alembic upgrade head` when the
lesson has Alembic, dropped at the end), so two runs never collide and the learner's aic_db is
never touched. Schemathesis reads the app's /openapi.json and checks every answer against it:
no 5xx, only documented status codes, bodies matching their schemas, bad input refused, good
input accepted.

An app with a login (POST /api/login) is fuzzed twice: once anonymously, once logged in
(fuzz_hooks.py signs up a user of its own and sends its bearer token with every request, and
signs up another when the fuzzer deleted the first). Each pass prints, per operation, how many
cases it sent and how many carried a valid token.

One check is left out: allow_header_conformance. For a method a path does not have (OPTIONS
/api/users/1), Starlette answers 405 with the Allow header of the first route on that path
(GET), not of all of them; that is the framework's routing, not something a lesson teaches.
And one failure is accepted (fuzz_hooks.py): a password the schema allows (72 characters)
that the API refuses for being over bcrypt's 72 bytes, a rule JSON Schema cannot express.

The app hashes with bcrypt at cost 4, not the lessons' 12 (as the course's tests do, see
tests/conftest.py): the fuzzer signs up, logs in and changes passwords hundreds of times, and at
cost 12 those hashes were four fifths of the CPU a run of lesson 21 took. The hashes are real
bcrypt all the same, and no answer's status or body depends on the cost.
"""

import json
import os
import secrets
import subprocess
import sys
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from shared.ground import devdb
from shared.ground.manifest import Lesson
from shared.ground.paths import BUILD, shown
from shared.services.processes import Server, ServerFailed, coach_argv, uvicorn_argv

SCHEMATHESIS = Path(sys.executable).with_name("st")
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
# uvicorn as `python -m uvicorn` runs it, with passlib's bcrypt at cost 4 (lessons 11-23 take
# passlib's default; 24 on read BCRYPT_ROUNDS, set in app_env).
FAST_BCRYPT_UVICORN = ("import sys, passlib.hash, uvicorn.main; passlib.hash.bcrypt.default_rounds = 4; "
                       "sys.argv[0] = 'uvicorn'; uvicorn.main.main()")


class CannotFuzz(Exception):
    """The lesson cannot be fuzzed (no API, no Schemathesis, an app that does not start)."""


@dataclass
class Pass:
    name: str                       # "anonymous" or "logged in"
    exitstatus: int                 # Schemathesis's: 0 when nothing was flagged
    counts: dict[str, dict]         # per operation: {"cases": n, "with_token": n}


def app_env(lesson: Lesson, folder: Path, database: str) -> dict:
    """The environment of the app under test: a database of its own and a made-up secret. From
    lesson 24 on the app counts signups and failed logins per client address, and the fuzzer is
    one address that makes hundreds of each: those budgets are raised (earlier lessons ignore
    the settings). A 429 from any other budget is documented, and fine. BCRYPT_ROUNDS: bcrypt at
    cost 4 (see the module's docstring)."""
    env = dict(os.environ, JWT_SECRET=secrets.token_urlsafe(32), SIGNUPS_PER_ADDRESS="1000000",
               LOGIN_FAILURES_PER_ADDRESS="1000000", BCRYPT_ROUNDS="4")
    if "db" in lesson.needs:
        env.update(devdb.create_test_database(database))
        if (folder / "alembic").is_dir():
            subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=folder, env=env,
                           check=True, capture_output=True)
    return env


def has_login(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as r:
        return "/api/login" in json.load(r).get("paths", {})


def schemathesis(url: str, name: str, max_examples: int, extra: list[str], login: bool) -> Pass:
    counts = BUILD / f"fuzz-counts-{os.getpid()}-{secrets.token_hex(4)}.json"
    command = [str(SCHEMATHESIS), "run", f"{url}/openapi.json", "--checks", "all",
               "--exclude-checks", "allow_header_conformance", "--max-examples", str(max_examples),
               "--workers", "1", "--generation-database", "none", "--no-color", *extra]
    print(f"\n--- {name}: {' '.join(command[1:])}", flush=True)
    env = dict(os.environ, SCHEMATHESIS_HOOKS=str(HOOKS), FUZZ_COUNTS=str(counts), FUZZ_API=url,
               FUZZ_LOGIN="1" if login else "")
    # Schemathesis writes its cache and reports under the current folder: keep them in build/.
    status = subprocess.run(command, cwd=BUILD, env=env).returncode
    found = json.loads(counts.read_text()) if counts.exists() else {}
    counts.unlink(missing_ok=True)
    return Pass(name, status, found)


def counts_table(passes: list[Pass]) -> str:
    operations = sorted({op for p in passes for op in p.counts})
    head = ["operation", *(f"{p.name}: cases" for p in passes)]
    if any(p.name == "logged in" for p in passes):
        head.append("with a valid token")
    rows = [head]
    for op in operations:
        row = [op, *(str(p.counts.get(op, {}).get("cases", 0)) for p in passes)]
        if len(head) > len(passes) + 1:
            logged = next(p for p in passes if p.name == "logged in")
            row.append(str(logged.counts.get(op, {}).get("with_token", 0)))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def fuzz(lesson: Lesson, folder: Path, max_examples: int = 50, extra: list[str] | None = None,
         report: Path | None = None) -> int:
    """Runs the passes; prints the per-operation table (and writes it to `report` as JSON);
    returns 0 when nothing was flagged."""
    if not lesson.has_api(folder):
        raise CannotFuzz(f"{shown(folder)} has no {lesson.app_file(Path())}: "
                         f"lesson {lesson.number} has no API")
    if not SCHEMATHESIS.exists():
        raise CannotFuzz(f"no {SCHEMATHESIS}: run make setup (schemathesis is in requirements-dev.txt)")
    BUILD.mkdir(exist_ok=True)
    database = f"aic_fuzz_{lesson.number}_{secrets.token_hex(4)}"
    log = BUILD / f"fuzz-{lesson.number}-{database[-8:]}.log"
    servers = []
    try:
        try:
            env = app_env(lesson, folder, database)
            if "llm" in lesson.needs:  # the offline coach answers (no delay), so chats get 200s
                servers.append(Server(coach_argv("--token-delay", "0"), BUILD, dict(os.environ),
                                      "the offline coach"))
                env.update(OPENAI_BASE_URL=f"{servers[0].url}/v1", OPENAI_API_KEY="offline-coach-fuzz")
            argv = uvicorn_argv(lesson, "--no-access-log")
            argv[1:3] = ["-c", FAST_BCRYPT_UVICORN]  # in place of "-m", "uvicorn"
            api = Server(argv, folder, env,
                         f"lesson {lesson.number}'s app", log=log)
            servers.append(api)
        except ServerFailed as error:
            for server in servers:
                server.stop()
            raise CannotFuzz(str(error)) from None
        try:
            print(f"lesson {lesson.number} on {api.url} (database {database}; the app's log: {shown(log)})")
            passes = [schemathesis(api.url, "anonymous", max_examples, extra or [], login=False)]
            if has_login(api.url):
                passes.append(schemathesis(api.url, "logged in", max_examples, extra or [], login=True))
        finally:
            for server in servers:
                server.stop()
    finally:
        if "db" in lesson.needs:
            devdb.drop_database(database)
    print(f"\nlesson {lesson.number}: cases per operation\n{counts_table(passes)}")
    if report:
        report.write_text(json.dumps({"passes": [asdict(p) for p in passes]}, indent=1) + "\n")
    flagged = [p.name for p in passes if p.exitstatus]
    print(f"failures: {'none' if not flagged else 'in the ' + ' and '.join(flagged) + ' pass (see above)'}")
    return 1 if flagged else 0
