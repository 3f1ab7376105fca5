"""Lesson 01: index.html, served by python -m http.server, shows the title and greeting."""


def test_page_in_a_real_browser(lesson, static_server, page):
    page.goto(static_server(lesson.path) + "/index.html")
    assert page.title() == "AI Interview Coach"
    assert "Dear user, great to meet you! Let's start!" in page.inner_text("body")
