"""Lesson 14: signup.html calls the API with fetch(); CORS lets in only the page's own origin.

The browser tests drive real Chromium against a real uvicorn. Each serves a copy of frontend/
whose config.js points at that API, from http://localhost:P: the one origin the API is told
to allow (CORS_ORIGINS). The same file from http://127.0.0.1:P, or opened as a file, comes
from another origin, and the browser must refuse to send the signup. The API's CORS answers
are also checked over plain HTTP, the way `curl -i -H "Origin: ..."` shows them.
"""

import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from helpers import every_user, pages_and_api, text_when
from webclient import web

PAGE_ORIGIN = "http://localhost:8001"  # where `make run` serves the page: the default allow-list
ALAN = {"name": "Alan", "role": "developer", "place": "London", "password": "secret123"}


def unique_name() -> str:
    return "U" + uuid.uuid4().hex[:7]  # 8 characters: within the 2..10 the API accepts


@dataclass(frozen=True)
class Site:
    api: str  # base URL of the live API
    page: str  # signup.html from the allowed origin, http://localhost:P
    other_page: str  # the same file from http://127.0.0.1:P: another origin, not on the list
    folder: Path  # the served copy of frontend/


@pytest.fixture(scope="module")
def site(pages) -> Site:
    """The `pages` servers (one pair per module): frontend/ on localhost and an API that allows
    exactly that origin. Each test signs up a name of its own (unique_name)."""
    return Site(pages.api, f"{pages.url}/signup.html", f"http://127.0.0.1:{pages.port}/signup.html",
                pages.folder)


def api_users(site: Site) -> list[dict]:
    r = web.get(site.api + "/api/users", params={"limit": 100})
    assert r.status_code == 200, r.text
    return r.json()


def named(site: Site, name: str) -> list[dict]:
    return [user for user in api_users(site) if user["name"] == name]


def fill_form(page, name, role="tester", place="Paris", password="secret123"):
    page.fill("input[name=name]", name)
    page.select_option("select[name=role]", role)
    page.fill("input[name=place]", place)
    page.fill("input[name=password]", password)


def sign_up(page, name, shows=None, what="", **fields) -> str:
    """Fills the form, clicks Sign up and returns what #message says once it shows the outcome:
    `shows` in it (default: the welcome, which holds the name). What the page says while the
    request runs ("Sending…") is fine: it is never read."""
    fill_form(page, name, **fields)
    page.click("button[type=submit]")
    shows = shows or name
    return text_when(page, "#message", lambda text: shows in text,
                     what or f"the page shows the outcome, a welcome with the name {name!r}")


def sign_up_blocked(page, name) -> str:
    """Fills the form, clicks Sign up and returns what #message says once the browser has
    refused the call (CORS): there, any words will do, as long as they are no welcome."""
    fill_form(page, name)
    try:
        with page.expect_event("requestfailed", lambda request: request.method == "POST"):
            page.click("button[type=submit]")
    except PlaywrightTimeout:
        pytest.fail("the browser did not refuse the signup's POST /api/users: the API allowed this page's "
                    "origin, or the page never sent it")
    return text_when(page, "#message", str.strip, "the page says the signup did not go through")


def assert_not_welcomed(text: str, name: str) -> None:
    """The page says something (any words) when the API cannot be reached, but no welcome."""
    assert text.strip() and name not in text, text


def preflight(http, origin: str):
    """What a browser asks before a cross-origin POST with a JSON body."""
    return http.options("/api/users", headers={
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    })


# --- in a real browser ----------------------------------------------------------------------

def test_signup_from_the_allowed_origin_creates_the_user(site, page):
    name = unique_name()
    page.goto(site.page)
    sign_up(page, name, role="designer", place="Paris")
    assert [(u["role"], u["place"]) for u in named(site, name)] == [("designer", "Paris")]


def test_page_says_welcome_with_the_new_id(site, page):
    """The page says welcome with the name and the new id"""
    name = unique_name()
    page.goto(site.page)
    text = sign_up(page, name)
    user_id = named(site, name)[0]["id"]
    assert name in text and re.search(rf"\b{user_id}\b", text.replace(name, "")), text


def test_name_with_markup_is_shown_as_text(site, page):
    page.goto(site.page)
    text = sign_up(page, "<i>x</i>")
    assert "<i>x</i>" in text, text
    assert page.locator("#message i").count() == 0, page.inner_html("#message")


def test_error_from_the_api_is_shown_as_text(site, page):
    # Whatever the API says goes on the page as text, even if it looks like HTML.
    page.route(site.api + "/api/users", lambda route: route.fulfill(
        status=400, json={"detail": "<b>no</b>"},
        headers={"Access-Control-Allow-Origin": site.page.rsplit("/", 1)[0]}))
    page.goto(site.page)
    assert "<b>no</b>" in sign_up(page, unique_name(), shows="<b>no</b>",
                                  what="the page shows the API's detail <b>no</b>")
    assert page.locator("#message b").count() == 0, page.inner_html("#message")


def test_browser_does_not_send_a_form_that_breaks_its_rules(site, page):
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    page.goto(site.page)
    fill_form(page, "")  # the name is required
    page.click("button[type=submit]")
    sign_up(page, unique_name())  # a valid second try, so the first had its chance to be sent
    assert posts == [site.api + "/api/users"], posts


def test_server_still_rejects_what_the_browser_would_have_stopped(site, page):
    # Anyone can switch off the page's checks (devtools, curl): the API decides.
    name = unique_name()
    page.goto(site.page)
    page.evaluate("document.querySelectorAll('[minlength]').forEach(i => i.removeAttribute('minlength'))")
    text = sign_up(page, name, place="X", shows="String should have at least 2 characters",
                   what="the page shows the 422's problem (place: String should have at least 2 characters)")
    assert "place" in text and "String should have at least 2 characters" in text, text
    assert named(site, name) == []


def test_page_from_another_origin_is_blocked(site, page):
    before = len(api_users(site))
    page.goto(site.other_page)
    name = unique_name()
    assert_not_welcomed(sign_up_blocked(page, name), name)
    assert len(api_users(site)) == before


def test_browser_console_names_cors_as_the_reason(site, page):
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(site.other_page)
    sign_up_blocked(page, unique_name())
    assert any("blocked by CORS policy" in line for line in console), console


def test_page_opened_as_a_file_is_blocked(site, page):
    # file:// pages have the origin "null", which is on no allow-list.
    before = len(api_users(site))
    page.goto((site.folder / "signup.html").as_uri())
    name = unique_name()
    assert_not_welcomed(sign_up_blocked(page, name), name)
    assert len(api_users(site)) == before


def test_config_js_points_the_page_at_the_api_on_port_8000(lesson, static_server, page):
    """config.js points the page at the API on port 8000"""
    page.goto(static_server(lesson.path / "frontend", host="localhost") + "/signup.html")
    assert page.evaluate("API_URL") == "http://localhost:8000"


# --- the API's CORS answers over HTTP -------------------------------------------------------

def test_preflight_from_the_page_origin_is_allowed(client):
    r = preflight(client, PAGE_ORIGIN)
    assert r.status_code == 200, r.text
    assert r.headers.get("access-control-allow-origin") == PAGE_ORIGIN, r.headers


def test_preflight_allows_a_json_post(client):
    r = preflight(client, PAGE_ORIGIN)
    assert "POST" in r.headers.get("access-control-allow-methods", ""), r.headers
    assert "content-type" in r.headers.get("access-control-allow-headers", "").lower(), r.headers


@pytest.mark.parametrize("origin", [
    "http://localhost:8000",  # another port
    "https://localhost:8001",  # another scheme
    "https://shadytricks.com",  # another site
    "null",  # a page opened as a file
])
def test_preflight_from_another_origin_is_refused(client, origin):
    r = preflight(client, origin)
    assert r.status_code == 400, r.text
    assert "access-control-allow-origin" not in r.headers, r.headers


def test_answer_to_the_page_origin_names_that_origin(client):
    r = client.get("/api/users", headers={"Origin": PAGE_ORIGIN})
    assert r.status_code == 200, r.text
    assert r.headers.get("access-control-allow-origin") == PAGE_ORIGIN, r.headers


def test_answer_to_another_origin_has_no_allow_origin_header(client):
    # The server still answers; without the header the browser keeps the answer from the page.
    r = client.get("/api/users", headers={"Origin": "https://shadytricks.com"})
    assert r.status_code == 200, r.text
    assert "access-control-allow-origin" not in r.headers, r.headers


def test_cors_origins_setting_allows_each_listed_origin(fresh_app):
    with TestClient(fresh_app(CORS_ORIGINS="http://localhost:3000,https://coach.example")) as http:
        answers = {o: preflight(http, o).headers.get("access-control-allow-origin")
                   for o in ("http://localhost:3000", "https://coach.example")}
    assert answers == {"http://localhost:3000": "http://localhost:3000",
                       "https://coach.example": "https://coach.example"}


def test_cors_origins_setting_replaces_the_default(fresh_app):
    with TestClient(fresh_app(CORS_ORIGINS="https://coach.example")) as http:
        r = preflight(http, PAGE_ORIGIN)
    assert r.status_code == 400, r.text
    assert "access-control-allow-origin" not in r.headers, r.headers


# --- the lesson 13 API is unchanged ---------------------------------------------------------

def test_create_and_list_still_work(client):
    r = client.post("/api/users", json=ALAN)
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    listed = every_user(client)
    assert {"id": user_id, "name": "Alan", "role": "developer", "place": "London"} in listed, listed


# --- Hardening (H3): the page works from http://127.0.0.1 as well as http://localhost ---------


def both_spellings(port: int) -> str:
    return f"http://localhost:{port},http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def both_hosts(lesson, app, tmp_path_factory) -> tuple[str, str, str, Path]:
    """(page on localhost, the same page on 127.0.0.1, API URL, served folder): an API that
    allows both spellings of the page's origin, as the default CORS_ORIGINS does for port 8001,
    and the page's own config.js with the test API's port in place of 8000."""
    folder = tmp_path_factory.mktemp("both_hosts") / "frontend"
    shutil.copytree(lesson.path / "frontend", folder)
    with pages_and_api(folder, lesson.path, origins=both_spellings) as (port, api):
        config = (folder / "config.js").read_text()
        assert ":8000" in config, config
        (folder / "config.js").write_text(config.replace(":8000", f":{api.rsplit(':', 1)[1]}"))
        yield f"http://localhost:{port}/signup.html", f"http://127.0.0.1:{port}/signup.html", api, folder


@pytest.mark.parametrize("origin", ["http://localhost:8001", "http://127.0.0.1:8001"])
def test_default_list_allows_both_spellings_of_the_page_origin(client, origin):
    r = preflight(client, origin)
    assert r.status_code == 200, r.text
    assert r.headers.get("access-control-allow-origin") == origin, r.headers


def test_config_js_follows_the_host_the_page_came_from(lesson, static_server, page):
    """config.js follows the host the page came from"""
    page.goto(static_server(lesson.path / "frontend", host="127.0.0.1") + "/signup.html")
    assert page.evaluate("API_URL") == "http://127.0.0.1:8000"


def test_config_js_points_a_page_opened_as_a_file_at_localhost(lesson, page):
    """config.js points a page opened as a file at localhost"""
    page.goto((lesson.path / "frontend" / "signup.html").as_uri())
    assert page.evaluate("API_URL") == "http://localhost:8000"


def test_signup_from_127_0_0_1_creates_the_user(both_hosts, page):
    """Signup from 127.0.0.1 creates the user"""
    _, page_on_ip, api, _ = both_hosts
    name = unique_name()
    page.goto(page_on_ip)
    text = sign_up(page, name)
    assert name in text, text
    assert [u["name"] for u in web.get(api + "/api/users").json() if u["name"] == name] == [name]


def test_a_page_on_another_port_is_still_blocked(both_hosts, page, static_server):
    _, _, api, folder = both_hosts
    other = static_server(folder, host="localhost")  # same files, another port
    before = len(web.get(api + "/api/users", params={"limit": 100}).json())
    page.goto(other + "/signup.html")
    name = unique_name()
    assert_not_welcomed(sign_up_blocked(page, name), name)
    assert len(web.get(api + "/api/users", params={"limit": 100}).json()) == before
