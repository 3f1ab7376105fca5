"""The course as a static website (MkDocs Material), built from the lessons themselves.

    python shared/website.py vendor    fetch the pinned Mermaid from the npm registry (once)
    python shared/website.py build     write build/site-src/ and build it into build/site/

Every page comes from data the repo already has: a lesson's README (the text), its folder and
the one before it (the diff and the picture), its tests (the checklist, the same lines as
`make check`) and shared/lessons.toml (order, titles, and an optional `flow` naming a sequence
diagram). A new lesson in the manifest gets its page with nothing to add here.

The site loads nothing from the internet: theme fonts are off, Mermaid is served from the site
(pinned below, checked against its npm integrity hash), and search is Material's own.
"""

import argparse
import base64
import difflib
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
import tomllib
from pathlib import Path

from lessons import MANIFEST, ROOT, Lesson, all_lessons, previous

SOURCE = ROOT / "build" / "site-src"
SITE = ROOT / "build" / "site"
VENDOR = ROOT / "build" / "vendor"
# Mermaid 11 is the major version MkDocs Material 9.x renders with; npm's integrity of the tarball.
MERMAID_VERSION = "11.17.2"
MERMAID_INTEGRITY = ("sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/"
                     "qt5gHO73aCleBBg==")
MERMAID_JS = VENDOR / f"mermaid-{MERMAID_VERSION}.min.js"


def page_name(lesson: Lesson) -> str:
    return f"lessons/{lesson.folder}.md"


def manifest_entries() -> dict[str, dict]:
    with MANIFEST.open("rb") as f:
        return {e["number"]: e for e in tomllib.load(f)["lesson"]}


# --- vendored Mermaid ---------------------------------------------------------------------

def vendor() -> Path:
    """build/vendor/mermaid-X.min.js from `npm pack mermaid@X`, checked against the pinned hash."""
    if MERMAID_JS.is_file():
        return MERMAID_JS
    if not shutil.which("npm"):
        sys.exit("make site needs npm (apt-get install npm) to fetch the pinned Mermaid once")
    VENDOR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"mermaid@{MERMAID_VERSION}", "--silent"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        [tarball] = Path(tmp).glob("mermaid-*.tgz")
        algorithm, _, expected = MERMAID_INTEGRITY.partition("-")
        actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
        if actual != expected:
            sys.exit(f"mermaid@{MERMAID_VERSION}: the tarball's hash is not the pinned one; not using it")
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("package/dist/mermaid.min.js")
            MERMAID_JS.write_bytes(member.read())
    print(f"vendored mermaid {MERMAID_VERSION} into {MERMAID_JS.relative_to(ROOT)}")
    return MERMAID_JS


# --- the picture of the app at each stage -------------------------------------------------

def code_text(folder: Path) -> str:
    parts = [p.read_text(errors="replace") for p in sorted(folder.glob("*.py"))]
    parts += [p.read_text(errors="replace") for p in sorted(folder.glob("frontend/*.html"))]
    return "\n".join(parts)


def components(lesson: Lesson) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """({node id: label}, [(from, to, label)]) of the app in a lesson's folder."""
    folder, code = lesson.path, code_text(lesson.path)
    nodes = {"browser": "Browser"}
    edges = []
    if not (folder / "main.py").is_file():
        nodes["static"] = "python -m http.server :8000<br/>index.html"
        edges.append(("browser", "static", "GET /"))
        return nodes, edges
    api = "FastAPI app :8000<br/>main.py"
    # The endpoints, one path a line: "/api/users/{user_id}: GET PUT DELETE".
    routes: dict[str, list[str]] = {}
    route = r"@app\.(get|post|put|patch|delete|websocket)\(\s*[\"']([^\"']+)"
    for method, path in re.findall(route, (folder / "main.py").read_text()):
        routes.setdefault(path, []).append("WS" if method == "websocket" else method.upper())
    if (folder / "models.py").is_file():
        api += " + SQLAlchemy models"
    if "jwt" in code.lower():
        api += "<br/>login: JWT tokens"
    api += "".join(f"<br/>{path}: {' '.join(methods)}" for path, methods in routes.items())
    nodes["api"] = api
    has_pages = "frontend" in lesson.needs and (folder / "frontend").is_dir()
    calls = "JSON over HTTP"
    if "Bearer" in code:
        calls += " + Bearer token"
    if "text/event-stream" in code:
        calls += "<br/>answers streamed (SSE)"
    if "websocket" in code.lower():
        calls += "<br/>WebSocket /ws/chat"
    edges.append(("browser", "api", calls if has_pages else calls + " (Swagger UI /docs)"))
    if has_pages:
        pages = ", ".join(sorted(p.name for p in (folder / "frontend").glob("*.html")))
        nodes["pages"] = f"http.server :8001<br/>{pages}"
        edges.append(("browser", "pages", "loads the pages"))
        edges[0] = ("browser", "api", calls.replace("JSON over HTTP", "fetch() + CORS"))
    if "db" in lesson.needs:
        sql = "\n".join(x.read_text(errors="replace") for x in folder.glob("*.sql"))
        tables = sorted(set(re.findall(r"__tablename__\s*=\s*[\"'](\w+)", code))
                        | set(re.findall(r"(?i)CREATE TABLE (?:IF NOT EXISTS )?(\w+)", sql)))
        nodes["db"] = "Postgres :5433" + (f"<br/>tables: {', '.join(tables)}" if tables else "")
        if "sqlalchemy" in code:
            edges.append(("api", "db", "ORM (SQLAlchemy)"))
        elif "psycopg2" in code:
            edges.append(("api", "db", "SQL (psycopg2)"))
        else:
            nodes["psql"] = "psql"
            edges.append(("psql", "db", "SELECT NOW()"))
    if (folder / "alembic").is_dir():
        nodes["alembic"] = "alembic upgrade head"
        edges.append(("alembic", "db", "migrations"))
    if "llm" in lesson.needs:
        nodes["llm"] = "LLM: OpenAI or the offline coach :8002"
        edges.append(("api", "llm", "chat completions"))
    return nodes, edges


def picture(lesson: Lesson) -> str:
    nodes, edges = components(lesson)
    before = previous(lesson)
    old_nodes, old_edges = components(before) if before else ({}, [])
    shapes = {"browser": ('(["', '"])'), "db": ('[("', '")]'), "llm": ('{{"', '"}}')}
    lines = ["flowchart LR"]
    for node, label in nodes.items():
        left, right = shapes.get(node, ('["', '"]'))
        lines.append(f"    {node}{left}{label}{right}")
    for source, target, label in edges:
        lines.append(f'    {source} -->|"{label}"| {target}')
    lines.append("    classDef new fill:#fff3bf,stroke:#e67700,stroke-width:3px,color:#000")
    new_nodes = [n for n, label in nodes.items() if old_nodes.get(n) != label and n != "browser"]
    if new_nodes:
        lines.append(f"    class {','.join(new_nodes)} new")
    for i, edge in enumerate(edges):
        if edge not in old_edges:
            lines.append(f"    linkStyle {i} stroke:#e67700,stroke-width:3px")
    return "\n".join(lines)


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


# What in a lesson's code marks each flow; a lesson shows the flow whose mark it is the first to have.
FLOW_MARKS = [("websocket", "@app.websocket"), ("sse", "text/event-stream"), ("chat", "/api/chat"),
              ("login", "/api/login"), ("cors-preflight", "CORSMiddleware")]


def flow_of(lesson: Lesson, entries: dict[str, dict]) -> str:
    """lessons.toml's `flow` for the lesson, else the flow its code is the first to have."""
    if "flow" in entries.get(lesson.number, {}):
        return entries[lesson.number]["flow"]
    before = previous(lesson)
    code, old = code_text(lesson.path), code_text(before.path) if before else ""
    return next((name for name, mark in FLOW_MARKS if mark in code and mark not in old), "")


# --- the diff, side by side with syntax colour ---------------------------------------------

def highlighted_lines(text: str, filename: str) -> list[str]:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer, get_lexer_for_filename
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_for_filename(filename, stripnl=False, ensurenl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False, ensurenl=False)
    if not text:
        return []
    out = highlight(text, lexer, HtmlFormatter(nowrap=True))
    lines = out.split("\n")
    if text.endswith("\n") and lines and lines[-1] == "":
        lines.pop()
    return lines


def diff_files(old: Path | None, new: Path) -> list[tuple[str, str, str]]:
    """[(relative path, old text, new text)] of the files that differ (README.md left out)."""
    from course import lesson_files

    old_files = {str(p): p for p in lesson_files(old)} if old else {}
    new_files = {str(p): p for p in lesson_files(new)}
    changed = []
    for rel in sorted(set(old_files) | set(new_files)):
        a = (old / rel).read_text(errors="replace") if rel in old_files else ""
        b = (new / rel).read_text(errors="replace") if rel in new_files else ""
        if a != b:
            changed.append((rel, a, b))
    return changed


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
    for rel, a, b in diff_files(old, new):
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


def diff_stats(old: Path, new: Path) -> list[tuple[str, int, int]]:
    stats = []
    for rel, a, b in diff_files(old, new):
        plus = minus = 0
        for line in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0):
            if line.startswith("+") and not line.startswith("+++"):
                plus += 1
            elif line.startswith("-") and not line.startswith("---"):
                minus += 1
        stats.append((rel, plus, minus))
    return stats


def steps_table(link) -> str:
    """Every step, what it adds, the files it touches, with link(lesson) -> the markdown link."""
    lines = ["| Step | What it adds | Files | Lines | |", "|---|---|---|---|---|"]
    for lesson in all_lessons():
        before = previous(lesson)
        if not before:
            continue
        stats = diff_stats(before.path, lesson.path)
        files = ", ".join(f"`{rel}`" for rel, _, _ in stats)
        plus, minus = sum(s[1] for s in stats), sum(s[2] for s in stats)
        lines.append(f"| {before.number} -> {lesson.number} {lesson.title} | {lesson.summary} | {files} "
                     f"| +{plus} -{minus} | {link(lesson)} |")
    return "\n".join(lines) + "\n"


def write_diff_index(out_dir: Path) -> Path:
    """build/diffs/index.md: every step, what it adds, the files it touches (for `make diffs`)."""
    index = out_dir / "index.md"
    index.write_text("# The course's diffs, one per step\n\n"
                     + steps_table(lambda x: f"[{x.folder}.diff]({x.folder}.diff)"))
    return index


# --- pages --------------------------------------------------------------------------------

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


def lesson_page(lesson: Lesson, lessons: list[Lesson], flows: dict[str, str]) -> str:
    from exercise import requirements

    readme = (lesson.path / "README.md").read_text()
    known = {f"../{x.folder}/README.md": f"{x.folder}.md" for x in lessons}
    known.update({f"../{x.folder}": f"{x.folder}.md" for x in lessons})
    readme = rewrite_links(readme, known)
    before = previous(lesson)
    index = lessons.index(lesson)
    after = lessons[index + 1] if index + 1 < len(lessons) else None

    parts = re.split(r"(?m)^(?=## )", readme)
    head, sections = parts[0], parts[1:]
    task = [s for s in sections if s.lower().startswith("## your task")]
    rest = [s for s in sections if not s.lower().startswith("## your task")]
    new_label = f"lesson {before.number}" if before else "nothing"
    pic = (f"## The app at this stage\n\nWhat talks to what in lesson {lesson.number}; "
           f"what is new since {new_label} is drawn in orange.\n\n```mermaid\n{picture(lesson)}\n```\n\n")
    flow = ""
    if flows.get(lesson.number) in FLOWS:
        title, diagram = FLOWS[flows[lesson.number]]
        flow = f"### {title}\n\n```mermaid\n{diagram}\n```\n\n"
    checklist = "".join(f"- [ ] {html.escape(r.text)}\n" for r in requirements(lesson))
    check = (f"## The checklist\n\n`make check LESSON={lesson.number}` grades your folder against these "
             f"lines, made from `tests/{lesson.test_file.name}`:\n\n{checklist or '- (no tests yet)'}\n\n")
    diff = (f"## The step, line by line\n\n`make diff LESSON={lesson.number}` prints the same "
            f"{'changes' if before else 'files'}"
            f"{f' (lesson {before.number} left, lesson {lesson.number} right)' if before else ''}."
            f"\n\n{diff_html(before.path if before else None, lesson.path)}\n\n")
    links = []
    if before:
        links.append(f"[&larr; {before.number} {html.escape(before.title)}]({before.folder}.md)")
    links.append("[All lessons](../index.md)")
    if after:
        links.append(f"[{after.number} {html.escape(after.title)} &rarr;]({after.folder}.md)")
    nav = '<div class="lesson-nav" markdown>\n' + " &middot; ".join(links) + "\n</div>\n\n"
    return head + "".join(task) + pic + flow + "".join(rest).rstrip() + "\n\n" + check + diff + nav


def coming_soon(lessons: list[Lesson]) -> list[str]:
    with MANIFEST.open("rb") as f:
        data = tomllib.load(f)
    present = {x.number for x in lessons}
    return [f"{c['number']} {c['title']}" for c in data.get("coming", []) if c["number"] not in present]


def write_sources(source: Path = SOURCE) -> None:
    lessons = all_lessons()
    entries = manifest_entries()
    flows = {x.number: flow_of(x, entries) for x in lessons}
    if source.exists():
        shutil.rmtree(source)
    docs = source / "docs"
    (docs / "lessons").mkdir(parents=True)
    (docs / "assets").mkdir()
    shutil.copy2(vendor(), docs / "assets" / "mermaid.min.js")
    (docs / "assets" / "course.css").write_text(CSS)

    known = {f"lessons/{x.folder}/README.md": page_name(x) for x in lessons}
    known["lessons/"] = page_name(lessons[0])
    known["CONTRIBUTING.md"] = "contributing.md"
    front = rewrite_links((ROOT / "README.md").read_text(), known)
    (docs / "index.md").write_text(front)
    (docs / "contributing.md").write_text(rewrite_links((ROOT / "CONTRIBUTING.md").read_text(), {}))
    for lesson in lessons:
        (docs / page_name(lesson)).write_text(lesson_page(lesson, lessons, flows))

    nav = ["  - Home: index.md", "  - Lessons:"]
    nav += [f"    - \"{x.number} {x.title}\": {page_name(x)}" for x in lessons]
    (docs / "steps.md").write_text(
        "# Every step at a glance\n\nFor teachers: what each lesson changes, in which files and how many "
        "lines. Each lesson's page shows the change side by side.\n\n"
        + steps_table(lambda x: f"[the lesson]({page_name(x)})"))
    nav.append("  - Every step at a glance: steps.md")
    nav.append("  - How a lesson is made: contributing.md")
    (source / "mkdocs.yml").write_text(MKDOCS_YML.format(nav="\n".join(nav)))


MKDOCS_YML = """# Generated by shared/website.py from shared/lessons.toml: edit that, not this.
site_name: AI Interview Coach, a FastAPI course
docs_dir: docs
use_directory_urls: false
strict: true
theme:
  name: material
  font: false
  features:
    - navigation.footer
    - navigation.indexes
    - search.highlight
    - content.code.copy
  palette:
    primary: indigo
plugins:
  - search
markdown_extensions:
  - admonition
  - attr_list
  - md_in_html
  - tables
  - toc:
      permalink: true
  - pymdownx.highlight
  - pymdownx.inlinehilite
  - pymdownx.tasklist
  - pymdownx.superfences:
      custom_fences:
        - name: mermaid
          class: mermaid
          format: !!python/name:pymdownx.superfences.fence_code_format
extra_css:
  - assets/course.css
extra_javascript:
  - assets/mermaid.min.js
nav:
{nav}
"""

CSS = """
.md-grid { max-width: 100rem; }
/* The step's diff: old on the left, new on the right, syntax colour from Material's theme. */
.diff-file { margin: 1em 0; border: 1px solid var(--md-default-fg-color--lightest); border-radius: 4px; }
.diff-file summary { padding: .4em .8em; cursor: pointer; background: var(--md-code-bg-color); }
.diff-state { color: var(--md-default-fg-color--light); margin-left: .5em; }
.diff-add { color: #2b8a3e; font-weight: bold; } .diff-del { color: #c92a2a; font-weight: bold; }
.diff-scroll { overflow-x: auto; }
.md-typeset table.diff { display: table; border: 0; font-size: .68rem; width: 100%; border-collapse: collapse;
  table-layout: fixed; }
.md-typeset table.diff td { padding: 0 .5em; border: 0; vertical-align: top; }
.md-typeset table.diff col.ln { width: 2.8em; }
.md-typeset table.diff td.code { white-space: pre-wrap; overflow-wrap: anywhere;
  font-family: var(--md-code-font-family); }
.md-typeset table.diff td.code code { background: none; padding: 0; font-size: inherit;
  white-space: pre-wrap; }
.md-typeset table.diff td.ln { text-align: right; color: var(--md-default-fg-color--lighter);
  user-select: none; }
.md-typeset table.diff td.add { background: rgba(64, 192, 87, .15); }
.md-typeset table.diff td.del { background: rgba(250, 82, 82, .15); }
.md-typeset table.diff td.empty { background: var(--md-code-bg-color); }
.md-typeset table.diff td.hunk { color: var(--md-default-fg-color--light);
  background: var(--md-code-bg-color); font-style: italic; }
.lesson-nav { margin-top: 2em; padding-top: 1em; border-top: 1px solid var(--md-default-fg-color--lightest); }
"""


def build(source: Path = SOURCE, site: Path = SITE) -> float:
    """Write the pages to `source` and build them into `site` with `mkdocs build --strict`."""
    started = time.monotonic()
    write_sources(source)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "shared"), NO_MKDOCS_2_WARNING="1")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                             "-f", str(source / "mkdocs.yml"), "-d", str(site)], env=env, check=False)
    if result.returncode:
        sys.exit("mkdocs build --strict failed (see above)")
    seconds = time.monotonic() - started
    shown = site.relative_to(ROOT) if site.is_relative_to(ROOT) else site
    print(f"built the course site in {seconds:.1f} s: {shown}/index.html ({len(all_lessons())} lessons)")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["vendor", "build"])
    args = parser.parse_args()
    os.chdir(ROOT)
    if args.command == "vendor":
        vendor()
    else:
        build()


if __name__ == "__main__":
    main()
