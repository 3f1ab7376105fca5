"""The course site (make site): built once per run with --strict, then read in real Chromium
from a plain file server, with nothing fetched from outside that server."""

import shutil

import pytest

from helpers import IN_CI, ReusedTab, serve_folder
from shared.ground.manifest import all_lessons
from shared.ground.requirements import requirements
from shared.services import site as course_site

LESSONS = all_lessons()
# Material draws Mermaid inside a closed shadow root; opened here so the test can see the SVG.
OPEN_SHADOWS = ("const attach = Element.prototype.attachShadow;"
                "Element.prototype.attachShadow = function (init) {"
                "  return attach.call(this, {...init, mode: 'open'}); };")
# A site page loads 3.5 MB of Mermaid and draws its pictures: 0.3-0.6 s on an idle 2-core
# machine, but over 5 s (a lesson's BROWSER_WAIT_MS) once in CI, with make test's other jobs
# running beside it. The site is not in a learner's check loop, so its waits may be longer.
SITE_WAIT_MS = 30_000


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    if not course_site.MERMAID_JS.is_file() and not shutil.which("npm"):
        message = "no vendored Mermaid and no npm to fetch it (make site once, or apt-get install npm)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("site")
    course_site.build(out / "src", out / "site")
    return out / "site"


@pytest.fixture(scope="module")
def site_url(site):
    """The built site over HTTP, one server for the module (it only reads files)."""
    server = serve_folder(site)
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def watch(page, site_url) -> list[str]:
    """The URLs of the requests `page` makes outside the site's own server, from now on."""
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((site_url, "data:", "blob:"))
            else None)
    return outside


@pytest.fixture(scope="module")
def site_tab(browser):
    with ReusedTab(browser, SITE_WAIT_MS, init_script=OPEN_SHADOWS) as tab:
        yield tab


@pytest.fixture
def site_page(site_tab, site_url):
    """A page that fails the test on any request that leaves the site's own server."""
    with site_tab.lent() as page:
        outside = watch(page, site_url)
        yield page
    assert outside == []


@pytest.fixture(scope="module")
def lesson_07_opened(browser, site_url):
    """Lesson 07's page, loaded once for the tests that only read it (no clicks, no typing)."""
    context = browser.new_context()
    context.add_init_script(OPEN_SHADOWS)
    page = context.new_page()
    outside = watch(page, site_url)
    page.goto(lesson_url(site_url, "07"))
    yield page, outside
    context.close()


@pytest.fixture
def lesson_07_page(lesson_07_opened):
    """That page; the test fails on any request that left the site's own server."""
    page, outside = lesson_07_opened
    yield page
    assert outside == []


def lesson_url(site_url, number):
    lesson = next(x for x in LESSONS if x.number == number)
    return f"{site_url}/lessons/{lesson.folder}.html"


def test_every_lesson_has_a_page_and_the_build_is_strict(site):
    for lesson in LESSONS:
        assert (site / "lessons" / f"{lesson.folder}.html").is_file(), lesson.folder
    assert (site / "assets" / "mermaid.min.js").is_file()
    assert "fonts.googleapis" not in (site / "index.html").read_text()


def test_lesson_page_opens_with_the_task_and_shows_the_checklist(lesson_07_page):
    headings = lesson_07_page.locator("article h2").all_inner_texts()
    assert headings[0].strip("¶ ") == "Your task", headings
    checklist = lesson_07_page.locator("#the-checklist + p + ul li").all_inner_texts()
    assert [line.strip() for line in checklist] == [r.text for r in requirements(LESSONS[6])]


def test_the_diff_is_side_by_side_with_syntax_colour(lesson_07_page):
    diff = lesson_07_page.locator("details.diff-file", has_text="main.py").first
    assert diff.locator("table.diff.split").count() == 1
    added = diff.locator("td.code.add", has_text="BaseModel")
    assert added.count() >= 1
    assert added.first.locator("span").count() >= 1  # Pygments' token spans: coloured code
    assert diff.locator("td.code.del", has_text="def find_problem").count() == 1


def test_the_picture_is_rendered_as_svg_with_the_new_part_highlighted(site_page, site_url):
    site_page.goto(lesson_url(site_url, "08"))  # the database arrives
    svg = site_page.locator(".mermaid svg").first
    svg.wait_for()
    assert "Postgres" in svg.text_content()
    assert svg.locator(".node.new").count() >= 1


@pytest.mark.parametrize("number", [x.number for x in LESSONS if x.number == "14"])
def test_a_flow_lesson_also_has_a_sequence_diagram(site_page, site_url, number):
    site_page.goto(lesson_url(site_url, number))
    site_page.locator(".mermaid svg").nth(1).wait_for()
    assert "OPTIONS /api/users" in site_page.locator(".mermaid svg").nth(1).text_content()


def test_next_and_previous_links_walk_the_lessons(site_page, site_url):
    site_page.goto(lesson_url(site_url, "07"))
    site_page.locator(".lesson-nav a", has_text="08 ").click()
    assert site_page.url == lesson_url(site_url, "08")
    site_page.locator(".lesson-nav a", has_text="07 ").click()
    assert site_page.url == lesson_url(site_url, "07")
    site_page.locator(".md-nav__link", has_text="Home").first.click()
    assert site_page.locator("article h1").inner_text().startswith("AI Interview Coach")


def test_search_works_offline(site_page, site_url):
    site_page.goto(f"{site_url}/index.html")
    site_page.locator("input.md-search__input").click()
    # The search index is built in a web worker; Material says when it is ready.
    site_page.locator(".md-search-result__meta", has_text="Type to start searching").wait_for(timeout=30_000)
    site_page.locator("input.md-search__input").press_sequentially("Pydantic")
    site_page.locator(".md-search-result__item").first.wait_for()
    assert "Pydantic" in site_page.locator(".md-search-result__list").inner_text()


def test_site_index_lists_only_lessons_that_exist(site):
    index = (site / "index.html").read_text()
    for lesson in LESSONS:
        assert f'href="lessons/{lesson.folder}.html"' in index


def test_every_diagram_parses(site_page, site_url):
    """Every lesson's picture and every sequence diagram, checked by the site's own Mermaid."""
    diagrams = {f"picture {x.number}": course_site.picture(x) for x in LESSONS}
    diagrams.update({f"flow {name}": text for name, (_, text) in course_site.FLOWS.items()})
    site_page.goto(f"{site_url}/index.html")
    errors = site_page.evaluate("""async (diagrams) => {
        const errors = {};
        for (const [name, text] of Object.entries(diagrams)) {
            try { await mermaid.parse(text); } catch (e) { errors[name] = String(e).slice(0, 200); }
        }
        return errors;
    }""", diagrams)
    assert errors == {}


def test_no_label_sits_on_an_arrow(site_page, site_url):
    """The pictures' arrows carry no label (Mermaid draws one on top of its arrow); a list under
    each picture says what every arrow carries."""
    site_page.goto(lesson_url(site_url, "21"))
    svg = site_page.locator(".mermaid svg").first
    svg.wait_for()
    assert [t for t in svg.locator(".edgeLabel").all_text_contents() if t.strip()] == []
    legend = site_page.locator("article li", has_text="\u2192")
    assert legend.count() == len(LESSONS[20].picture.edges), legend.all_inner_texts()


def test_from_a_file_the_site_says_to_serve_it_for_search(page, site, site_url):
    page.goto((site / "index.html").as_uri())
    assert page.locator("#file-note").is_visible()
    assert "make site-serve" in page.locator("#file-note").inner_text()
    page.goto(f"{site_url}/index.html")
    assert page.locator("#file-note").is_hidden()
