"""A lesson's requirements in plain words, read from its test files (standard library only).

One requirement per test function (the cases of a parametrised test are one requirement): the
first sentence of its docstring (however many lines it takes) when it has one, else its name made
into a sentence (test_unknown_id_is_404 -> "Unknown id is 404"). "Hint: ..." in the docstring, to
the end of its paragraph, is shown when the test fails first.
make check's checklist, make test PREVIOUS=1 and the course site all print these lines.

A test file may take over an earlier lesson's tests with `from test_21_websocket import *`
(lesson 22 proves it changed no behaviour so): pytest collects them as its own, and they are
its requirements too, at the place of that import.
"""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from shared.ground import mutants
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
    inherited: str = ""  # the test file it comes from when imported ("test_21_websocket.py")


# A sentence ends at . ! or ? at the end of a line, or before a space and a capital ("... pong.
# Its pongs"); not inside "0.5 s", "app.state" or "e.g. a".
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def text_and_hint(docstring: str) -> tuple[str, str]:
    """A docstring's first sentence, and its hint: what follows "Hint:" to the end of that
    paragraph (the first sentence never holds the hint)."""
    paragraphs = [part.strip().splitlines() for part in re.split(r"\n\s*\n", docstring.strip())]
    hint = next((" ".join(" ".join(p).split("Hint:", 1)[1].split()) for p in paragraphs
                 if "Hint:" in " ".join(p)), "")
    lines = []
    for line in paragraphs[0] if paragraphs else []:
        lines.append(line.split("Hint:", 1)[0].strip())
        if "Hint:" in line or lines[-1].endswith((".", "!", "?")):
            break
    return SENTENCE_END.split(" ".join(" ".join(lines).split()), maxsplit=1)[0], hint


def sentence(name: str) -> str:
    words = [SPELLING.get(word, word) for word in name.removeprefix("test_").split("_") if word]
    text = " ".join(words).replace("dot env", ".env")
    return text[:1].upper() + text[1:]


def requirements_in(test_file: Path, collected_in: str = "") -> list[Requirement]:
    """One per test function (and test method of a Test* class), in the order of the file;
    `collected_in` names the file pytest collects them in when another file imports them."""
    if not test_file.is_file():
        return []
    tree = ast.parse(test_file.read_text())
    nodes = [n for top in tree.body
             for n in (top.body if isinstance(top, ast.ClassDef) and top.name.startswith("Test") else [top])]
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("test_"):
            # Tests taken over from an earlier lesson's file, all of them (*) or by name: pytest
            # collects and runs them here, so they are requirements here too.
            names = [alias.name for alias in node.names]
            taken = requirements_in(test_file.with_name(f"{node.module}.py"), collected_in or test_file.name)
            found += taken if names == ["*"] else [r for r in taken if r.test in names]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            first, hint = text_and_hint(ast.get_docstring(node) or "")
            text = first or sentence(node.name)
            found.append(Requirement(collected_in or test_file.name, node.name, text.rstrip("."), hint,
                                     node.lineno, test_file.name if collected_in else ""))
    # A test defined again after a star import replaces the one imported (as in the module pytest
    # collects): one requirement per name, the last definition's, where the first one stood.
    return list({requirement.test: requirement for requirement in found}.values())


def requirements(lesson: Lesson) -> list[Requirement]:
    """The requirements of the lesson's test file (with those it star-imports)."""
    return requirements_in(lesson.test_file)


def checklist_requirements(lesson: Lesson) -> list[Requirement]:
    """The lines make check grades a learner's folder by: the lesson's requirements; for a lesson
    graded by mutants (the learner writes the tests), one per line of its mutants file."""
    if lesson.grader != "mutants":
        return requirements(lesson)
    path = mutants.mutants_file(lesson.folder)
    bugs = mutants.load(path)
    hints = ["", mutants.OWN_DATABASE_HINT, *(m.hint for m in bugs)]
    lines = zip(mutants.requirements(bugs), hints, strict=True)
    return [Requirement(f"mutants/{path.name}", f"requirement-{i}", text, hint, i)
            for i, (text, hint) in enumerate(lines, 1)]
