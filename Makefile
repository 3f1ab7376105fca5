# AI Interview Coach: the course's one front door. Run `make` to see lessons and targets.
# Every target calls one entry point, `python -m shared COMMAND` (shared/__main__.py); the work
# happens in the shared/ package, the tests live in tests/.

.DEFAULT_GOAL := help
SHELL := /bin/bash
.PHONY: help setup run diff diffs table test lint bench bench-stream bench-ship bench-protect bench-pool fuzz db db-stop db-status db-reset psql \
	alembic clean start check watch solution progress site site-serve

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# help and the argument check run on any Python 3.11, before `make setup`; the rest in .venv.
FRONT := $(PYTHON) -m shared
SHARED := $(PY) -m shared

# Check LESSON / FROM / TO before anything runs: a bad value stops here with one line (exit 2).
ARGS_ERROR := $(shell $(FRONT) validate-make-args --goals "$(MAKECMDGOALS)" --lesson "$(LESSON)" \
	--from "$(FROM)" --to "$(TO)")
ifneq ($(ARGS_ERROR),)
$(error $(ARGS_ERROR))
endif

help:
	@$(FRONT) help

# Re-installs only when a requirements file changed since the last install.
setup: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "setting up $(VENV) (first time takes a minute)..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@
	@echo "setup done."

run: setup
	@$(SHARED) run "$(LESSON)" $(if $(MINE),--mine) $(if $(DIR),--dir "$(DIR)")

diff: setup
	@$(SHARED) diff --lesson "$(LESSON)" --from "$(FROM)" --to "$(TO)"

# Exercise mode: do a lesson yourself in workspace/NN-slug/, graded by the lesson's tests.
start: setup
	@$(SHARED) start "$(LESSON)" $(if $(FORCE),--force)

check: setup
	@$(SHARED) check "$(LESSON)" $(if $(DIR),--dir "$(DIR)")

# make check again each time a file of the folder changes (until Ctrl-C).
watch: setup
	@$(SHARED) watch "$(LESSON)" $(if $(DIR),--dir "$(DIR)")

solution: setup
	@$(SHARED) solution "$(LESSON)" $(if $(DIR),--dir "$(DIR)")

progress: setup
	@$(SHARED) progress

# The course as a website (MkDocs Material) in build/site/: works offline; search needs a server.
SITE_PORT ?= 8080
site: setup
	@$(SHARED) site

site-serve: site
	@echo "serving build/site/ on http://localhost:$(SITE_PORT)/ (Ctrl-C stops)"
	@$(PY) -m http.server $(SITE_PORT) --bind 127.0.0.1 --directory build/site

db: setup
	@$(SHARED) db up

db-stop: setup
	@$(SHARED) db stop

db-status: setup
	@$(SHARED) db status

db-reset: setup
	@CONFIRM=$(CONFIRM) $(SHARED) db reset

psql: setup
	@$(SHARED) db psql

# Any alembic command in a lesson folder, with the course's virtualenv and make run's .env.
alembic: setup
	@$(SHARED) alembic "$(LESSON)" $(ARGS)

clean:
	@find lessons shared tests -name __pycache__ -type d -prune -exec rm -rf {} +
	@rm -rf build .pytest_cache .ruff_cache
	@echo "removed caches and build/"

# --- teaching and maintaining ---

# Every lesson and check job (or LESSON=NN, or a check job's name: make test LESSON=site), each in
# its own pytest process; PREVIOUS=1 runs each lesson's tests on the lesson before it.
test: setup
	@$(SHARED) test "$(LESSON)" $(if $(DIR),--dir "$(DIR)") $(if $(PREVIOUS),--previous)

diffs: setup
	@$(SHARED) diffs

table: setup
	@$(SHARED) table

# ruff, then import-linter: shared/ keeps its layers (the contracts are in pyproject.toml); then
# every compose file and the GitHub workflow against their published schemas (offline).
lint: setup
	@$(VENV)/bin/ruff check lessons shared tests
	@$(VENV)/bin/lint-imports --no-cache
	@$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml lessons/*/docker-compose.yml
	@$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

# make check per lesson (model answer and previous lesson's folder) and make test whole, as a
# table (ARGS=--help lists the options); never part of make test.
bench: setup
	@$(SHARED) bench $(ARGS)

# Streaming under load (lessons 20 and 21, offline coach): prints a table, writes build/bench.json.
bench-stream: setup
	@$(SHARED) bench-stream $(STREAM_ARGS)

# Lesson 25 as it runs in production (two workers behind nginx): prints a table, writes build/bench.json.
bench-ship: setup
	@$(SHARED) bench-ship $(SHIP_ARGS)

# Lesson 24 under storms (signups, logins, chats on a hung LLM): GET /api/me p99 during each; prints a
# table, writes build/bench-protect.json.
bench-protect: setup
	@$(SHARED) bench-protect -- $(PROTECT_ARGS)

# A hundred requests at once per kind (me, PUT me, chat, history, stream) on lessons 17 on, or
# LESSON=NN: do the worker threads and the pool's connections deadlock? Prints a table.
bench-pool: setup
	@$(SHARED) bench-pool $(if $(LESSON),--lesson "$(LESSON)") $(POOL_ARGS)

# Schemathesis against a running lesson (a database of its own), anonymous and logged in: every
# answer checked against the OpenAPI document. EXAMPLES=n sets the budget per operation, DIR=path
# fuzzes another folder, ARGS=.. go to `st run`.
fuzz: setup
	@$(SHARED) fuzz "$(LESSON)" $(if $(EXAMPLES),--max-examples $(EXAMPLES)) $(if $(DIR),--dir "$(DIR)") \
		$(if $(ARGS),-- $(ARGS))
