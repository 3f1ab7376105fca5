"""A lesson's requirements in plain words, read from its test files (standard library only).

One requirement per test function (the cases of a parametrised test are one requirement): its
docstring's first line when it has one, else its name made into a sentence (test_unknown_id_is_404
-> "Unknown id is 404"). A line "Hint: ..." in the docstring is shown when the test fails first.
make check's checklist, make test PREVIOUS=1 and the course site all print these lines.

A test file may take over an earlier lesson's tests with `from test_21_websocket import *`
(lesson 22 proves it changed no behaviour so): pytest collects them as its own, and they are
its requirements too, at the place of that import.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

from shared.ground.manifest import Lesson

# Words a test name can only spell in lower case.
SPELLING = {"api": "API", "openapi": "OpenAPI", "json": "JSON", "html": "HTML", "url": "URL",
            "cors": "CORS", "sql": "SQL", "utf8": "UTF-8", "jwt": "JWT", "hs256": "HS256", "orm": "ORM",
            "ui": "UI", "http": "HTTP", "sse": "SSE", "llm": "LLM", "ascii": "ASCII", "nul": "NUL",
            "crud": "CRUD", "js": "JS", "iso": "ISO", "uvicorn": "uvicorn", "swagger": "Swagger",
            "postgres": "Postgres", "bcrypt": "bcrypt", "alembic": "Alembic", "sqlalchemy": "SQLAlchemy"}


@dataclass(frozen=True)
class Requirement:
    file: str      # the test file's name (test_07_validate_with_pydantic.py)
    test: str      # the test function's name
    text: str      # the line a learner reads
    hint: str      # from a "Hint:" line of the docstring, or ""
    line: int      # where the test starts in its file
    inherited: str = ""  # the test file it comes from when star-imported ("test_21_websocket.py")


def sentence(name: str) -> str:
    words = [SPELLING.get(word, word) for word in name.removeprefix("test_").split("_") if word]
    text = " ".join(words).replace("dot env", ".env")
    return text[:1].upper() + text[1:]


def requirements_in(test_file: Path, collected_in: str = "") -> list[Requirement]:
    """One per test function (and test method of a Test* class), in the order of the file;
    `collected_in` names the file pytest collects them in when another file star-imports them."""
    if not test_file.is_file():
        return []
    tree = ast.parse(test_file.read_text())
    nodes = [n for top in tree.body
             for n in (top.body if isinstance(top, ast.ClassDef) and top.name.startswith("Test") else [top])]
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("test_") and \
                [alias.name for alias in node.names] == ["*"]:
            found += requirements_in(test_file.with_name(f"{node.module}.py"), collected_in or test_file.name)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            lines = [x.strip() for x in (ast.get_docstring(node) or "").splitlines()]
            hint = " ".join(x.removeprefix("Hint:").strip() for x in lines if x.startswith("Hint:"))
            first = lines[0] if lines and not lines[0].startswith("Hint:") else ""
            text = first or sentence(node.name)
            found.append(Requirement(collected_in or test_file.name, node.name, text.rstrip("."), hint,
                                     node.lineno, test_file.name if collected_in else ""))
    return found


def requirements(lesson: Lesson) -> list[Requirement]:
    """The requirements of the lesson's test file (with those it star-imports)."""
    return requirements_in(lesson.test_file)
