"""The lesson registry: reads shared/lessons.toml and resolves what a user types as LESSON.

Standard library only, so the Makefile can use it before `make setup` has run.
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LESSONS_DIR = ROOT / "lessons"
MANIFEST = ROOT / "shared" / "lessons.toml"
NEEDS = {"db", "frontend", "llm"}


@dataclass(frozen=True)
class Lesson:
    number: str
    folder: str
    title: str
    summary: str
    needs: tuple[str, ...]
    # The ASGI app uvicorn serves, "module:attribute" inside the folder: main:app, or from
    # lesson 22 on (the app a package) app.main:app. lessons.toml's optional `app` field.
    app: str = "main:app"

    @property
    def path(self) -> Path:
        return LESSONS_DIR / self.folder

    @property
    def app_file(self) -> str:
        """The file that holds the app, relative to the folder: main.py, app/main.py."""
        return self.app.partition(":")[0].replace(".", "/") + ".py"

    @property
    def test_file(self) -> Path:
        return ROOT / "tests" / f"test_{self.folder.replace('-', '_')}.py"


class UnknownLesson(ValueError):
    """A LESSON value that names no lesson; the message is one line listing the valid ones."""


def all_lessons() -> list[Lesson]:
    with MANIFEST.open("rb") as f:
        entries = tomllib.load(f)["lesson"]
    return [
        Lesson(e["number"], e["folder"], e["title"], e["summary"], tuple(e["needs"]),
               e.get("app", "main:app"))
        for e in entries
    ]


def valid_list() -> str:
    numbers = " ".join(lesson.number for lesson in all_lessons())
    return f"{numbers} (9, 09 and 09-folder-name all work)"


def find(value: str) -> Lesson:
    """Accepts 9, 09, 09-connect-app-to-db or lessons/09-connect-app-to-db/."""
    text = value.strip().rstrip("/").removeprefix("lessons/")
    for lesson in all_lessons():
        if text in (lesson.folder, lesson.number) or (text.isdigit() and int(text) == int(lesson.number)):
            return lesson
    shown = repr(value) if value.strip() else "nothing"
    raise UnknownLesson(f"no lesson {shown}: valid lessons are {valid_list()}")


def previous(lesson: Lesson) -> Lesson | None:
    lessons = all_lessons()
    index = lessons.index(lesson)
    return lessons[index - 1] if index else None
