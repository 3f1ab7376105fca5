"""Every lesson's task says what its tests hold a learner to.

A learner has the task (the README's "Your task", which `make start` prints), the course's API
contract docs/api.md (which the tasks link), and the checklist `make check` prints; never the
test files. So for every lesson from 02 on:

- each requirement line of the checklist (a test's docstring, or its name made a sentence,
  as shared/ground/requirements.py makes it) appears in the task in the same words (letter case,
  `code` and **bold** marks and line breaks aside);
- each exact message a test asserts ({"detail": "..."}, lesson 06's {"error": "..."}, also
  inside an SSE event or a socket frame, or through a helper of helpers.py) appears in the
  task, or in docs/api.md when the task links to it.

A test that must hold a name or a string the task does not give fails here: state it in the
task (or docs/api.md), or let the test accept any reasonable answer.
"""

import ast
import re
from functools import cache

import pytest

from helpers import ROOT
from shared.ground.files import task_text
from shared.ground.manifest import all_lessons
from shared.ground.requirements import checklist_requirements

API_DOC = ROOT / "docs" / "api.md"
MESSAGE_KEYS = ("detail", "error")  # the keys whose exact text a learner must be told
LESSONS = [lesson for lesson in all_lessons() if lesson.number >= "02" and lesson.test_file.is_file()]


def plain(text: str) -> str:
    """Text as a reader sees it: no Markdown marks, one space for any run of spaces and breaks."""
    return re.sub(r"\s+", " ", text.replace("**", "").replace("`", "")).strip().lower()


def strings_by_name(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "text" constants, so that {"detail": NAME} is read as its text."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and (text := text_of(node.value, {})) is not None:
            found.update({target.id: text for target in node.targets if isinstance(target, ast.Name)})
    return found


def text_of(node: ast.AST, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id)
    return None


def is_message_lookup(node: ast.AST) -> bool:
    """r.json()["detail"], frame["detail"], ..."""
    return isinstance(node, ast.Subscript) and text_of(node.slice, {}) in MESSAGE_KEYS


def parametrized_messages(decorator: ast.AST, names: dict[str, str]) -> list[str]:
    """The values a @pytest.mark.parametrize gives an argument called detail (or error)."""
    if not (isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith("parametrize")
            and len(decorator.args) >= 2):
        return []
    argnames = decorator.args[0]
    if isinstance(argnames, ast.Constant):
        argnames = [name.strip() for name in argnames.value.split(",")]
    elif isinstance(argnames, ast.Tuple | ast.List):
        argnames = [element.value for element in argnames.elts if isinstance(element, ast.Constant)]
    else:
        return []
    positions = [i for i, name in enumerate(argnames) if name in MESSAGE_KEYS]
    if not positions or not isinstance(decorator.args[1], ast.List | ast.Tuple):
        return []
    found = []
    for case in decorator.args[1].elts:
        if isinstance(case, ast.Call):  # pytest.param(...)
            values = case.args
        elif isinstance(case, ast.Tuple | ast.List):
            values = case.elts
        else:
            values = [case]
        found += [text for i in positions if i < len(values) and (text := text_of(values[i], names))]
    return found


def asserted_parts(tree: ast.AST) -> list[ast.AST]:
    """What a test holds an answer to: its asserts and comparisons, and the module's constants
    (COACH_FAILED = {...}); not what it sends or fakes (a route's made-up {"detail": ...})."""
    parts = [node for node in ast.walk(tree) if isinstance(node, ast.Assert | ast.Compare)]
    if isinstance(tree, ast.Module):
        parts += [node.value for node in tree.body if isinstance(node, ast.Assign)]
    return parts


def messages_in(tree: ast.AST, names: dict[str, str]) -> set[str]:
    """Every exact message asserted anywhere in TREE."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                found.update(parametrized_messages(decorator, names))
    for node in (inner for part in asserted_parts(tree) for inner in ast.walk(part)):
        if isinstance(node, ast.Dict):  # {"detail": "text"}, also inside a tuple or a frame
            for key, value in zip(node.keys, node.values, strict=True):
                if key is not None and text_of(key, {}) in MESSAGE_KEYS and (text := text_of(value, names)):
                    found.add(text)
        elif isinstance(node, ast.Compare):  # r.json()["detail"] == "text"
            sides = [node.left, *node.comparators]
            if any(is_message_lookup(side) for side in sides):
                found.update(text for side in sides if (text := text_of(side, names)))
    return found


@cache
def helper_messages() -> dict[str, set[str]]:
    """{helper function: the messages it asserts}, from tests/helpers.py."""
    tree = ast.parse((ROOT / "tests" / "helpers.py").read_text())
    names = strings_by_name(tree)
    return {node.name: messages_in(node, names) for node in tree.body if isinstance(node, ast.FunctionDef)}


def asserted_messages(lesson) -> set[str]:
    tree = ast.parse(lesson.test_file.read_text())
    found = messages_in(tree, strings_by_name(tree))
    for node in tree.body:  # from helpers import assert_not_found, ...
        if isinstance(node, ast.ImportFrom) and node.module == "helpers":
            for alias in node.names:
                found |= helper_messages().get(alias.name, set())
    return found


def links_the_contract(task: str) -> bool:
    return re.search(r"\]\((?:\.\./)+docs/api\.md(?:#[\w-]+)?\)", task) is not None


def checklist_lines(lesson) -> list[str]:
    """make check's lines: the tests' first docstring lines, or for a lesson graded by mutants
    (lesson 23: the learner writes the tests) the bugs its tests must catch."""
    # A requirement taken over (imported, with * or by name) is the earlier task's.
    return [r.text for r in checklist_requirements(lesson) if not r.inherited]


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.number for lesson in LESSONS])
def test_the_task_lists_every_requirement_of_the_checklist(lesson):
    task = plain(task_text(lesson))
    assert task, f"lessons/{lesson.folder}/README.md has no '## Your task' section"
    missing = [text for text in checklist_lines(lesson) if plain(text).rstrip(".") not in task]
    assert missing == [], (
        f"these lines of `make check LESSON={lesson.number}` are not in the task of "
        f"lessons/{lesson.folder}/README.md (write them there in the same words, or give the "
        f"test a docstring whose first line the task uses):\n  " + "\n  ".join(missing))


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.number for lesson in LESSONS])
def test_every_exact_message_a_test_asserts_is_in_the_task_or_the_contract(lesson):
    task = task_text(lesson)
    told = plain(task) + (" " + plain(API_DOC.read_text()) if links_the_contract(task) else "")
    missing = sorted(message for message in asserted_messages(lesson) if plain(message) not in told)
    assert missing == [], (
        f"tests/{lesson.test_file.name} asserts these exact messages, which neither the task nor "
        f"docs/api.md (when the task links it) gives: {missing}. State them, or let the test "
        "accept any words.")


def test_the_parser_finds_the_messages_it_should():
    """The checks above are only as good as what they find: a known case of each form."""
    tree = ast.parse('''
DOWN = "Database unavailable"
@pytest.mark.parametrize(("mode", "status", "detail"),
                         [("error", 502, "Coach down"), ("slow", 504, "Too slow")])
def test_x(r, detail):
    assert r.json() == {"detail": DOWN}
    assert r.json()["detail"] == "Not found"
    assert last == ("error", {"detail": "Mid-way"})
    assert frame == {"type": "error", "detail": "In a frame"}
    assert r.json() == {"error": "By hand"}
    page.route(url, lambda route: route.fulfill(json={"detail": "What the test fakes"}))
''')
    assert messages_in(tree, strings_by_name(tree)) == {
        "Database unavailable", "Coach down", "Too slow", "Not found", "Mid-way", "In a frame", "By hand"}
    assert "User not found" in helper_messages()["assert_not_found"]
