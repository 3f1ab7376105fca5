"""The packages every pytest run of the course imports, imported once by a process that then
forks the runs, so that each run's pytest starts with them loaded: the fork server of `make
test`'s jobs (testrun.py), and the grader that runs a learner's suite on each planted bug
(mutation.py).

Importing them costs a test process about 1.3 s of CPU; `make test` runs some 30 jobs, and
`make test PREVIOUS=1` as many again. Only installed packages: never a lesson's modules, tests/
or conftest.py, which each run imports fresh, from the folder it grades.

Those two import this module by name, when they mean to preload: importing it is what it does.
"""

import gc
import importlib
import warnings

PACKAGES = (
    # pytest, and what its plugins import. Not the plugins: pytest rewrites their asserts as it
    # imports them, and warns that it cannot when they are imported already.
    "pytest", "_pytest.main", "_pytest.junitxml", "_pytest.faulthandler", "_pytest.helpconfig",
    "_pytest.pastebin", "_pytest.setuponly", "_pytest.setupplan", "_pytest.skipping",
    "_pytest.threadexception", "_pytest.tracemalloc", "_pytest.unittest", "_pytest.unraisableexception",
    "_pytest.warnings", "pdb", "logging.config", "execnet", "coverage",
    # what the lessons and tests/ import, with the parts those load only once they are used
    "fastapi", "fastapi.testclient", "fastapi.sse", "fastapi.security", "fastapi.middleware.cors",
    "starlette.testclient", "anyio._backends._asyncio", "pydantic", "pydantic.v1", "pydantic_settings",
    "email_validator", "sqlalchemy", "sqlalchemy.orm", "sqlalchemy.dialects.postgresql.psycopg2",
    "psycopg2", "psycopg2.extras", "alembic.config", "alembic.command", "alembic.runtime.migration",
    "alembic.operations", "alembic.script", "passlib.hash", "passlib.context", "passlib.handlers.bcrypt",
    "bcrypt", "jwt", "openai", "openai.resources.chat", "openai.lib.streaming.chat", "httpx2", "httpcore2",
    "h11", "truststore", "playwright.sync_api", "uvicorn.main", "asgi_correlation_id",
    "pythonjsonlogger.json", "websockets.sync.client", "websockets.asyncio.client", "yaml",
)

for name in PACKAGES:
    # As strict as the tests (filterwarnings = error): a package whose import warns is left out
    # here, so the job imports it itself, and pytest reports the warning there as it would in a
    # process of its own. (A package that is not installed is left out the same way.)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            importlib.import_module(name)
        except Exception:  # the job's own import raises it again, where pytest reports it
            pass

# What is loaded now stays for the life of every process forked from here: out of the garbage
# collector's sight (Python's gc.freeze documentation, on forking). A forked job's full
# collections (a few during its run, pytest's two at its end) then skip these objects instead of
# walking them all and writing to every page the job shares with this process. Measured with
# gc.callbacks over a whole make test: 23 s in full collections without it, 1.4 s with it and
# tests/conftest.py's freeze after collection (the wall time stayed within its noise, 123-131 s).
gc.freeze()
