"""Lesson 01: index.html, served by python -m http.server, shows the title and greeting."""

GREETING = "Dear user, great to meet you! Let's start!"


def test_page_is_served_over_http(lesson, static_server, page):
    response = page.goto(static_server(lesson.path) + "/index.html")
    assert response.status == 200, response.status_text
    assert response.headers["content-type"].startswith("text/html")


def test_folder_url_serves_index_html(lesson, static_server, page):
    page.goto(static_server(lesson.path) + "/")
    assert page.title() == "AI Interview Coach"


def test_browser_tab_shows_the_title(lesson, static_server, page):
    page.goto(static_server(lesson.path) + "/index.html")
    assert page.title() == "AI Interview Coach"


def test_page_shows_the_greeting(lesson, static_server, page):
    page.goto(static_server(lesson.path) + "/index.html")
    assert GREETING in page.inner_text("body")


def test_page_has_a_heading(lesson, static_server, page):
    page.goto(static_server(lesson.path) + "/index.html")
    assert page.inner_text("h1") == "AI Interview Coach"


def test_page_declares_its_language(lesson, static_server, page):
    page.goto(static_server(lesson.path) + "/index.html")
    assert page.get_attribute("html", "lang") == "en"


def test_page_is_read_as_utf8(lesson, static_server, page):
    page.goto(static_server(lesson.path) + "/index.html")
    assert page.evaluate("document.characterSet") == "UTF-8"
