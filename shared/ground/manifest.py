"""The manifest, shared/lessons.toml, as one typed registry: the only code that opens that file.

Two kinds of entry: a Lesson (a folder under lessons/ with its test file) and a CheckJob (a test
file beside the lessons that `make test` runs as a job of its own: the repo checks, the site,
...). Every field lessons.toml may hold is a field here; an unknown one is an error, so a typo
cannot pass silently. Standard library only: the Makefile checks LESSON= with it before
`make setup` has run.
"""

import functools
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from shared.ground.paths import LESSONS_DIR, SHARED, TESTS_DIR

MANIFEST = SHARED / "lessons.toml"
NEEDS = ("db", "frontend", "llm")
GRADERS = ("pytest", "mutants")


class UnknownLesson(ValueError):
    """A LESSON value that names no lesson; the message is one line listing the valid ones."""


class ManifestError(ValueError):
    """lessons.toml says something the registry cannot accept (an unknown field, say)."""


@dataclass(frozen=True)
class Picture:
    """What a lesson's app is made of, drawn on its site page: nodes {id: label} and edges
    (from, to, label). Declared in lessons.toml; a lesson that declares none has its
    predecessor's picture, one that declares some nodes or edges changes only those."""

    nodes: dict[str, str]
    edges: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class Lesson:
    number: str
    folder: str
    title: str
    summary: str
    needs: tuple[str, ...]
    # The ASGI app as uvicorn names it: "main:app" (main.py), or "app.main:app" (a package).
    app: str = "main:app"
    # The sequence diagram on its site page (shared/services/site.py FLOWS), or "".
    flow: str = ""
    # Why every test may pass on the lesson before it (make test PREVIOUS=1), or "".
    skip_check_unsolved: str = ""
    # How make check grades a folder: "pytest" (the lesson's tests against it) or "mutants"
    # (the learner's own tests against the model answer and small bugs planted in it).
    grader: str = "pytest"
    # Options make run gives uvicorn besides the app, host and port ("--limit-concurrency", "500").
    server_options: tuple[str, ...] = ()
    # How many processes make check spreads the lesson's tests over (pytest-xdist).
    check_workers: int = 1
    picture: Picture = field(default_factory=lambda: Picture({}, ()), compare=False, repr=False)

    @property
    def path(self) -> Path:
        return LESSONS_DIR / self.folder

    @property
    def key(self) -> str:
        """What names the job in make test's summary and in file names: the number."""
        return self.number

    @property
    def label(self) -> str:
        return self.folder

    @property
    def test_file(self) -> Path:
        return TESTS_DIR / f"test_{self.folder.replace('-', '_')}.py"

    @property
    def test_files(self) -> list[Path]:
        return [self.test_file]

    @property
    def app_module(self) -> str:
        return self.app.partition(":")[0]

    @property
    def app_attribute(self) -> str:
        return self.app.partition(":")[2] or "app"

    def app_file(self, folder: Path | None = None) -> Path:
        """The file that defines the app: main.py, or app/main.py for "app.main:app"."""
        return (folder or self.path) / (self.app_module.replace(".", "/") + ".py")

    def has_api(self, folder: Path | None = None) -> bool:
        """Lesson 01 is a static page; every later one serves an API."""
        return self.app_file(folder).is_file()


@dataclass(frozen=True)
class CheckJob:
    """Tests beside the lessons (the repo, the course site, exercise mode, the offline coach,
    Schemathesis): one pytest process of their own in `make test`, one CI job each."""

    name: str
    title: str
    tests: str  # the test file, relative to the repo

    @property
    def key(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        return self.title

    @property
    def test_files(self) -> list[Path]:
        return [TESTS_DIR.parent / self.tests]


@dataclass(frozen=True)
class Manifest:
    lessons: tuple[Lesson, ...]
    checks: tuple[CheckJob, ...]


def _picture(entry: dict, before: Picture) -> Picture:
    declared = entry.get("picture", {})
    unknown = set(declared) - {"nodes", "edges"}
    if unknown:
        raise ManifestError(f"lesson {entry['number']}: picture has unknown keys {sorted(unknown)}")
    nodes = {**before.nodes, **declared.get("nodes", {})}
    nodes = {k: v for k, v in nodes.items() if v}  # "" removes a node
    if "edges" in declared:
        edges = []
        for text in declared["edges"]:
            ends, _, label = text.partition(":")
            source, _, target = ends.partition("->")
            if not (source.strip() and target.strip()):
                raise ManifestError(f"lesson {entry['number']}: edge {text!r} is not 'a -> b: label'")
            edges.append((source.strip(), target.strip(), label.strip()))
        edges = tuple(edges)
    else:
        edges = before.edges
    missing = {end for edge in edges for end in edge[:2]} - set(nodes)
    if missing:
        raise ManifestError(f"lesson {entry['number']}: picture edges name unknown nodes {sorted(missing)}")
    return Picture(nodes, edges)


def _lesson(entry: dict, before: Picture) -> Lesson:
    known = {f.name for f in fields(Lesson)}
    unknown = set(entry) - known
    if unknown:
        raise ManifestError(f"lesson {entry.get('number')}: unknown fields {sorted(unknown)} "
                            f"(known: {', '.join(sorted(known))})")
    if not set(entry["needs"]) <= set(NEEDS) or entry.get("grader", "pytest") not in GRADERS:
        raise ManifestError(f"lesson {entry['number']}: needs must be among {NEEDS}, grader among {GRADERS}")
    if not isinstance(entry.get("check_workers", 1), int) or entry.get("check_workers", 1) < 1:
        raise ManifestError(f"lesson {entry['number']}: check_workers must be a whole number, 1 or more")
    values = {**entry, "needs": tuple(entry["needs"]), "picture": _picture(entry, before),
              "server_options": tuple(entry.get("server_options", ()))}
    return Lesson(**values)


@functools.cache
def manifest() -> Manifest:
    with MANIFEST.open("rb") as f:
        data = tomllib.load(f)
    unknown = set(data) - {"lesson", "check"}
    if unknown:
        raise ManifestError(f"lessons.toml: unknown tables {sorted(unknown)} (known: lesson, check)")
    lessons, picture = [], Picture({}, ())
    for entry in data["lesson"]:
        lesson = _lesson(entry, picture)
        lessons.append(lesson)
        picture = lesson.picture
    checks = tuple(CheckJob(**entry) for entry in data.get("check", []))
    return Manifest(tuple(lessons), checks)


def all_lessons() -> list[Lesson]:
    return list(manifest().lessons)


def check_jobs() -> list[CheckJob]:
    return list(manifest().checks)


def valid_list() -> str:
    numbers = " ".join(lesson.number for lesson in all_lessons())
    return f"{numbers} (9, 09 and 09-folder-name all work)"


def find(value: str) -> Lesson:
    """Accepts 9, 09, 09-connect-app-to-db or lessons/09-connect-app-to-db/."""
    text = str(value).strip().rstrip("/").removeprefix("lessons/")
    for lesson in all_lessons():
        if text in (lesson.folder, lesson.number) or (text.isdigit() and int(text) == int(lesson.number)):
            return lesson
    named = repr(value) if str(value).strip() else "nothing"
    raise UnknownLesson(f"no lesson {named}: valid lessons are {valid_list()}")


def find_check(name: str) -> CheckJob | None:
    return next((check for check in check_jobs() if check.name == name), None)


def previous(lesson: Lesson) -> Lesson | None:
    lessons = all_lessons()
    index = lessons.index(lesson)
    return lessons[index - 1] if index else None


def following(lesson: Lesson) -> Lesson | None:
    lessons = all_lessons()
    index = lessons.index(lesson)
    return lessons[index + 1] if index + 1 < len(lessons) else None
