"""The settings (app/config.py): a bad one stops the app with one line naming it."""

import pytest

from app.config import get_settings


@pytest.fixture
def fresh_settings():
    """get_settings() reads the environment again (its cache emptied), before and after."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_short_jwt_secret_stops_the_app_with_one_line(monkeypatch, fresh_settings):
    monkeypatch.setenv("JWT_SECRET", "short")
    with pytest.raises(SystemExit) as stopped:
        get_settings()
    assert str(stopped.value).startswith("JWT_SECRET: at least 32 bytes")


def test_two_bad_settings_are_named_in_the_same_line(monkeypatch, fresh_settings):
    monkeypatch.setenv("OPENAI_TIMEOUT", "0")
    monkeypatch.setenv("CORS_ORIGINS", "localhost:8001")
    with pytest.raises(SystemExit) as stopped:
        get_settings()
    assert str(stopped.value) == (
        "CORS_ORIGINS: 'localhost:8001' is not an origin such as http://localhost:8001; "
        "OPENAI_TIMEOUT: Input should be greater than 0")
