"""The course as a static website (MkDocs Material), built from the lessons themselves.

The configuration, the CSS and the theme overrides are files in shared/site/; this module is
the one generator of pages. Every page comes from data the repo already has: a lesson's README
(the text), its folder and the one before it (the diff), its tests (the checklist, the same
lines as `make check`) and the manifest (order, titles, the picture of the app, an optional
`flow` naming a sequence diagram). A new lesson in the manifest gets its page with nothing to
add here.

The site loads nothing from the internet: theme fonts are off, Mermaid is served from the site
(pinned below, checked against its npm integrity hash), and search is Material's own. Search
runs in a web worker, which browsers refuse to pages opened from file://: there the site says
to use `make site-serve` (shared/site/overrides/main.html).
"""

import base64
import difflib
import functools
import hashlib
import html
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

from shared.ground import devdb
from shared.ground.files import changed_files, steps_table
from shared.ground.manifest import Lesson, all_lessons, following, previous
from shared.ground.paths import BUILD, ROOT, SHARED, shown
from shared.ground.requirements import checklist_requirements

SOURCE = BUILD / "site-src"
SITE = BUILD / "site"
VENDOR = BUILD / "vendor"
CONFIG = SHARED / "site"  # mkdocs.yml, assets/ (CSS), overrides/ (theme templates)
# Mermaid 11 is the major version MkDocs Material 9.x renders with; npm's integrity of the tarball.
MERMAID_VERSION = "11.17.2"
MERMAID_INTEGRITY = ("sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/"
                     "qt5gHO73aCleBBg==")
MERMAID_JS = VENDOR / f"mermaid-{MERMAID_VERSION}.min.js"


def page_name(lesson: Lesson) -> str:
    return f"lessons/{lesson.folder}.md"


# --- vendored Mermaid ---------------------------------------------------------------------

def vendor() -> Path:
    """build/vendor/mermaid-X.min.js from `npm pack mermaid@X`, checked against the pinned hash."""
    if MERMAID_JS.is_file():
        return MERMAID_JS
    if not shutil.which("npm"):
        raise SiteError("make site needs npm (apt-get install npm) to fetch the pinned Mermaid once")
    VENDOR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"mermaid@{MERMAID_VERSION}", "--silent"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        [tarball] = Path(tmp).glob("mermaid-*.tgz")
        algorithm, _, expected = MERMAID_INTEGRITY.partition("-")
        actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
        if actual != expected:
            raise SiteError(f"mermaid@{MERMAID_VERSION}: the tarball's hash is not the pinned one; "
                            "not using it")
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("package/dist/mermaid.min.js")
            MERMAID_JS.write_bytes(member.read())
    print(f"vendored mermaid {MERMAID_VERSION} into {MERMAID_JS.relative_to(ROOT)}")
    return MERMAID_JS


# --- the picture of the app at each stage -------------------------------------------------

SHAPES = {"browser": ('(["', '"])'), "db": ('[("', '")]'), "llm": ('{{"', '"}}')}


def picture(lesson: Lesson) -> str:
    """The lesson's picture from the manifest as a Mermaid flowchart; what differs from the
    lesson before (a node's label, an edge) is drawn in orange. The edges carry no label (Mermaid
    draws one on top of its arrow): what each carries is in picture_legend(), under it."""
    nodes, edges = lesson.picture.nodes, lesson.picture.edges
    before = previous(lesson)
    old_nodes, old_edges = (before.picture.nodes, before.picture.edges) if before else ({}, ())
    lines = ["flowchart LR"]
    for node, label in nodes.items():
        left, right = SHAPES.get(node, ('["', '"]'))
        lines.append(f"    {node}{left}{label.replace('{db_port}', str(devdb.PORT))}{right}")
    for source, target, _ in edges:
        lines.append(f"    {source} --> {target}")
    lines.append("    classDef new fill:#fff3bf,stroke:#e67700,stroke-width:3px,color:#000")
    new_nodes = [n for n, label in nodes.items() if old_nodes.get(n) != label and n != "browser"]
    if new_nodes:
        lines.append(f"    class {','.join(new_nodes)} new")
    for i, edge in enumerate(edges):
        if edge not in old_edges:
            lines.append(f"    linkStyle {i} stroke:#e67700,stroke-width:3px")
    return "\n".join(lines)


def picture_legend(lesson: Lesson) -> str:
    """What each arrow of the picture carries, one line each, the new ones marked."""
    nodes, before = lesson.picture.nodes, previous(lesson)
    old_edges = before.picture.edges if before else ()

    def name(node: str) -> str:
        return nodes[node].split("<br/>")[0].replace("{db_port}", str(devdb.PORT))

    return "".join(f"- {name(source)} &rarr; {name(target)}: {html.escape(label.replace('<br/>', '; '))}"
                   f"{' **(new)**' if (source, target, label) not in old_edges else ''}\n"
                   for source, target, label in lesson.picture.edges)


# Sequence diagrams for lessons about a flow: lessons.toml's `flow = "<name>"` picks one.
# (Mermaid reads `;` as the end of a statement: never use one in a message or note.)
FLOWS = {
    "cors-preflight": ("The browser asks first: CORS preflight", """sequenceDiagram
    participant B as Browser
    participant P as Pages :8001
    participant A as API :8000
    B->>P: GET /signup.html
    P-->>B: the page (origin http://localhost:8001)
    Note over B: submit: fetch POST /api/users with JSON,<br/>another origin, so ask first
    B->>A: OPTIONS /api/users<br/>Origin: http://localhost:8001<br/>Access-Control-Request-Method: POST
    A-->>B: 200, Access-Control-Allow-Origin: http://localhost:8001
    B->>A: POST /api/users {name, role, place, password}
    A-->>B: 201 {id, message} + Access-Control-Allow-Origin
    Note over B: the page shows: Welcome!
    Note over B,A: another origin gets no allow header:<br/>the browser never sends the POST"""),
    "login": ("Log in, then prove it: the token flow", """sequenceDiagram
    participant B as Browser (login.html)
    participant A as API :8000
    participant D as Postgres
    B->>A: POST /api/login {email, password}
    A->>D: SELECT the user by email
    D-->>A: the row with its bcrypt hash
    Note over A: bcrypt checks the password,<br/>then a JWT (sub = user id, exp), HS256 with JWT_SECRET
    A-->>B: 200 {access_token, token_type: bearer}
    Note over B: keeps the token (localStorage), opens home.html
    B->>A: GET /api/me<br/>Authorization: Bearer <token>
    Note over A: checks signature and expiry, reads sub
    A->>D: SELECT the user by id
    A-->>B: 200 {id, name, email}
    Note over B,A: no token, a bad one or an expired one: 401"""),
    "chat": ("One chat message", """sequenceDiagram
    participant B as Browser (home.html)
    participant A as API :8000
    participant L as LLM
    B->>A: POST /api/chat {message}<br/>Authorization: Bearer <token>
    A->>L: chat completion (system prompt + message)
    L-->>A: the reply
    A-->>B: 200 {reply}
    Note over A,L: LLM error: 502, slower than OPENAI_TIMEOUT: 504"""),
    "sse": ("Streaming the answer: server-sent events", """sequenceDiagram
    participant B as Browser (home.html)
    participant A as API :8000
    participant L as LLM
    B->>A: POST /api/chat/stream {message} + Bearer token
    A->>L: chat completion, stream=True
    loop every token
        L-->>A: a piece of text
        A-->>B: data: {"token": "..."}
    end
    A-->>B: event: done
    Note over B: the page appends each token as it arrives"""),
    "websocket": ("A conversation over one WebSocket", """sequenceDiagram
    participant B as Browser (home.html)
    participant A as API :8000
    participant L as LLM
    B->>A: open ws://.../ws/chat
    B->>A: {"token": "<jwt>"}
    A-->>B: {"type": "ready"} (a bad token: close 1008)
    loop each message
        B->>A: {"message": "..."}
        A->>L: chat completion, stream=True
        L-->>A: tokens
        A-->>B: {"type": "token", "content": "..."} ... {"type": "done"}
    end"""),
}


# --- the diff, side by side with syntax colour ---------------------------------------------

@functools.cache
def lexer_for(filename: str):
    try:
        return get_lexer_for_filename(filename, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


@functools.cache  # a lesson's new files are the next lesson's old ones: each text coloured once
def highlighted_lines(text: str, filename: str) -> tuple[str, ...]:
    lexer = lexer_for(filename)
    if not text:
        return ()
    out = highlight(text, lexer, HtmlFormatter(nowrap=True))
    lines = out.split("\n")
    if text.endswith("\n") and lines and lines[-1] == "":
        lines.pop()
    return tuple(lines)


def cell(number, code, kind) -> str:
    number = "" if number is None else number
    return f'<td class="ln">{number}</td><td class="code {kind}"><code>{code or ""}</code></td>'


# Fixed column widths: line numbers narrow, the code gets the rest (old | new, or one column).
COLUMNS = {
    "split": '<colgroup><col class="ln"><col><col class="ln"><col></colgroup>',
    "unified": '<colgroup><col class="ln"><col></colgroup>',
}


def diff_html(old: Path | None, new: Path) -> str:
    blocks = []
    for rel, a, b in changed_files(old, new):
        a_lines, b_lines = a.splitlines(), b.splitlines()
        ha, hb = highlighted_lines(a, rel), highlighted_lines(b, rel)
        added = removed = 0
        rows = []
        if not a:
            state = "new file"
            for i, code in enumerate(hb, 1):
                rows.append(f"<tr>{cell(i, code, 'add')}</tr>")
            added = len(b_lines)
        elif not b:
            state = "deleted"
            removed = len(a_lines)
            rows.append(f'<tr><td class="hunk" colspan="2">{len(a_lines)} lines removed</td></tr>')
        else:
            state = "changed"
            matcher = difflib.SequenceMatcher(None, a_lines, b_lines, autojunk=False)
            for group in matcher.get_grouped_opcodes(3):
                first_a, first_b = group[0][1] + 1, group[0][3] + 1
                rows.append(f'<tr><td class="hunk" colspan="4">lines {first_a} / {first_b}</td></tr>')
                for tag, i1, i2, j1, j2 in group:
                    if tag == "equal":
                        for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                            rows.append(f"<tr>{cell(i + 1, ha[i], 'same')}{cell(j + 1, hb[j], 'same')}</tr>")
                        continue
                    removed += i2 - i1
                    added += j2 - j1
                    for k in range(max(i2 - i1, j2 - j1)):
                        i, j = i1 + k, j1 + k
                        left = cell(i + 1, ha[i], "del") if i < i2 else cell(None, "", "empty")
                        right = cell(j + 1, hb[j], "add") if j < j2 else cell(None, "", "empty")
                        rows.append(f"<tr>{left}{right}</tr>")
        kind = "unified" if state != "changed" else "split"
        blocks.append(
            f'<details class="diff-file" open data-search-exclude><summary><code>{html.escape(rel)}</code> '
            f'<span class="diff-state">{state}</span> <span class="diff-add">+{added}</span> '
            f'<span class="diff-del">-{removed}</span></summary>'
            f'<div class="diff-scroll"><table class="diff {kind} highlight">{COLUMNS[kind]}'
            f'{"".join(rows)}</table></div>'
            f"</details>")
    return "\n".join(blocks) if blocks else "<p>No code changes in this step.</p>"


# --- pages --------------------------------------------------------------------------------

# The diff's tables are HTML already, thousands of tags a lesson: Markdown and the search index
# would parse them all (most of a build's time) only to pass them through and leave them out of
# search (data-search-exclude). So a page holds a placeholder, and build() puts each diff there
# in the HTML mkdocs wrote.
def diff_placeholder(lesson: Lesson) -> str:
    return f'<div class="diff-placeholder" data-lesson="{lesson.number}"></div>'


def diff_fragment(source: Path, lesson: Lesson) -> Path:
    return source / "diffs" / f"{lesson.folder}.html"


def insert_diffs(source: Path, site: Path) -> None:
    for lesson in all_lessons():
        page = site / page_name(lesson).replace(".md", ".html")
        text = page.read_text()
        if text.count(diff_placeholder(lesson)) != 1:
            raise SiteError(f"{shown(page)}: no single place for the diff")
        page.write_text(text.replace(diff_placeholder(lesson), diff_fragment(source, lesson).read_text()))


def rewrite_links(text: str, known: dict[str, str]) -> str:
    """Links between README files become links between pages; other relative links to files
    the site does not hold become plain text (mkdocs --strict refuses broken links)."""
    def fix(match):
        label, target = match[1], match[2]
        if re.match(r"[a-z]+:|#", target):
            return match[0]
        path, _, anchor = target.partition("#")
        if path in known:
            return f"[{label}]({known[path]}{'#' + anchor if anchor else ''})"
        return label
    return re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", fix, text)


def lesson_page(lesson: Lesson, lessons: list[Lesson]) -> str:
    readme = (lesson.path / "README.md").read_text()
    known = {f"../{x.folder}/README.md": f"{x.folder}.md" for x in lessons}
    known.update({f"../{x.folder}": f"{x.folder}.md" for x in lessons})
    readme = rewrite_links(readme, known)
    before, after = previous(lesson), following(lesson)

    parts = re.split(r"(?m)^(?=## )", readme)
    head, sections = parts[0], parts[1:]
    task = [s for s in sections if s.lower().startswith("## your task")]
    rest = [s for s in sections if not s.lower().startswith("## your task")]
    new_label = f"lesson {before.number}" if before else "nothing"
    pic = (f"## The app at this stage\n\nWhat talks to what in lesson {lesson.number}; "
           f"what is new since {new_label} is drawn in orange.\n\n```mermaid\n{picture(lesson)}\n```\n\n"
           f"What each arrow carries:\n\n{picture_legend(lesson)}\n")
    flow = ""
    if lesson.flow:
        title, diagram = FLOWS[lesson.flow]
        flow = f"### {title}\n\n```mermaid\n{diagram}\n```\n\n"
    lines = "".join(f"- [ ] {html.escape(r.text)}\n" for r in checklist_requirements(lesson))
    source = (f"`tests/{lesson.test_file.name}`" if lesson.grader != "mutants" else
              f"your own tests and the bugs of `shared/mutants/{lesson.folder}.toml`")
    check = (f"## The checklist\n\n`make check LESSON={lesson.number}` grades your folder against these "
             f"lines, made from {source} (`make watch LESSON={lesson.number}` grades it again each time "
             f"you save a file):\n\n{lines or '- (no tests yet)'}\n\n")
    diff = (f"## The step, line by line\n\n`make diff LESSON={lesson.number}` prints the same "
            f"{'changes' if before else 'files'}"
            f"{f' (lesson {before.number} left, lesson {lesson.number} right)' if before else ''}."
            f"\n\n{diff_placeholder(lesson)}\n\n")
    links = []
    if before:
        links.append(f"[&larr; {before.number} {html.escape(before.title)}]({before.folder}.md)")
    links.append("[All lessons](../index.md)")
    if after:
        links.append(f"[{after.number} {html.escape(after.title)} &rarr;]({after.folder}.md)")
    nav = '<div class="lesson-nav" markdown>\n' + " &middot; ".join(links) + "\n</div>\n\n"
    return head + "".join(task) + pic + flow + "".join(rest).rstrip() + "\n\n" + check + diff + nav


def write_sources(source: Path = SOURCE) -> None:
    lessons = all_lessons()
    unknown = [f"{x.number}: {x.flow}" for x in lessons if x.flow and x.flow not in FLOWS]
    if unknown:
        raise SiteError(f"lessons.toml names flows that shared/services/site.py has not: "
                        f"{', '.join(unknown)}")
    if source.exists():
        shutil.rmtree(source)
    docs = source / "docs"
    (docs / "lessons").mkdir(parents=True)
    shutil.copytree(CONFIG / "assets", docs / "assets")
    shutil.copy2(vendor(), docs / "assets" / "mermaid.min.js")

    known = {f"lessons/{x.folder}/README.md": page_name(x) for x in lessons}
    known["lessons/"] = page_name(lessons[0])
    known["CONTRIBUTING.md"] = "contributing.md"
    front = rewrite_links((ROOT / "README.md").read_text(), known)
    (docs / "index.md").write_text(front)
    (docs / "contributing.md").write_text(rewrite_links((ROOT / "CONTRIBUTING.md").read_text(), {}))
    (source / "diffs").mkdir()
    for lesson in lessons:
        (docs / page_name(lesson)).write_text(lesson_page(lesson, lessons))
        before = previous(lesson)
        diff_fragment(source, lesson).write_text(diff_html(before.path if before else None, lesson.path))

    nav = ["  - Home: index.md", "  - Lessons:"]
    nav += [f"    - \"{x.number} {x.title}\": {page_name(x)}" for x in lessons]
    (docs / "steps.md").write_text(
        "# Every step at a glance\n\nFor teachers: what each lesson changes, in which files and how many "
        "lines. Each lesson's page shows the change side by side.\n\n"
        + steps_table(lambda x: f"[the lesson]({page_name(x)})"))
    nav.append("  - Every step at a glance: steps.md")
    nav.append("  - How a lesson is made: contributing.md")
    (source / "mkdocs.yml").write_text(
        "# Written by make site (shared/services/site.py): the settings are in shared/site/mkdocs.yml.\n"
        f"INHERIT: {CONFIG / 'mkdocs.yml'}\ndocs_dir: docs\ntheme:\n  name: material\n"
        f"  custom_dir: {CONFIG / 'overrides'}\nnav:\n" + "\n".join(nav) + "\n")


class SiteError(Exception):
    """The site cannot be built; the message says why."""


def build(source: Path = SOURCE, site: Path = SITE) -> float:
    """Write the pages to `source`, build them into `site` with `mkdocs build --strict`, then put
    each lesson's diff into its page."""
    started = time.monotonic()
    write_sources(source)
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                             "-f", str(source / "mkdocs.yml"), "-d", str(site)], env=env, check=False)
    if result.returncode:
        raise SiteError("mkdocs build --strict failed (see above)")
    insert_diffs(source, site)
    seconds = time.monotonic() - started
    print(f"built the course site in {seconds:.1f} s: {shown(site)}/index.html "
          f"({len(all_lessons())} lessons)")
    return seconds
