"""make fuzz in the repo checks: Schemathesis flags nothing in a few lessons, on a small budget.

Each run starts the lesson's app on a throwaway database and checks every answer against the
app's OpenAPI document (shared/fuzz.py). About 8 s a lesson, so three stand for the rest, to
keep `make test` fast: 07 (Pydantic, in memory), 10 (raw SQL) and 15 (the ORM, the paged list,
Alembic). `make fuzz LESSON=NN` runs any lesson, with a bigger budget.
"""

import subprocess
import sys

import pytest

from lessons import ROOT


@pytest.mark.parametrize("number", ["07", "10", "15"])
def test_schemathesis_flags_nothing(number):
    fuzz = [sys.executable, str(ROOT / "shared" / "fuzz.py"), number, "--max-examples", "3"]
    r = subprocess.run([*fuzz, "--", "--seed", "1"], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
