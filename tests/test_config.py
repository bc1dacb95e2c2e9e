"""Configuration: Heroku URLs accepted, production refuses to start without a secret."""
import pytest

from app.config import ConfigError, load_config, normalize_database_url


def test_heroku_and_bare_postgres_urls_use_psycopg2():
    assert normalize_database_url("postgres://u:p@h:5432/d") == "postgresql+psycopg2://u:p@h:5432/d"
    assert normalize_database_url("postgresql://h/d") == "postgresql+psycopg2://h/d"
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_production_requires_secret_key(monkeypatch):
    monkeypatch.setenv("LONGRUN_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        load_config()


def test_time_limits_must_fit_inside_visibility_timeout(monkeypatch):
    monkeypatch.setenv("LONGRUN_HARD_TIME_LIMIT", "700")
    monkeypatch.setenv("LONGRUN_VISIBILITY_TIMEOUT", "600")
    with pytest.raises(ConfigError, match="soft < hard < visibility"):
        load_config()


def test_sqlite_is_the_zero_setup_default(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert load_config()["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")


def test_bad_number_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LONGRUN_HEARTBEAT_SECONDS", "soon")
    with pytest.raises(ConfigError, match="LONGRUN_HEARTBEAT_SECONDS must be a number"):
        load_config()
