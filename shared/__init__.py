"""The course's tooling, one package in layers (pyproject.toml's import-linter contracts hold them):

    __main__      the one entry point: `python -m shared COMMAND` (the Makefile calls nothing else)
    cli/          one command line per audience: learner.py (help, run, diff, start, check,
                  solution, progress) and maintainer.py (test, site, bench, fuzz, db, ...)
    tools/        maintainer-only measurements: bench.py, bench_stream.py
    services/     what the command lines are made of: settings (.env), database (migrations,
                  schema checks), processes (servers on free ports), run (make run), testrun
                  (pytest per job, its results), grading (the checklist), fuzzing, site
    ground/       facts everything else reads: paths, manifest (lessons.toml, read only there),
                  devdb (the development Postgres), files (a lesson's files and diffs),
                  requirements (a lesson's checklist lines, from its tests), results (the
                  structured test results tests/conftest.py writes)
    coach.py      the offline OpenAI-compatible coach: a stand-alone program, imports nothing here

A module imports only from layers below its own; `make lint` fails otherwise.
"""
