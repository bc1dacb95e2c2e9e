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


def test_the_readme_configuration_table_names_every_setting_the_code_reads():
    """Each environment variable read in app/, scripts/, the gunicorn and Celery entry points or the Procfile has
    its own row (spelled out, not abbreviated) in the README's Configuration section."""
    import re

    from tests.conftest import ROOT

    read = re.compile(r"""(?:environ(?:\.get|\.setdefault)?\s*(?:\(|\[)|\b_int\(|\b_float\(|\benv\.get\(|"""
                      r"""\benv\.setdefault\(|\benv\[)\s*["']([A-Z][A-Z0-9_]{2,})["']""")
    sources = [*ROOT.glob("app/**/*.py"), *ROOT.glob("scripts/*.py"), *(ROOT / f for f in
               ("gunicorn.conf.py", "celery_worker.py", "wsgi.py"))]
    names = {name for path in sources for name in read.findall(path.read_text())}
    names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", (ROOT / "Procfile").read_text()))
    names -= {"PATH"}
    assert len(names) > 50  # the scan found the settings (a broken pattern would find none and pass)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = sorted(n for n in names if f"`{n}`" not in section)
    assert not missing, f"settings the code reads but the README's Configuration section does not list: {missing}"
