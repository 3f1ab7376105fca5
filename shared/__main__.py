"""python -m shared COMMAND [...]: the course's one entry point; the Makefile calls nothing else.

Each command belongs to one command line (shared/cli/): front.py for what works before
`make setup` on any Python 3.11 (help, validate-make-args, the CI lists), learner.py and
maintainer.py for the rest. Only the named command's module is imported, so `make` (help) and
the Makefile's argument check run on a bare Python, without the packages .venv holds.
"""

import importlib
import sys

COMMANDS = {
    "front": ["help", "validate-make-args", "numbers", "checks"],
    "learner": ["run", "diff", "start", "check", "watch", "solution", "progress"],
    "maintainer": ["test", "site", "diffs", "table", "bench", "bench-stream", "bench-ship", "bench-protect",
                   "bench-pool", "fuzz", "db", "alembic", "mutants"],
}


def main() -> int:
    argv = sys.argv[1:] or ["help"]
    cli = next((name for name, commands in COMMANDS.items() if argv[0] in commands), None)
    if cli is None:
        every = " ".join(command for commands in COMMANDS.values() for command in commands)
        print(f"python -m shared: no command {argv[0]!r} (commands: {every})", file=sys.stderr)
        return 2
    return importlib.import_module(f"shared.cli.{cli}").main(argv)


sys.exit(main())
