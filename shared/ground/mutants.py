"""A lesson's mutants (lesson 23 on): the bugs make check plants in the model answer's app to see
whether the learner's own tests catch them, read from shared/mutants/<lesson folder>.toml (the
file's comments give its format). Standard library only; services/mutation.py runs them.
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path

from shared.ground.paths import SHARED

MUTANTS_DIR = SHARED / "mutants"

OWN_PASSES = "Your tests pass when pytest runs them in your folder, on your app and on the model answer's"
OWN_DATABASE = "Your tests make their own database, the one TEST_DB_NAME names, with Alembic's migrations"
OWN_DATABASE_HINT = ("the suite's database is the one TEST_DB_NAME names when it is set (make check sets "
                     "it), created afresh and migrated with Alembic (alembic upgrade head), and left "
                     "there at the end: make check looks for it after the run (the next run drops it first)")


class MutantError(ValueError):
    """A mutants file that cannot be used: a missing field, or an edit that does not apply."""


@dataclass(frozen=True)
class Edit:
    file: str  # in the app's folder: app/routers/auth.py
    old: str   # found exactly once
    new: str


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str   # what a user would notice, in words: "a login that accepts any password"
    hint: str  # what a test that sees it does
    edits: tuple[Edit, ...]

    @property
    def requirement(self) -> str:
        return f"Your tests catch: {self.bug}"


def mutants_file(folder_name: str) -> Path:
    return MUTANTS_DIR / f"{folder_name}.toml"


def load(path: Path) -> list[Mutant]:
    with path.open("rb") as f:
        entries = tomllib.load(f).get("mutant", [])
    found = []
    for entry in entries:
        try:
            edits = tuple(Edit(e["file"], e["old"], e["new"]) for e in entry["edit"])
            found.append(Mutant(entry["name"], entry["bug"], entry.get("hint", ""), edits))
        except KeyError as missing:
            raise MutantError(f"{path.name}: mutant {entry.get('name', '?')} has no {missing}") from None
    names = [m.name for m in found]
    if not found or len(set(names)) != len(names):
        raise MutantError(f"{path.name}: at least one mutant, each with a name of its own")
    return found


def plant(mutant: Mutant, folder: Path) -> None:
    """Make the mutant's edits in the app in `folder`; MutantError when one does not apply."""
    for edit in mutant.edits:
        path = folder / edit.file
        text = path.read_text() if path.is_file() else ""
        if text.count(edit.old) != 1:
            where = "found more than once" if edit.old in text else "not found"
            raise MutantError(f"mutant {mutant.name}: the text to replace is {where} in {edit.file}")
        path.write_text(text.replace(edit.old, edit.new))


def requirements(mutants: list[Mutant]) -> list[str]:
    """The checklist's lines, in its order."""
    return [OWN_PASSES, OWN_DATABASE, *(m.requirement for m in mutants)]
