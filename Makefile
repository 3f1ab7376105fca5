# AI Interview Coach: the course's one front door. Run `make` to see lessons and targets.
# The work happens in shared/ (course.py, testrun.py, devdb.py); tests live in tests/.

.DEFAULT_GOAL := help
SHELL := /bin/bash
.PHONY: help setup run diff diffs table numbers test lint bench bench-stream fuzz db db-stop db-status db-reset psql alembic clean

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
COURSE := $(PYTHON) shared/course.py

# Check LESSON / FROM / TO before anything runs: a bad value stops here with one line (exit 2).
ARGS_ERROR := $(shell $(COURSE) check --goals "$(MAKECMDGOALS)" --lesson "$(LESSON)" --from "$(FROM)" --to "$(TO)")
ifneq ($(ARGS_ERROR),)
$(error $(ARGS_ERROR))
endif

help:
	@$(COURSE) help

# Re-installs only when a requirements file changed since the last install.
setup: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "setting up $(VENV) (first time takes a minute)..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@
	@echo "setup done."

run: setup
	@$(if $(MINE),$(PY) shared/exercise.py run "$(LESSON)" $(if $(DIR),--dir "$(DIR)"),$(PY) shared/course.py run "$(LESSON)")

diff:
	@$(COURSE) diff --lesson "$(LESSON)" --from "$(FROM)" --to "$(TO)"

diffs:
	@$(COURSE) diffs

table:
	@$(COURSE) table

numbers:
	@$(COURSE) numbers

test: setup
	@$(PY) shared/testrun.py "$(LESSON)" $(if $(DIR),--dir "$(DIR)") $(if $(PREVIOUS),--against-previous)

# Exercise mode: do a lesson yourself in workspace/NN-slug/, graded by the lesson's tests.
.PHONY: start check solution progress
start:
	@$(PYTHON) shared/exercise.py start "$(LESSON)" $(if $(FORCE),--force)

check: setup
	@$(PY) shared/exercise.py check "$(LESSON)" $(if $(DIR),--dir "$(DIR)")

solution:
	@$(PYTHON) shared/exercise.py solution "$(LESSON)" $(if $(DIR),--dir "$(DIR)")

progress:
	@$(PYTHON) shared/exercise.py progress

# The course as a website (MkDocs Material) in build/site/: works offline and from any file server.
.PHONY: site site-serve
SITE_PORT ?= 8080
site: setup
	@$(PY) shared/website.py build

site-serve: site
	@echo "serving build/site/ on http://localhost:$(SITE_PORT)/ (Ctrl-C stops)"
	@$(PY) -m http.server $(SITE_PORT) --bind 127.0.0.1 --directory build/site

lint: setup
	@$(VENV)/bin/ruff check lessons shared tests

# Speed and memory numbers (database start, make run to first answer); never part of `make test`.
bench: setup
	@$(PY) shared/bench.py $(ARGS)
	@$(MAKE) --no-print-directory bench-stream

# Streaming under load (lessons 20 and 21, offline coach): prints a table, writes build/bench.json.
bench-stream: setup
	@$(PY) shared/bench_stream.py $(STREAM_ARGS)

# Schemathesis against a running lesson (throwaway database): every answer checked against the
# OpenAPI document. EXAMPLES=n sets the budget per operation, DIR=path fuzzes another folder.
fuzz: setup
	@$(PY) shared/fuzz.py "$(LESSON)" $(if $(EXAMPLES),--max-examples $(EXAMPLES)) $(if $(DIR),--dir "$(DIR)") $(if $(ARGS),-- $(ARGS))

db: setup
	@$(PY) shared/devdb.py up

db-stop: setup
	@$(PY) shared/devdb.py stop

db-status: setup
	@$(PY) shared/devdb.py status

db-reset: setup
	@CONFIRM=$(CONFIRM) $(PY) shared/devdb.py reset

psql: setup
	@$(PY) shared/devdb.py psql

# Any alembic command in a lesson folder, with the course's virtualenv and make run's .env.
alembic: setup
	@$(PY) shared/course.py settings "$(LESSON)"
	@cd lessons/$(shell $(COURSE) resolve "$(LESSON)") && $(CURDIR)/$(PY) -m alembic $(ARGS)

clean:
	@find lessons shared tests -name __pycache__ -type d -prune -exec rm -rf {} +
	@rm -rf build .pytest_cache .ruff_cache
	@echo "removed caches and build/"
