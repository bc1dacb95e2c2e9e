"""Database errors are named for what they are: 503 only when PostgreSQL cannot be reached, else 409/422/500.

The statements run on the real PostgreSQL through test-only routes of a fresh app (no API route can
provoke them on purpose); the outage case is tests/jobs/test_faults.py, which stops a real database.
"""
import logging

import pytest
from sqlalchemy import text

from app import create_app
from app.extensions import db

PROVOKE = {
    "integrity": "INSERT INTO jobs (id, owner, report, params, state) "
                 "SELECT id, owner, report, params, state FROM jobs LIMIT 1",  # the same primary key again
    "not-null": "INSERT INTO jobs (id) VALUES (NULL)",
    "data": "SELECT CAST('not a number' AS integer)",
    "range": "SELECT 2147483647::integer + 1",
    "timeout": "SET LOCAL statement_timeout = 10; SELECT pg_sleep(1)",  # an OperationalError on a live connection
    "programming": "SELECT * FROM no_such_table",
}


@pytest.fixture(scope="module")
def provoking_app(app):
    """A fresh app on the test database with one route per statement that fails in PostgreSQL."""
    fresh = create_app()

    @fresh.get("/_test/provoke/<kind>")
    def provoke(kind: str) -> str:
        db.session.execute(text(PROVOKE[kind]))
        return "unreachable"

    @fresh.get("/_test/alive")
    def alive() -> str:
        # The same scoped session answers again: the failed transaction was rolled back.
        return str(db.session.execute(text("SELECT count(*) FROM jobs")).scalar_one())

    return fresh


@pytest.fixture
def api(provoking_app, client):
    from tests.helpers import submit

    submit(client, duration_seconds=0, steps=1)  # a row for the duplicate-key insert to copy
    return provoking_app.test_client()


def _problem(response, status: int, title: str, slug: str) -> dict:
    body = response.get_json()
    assert response.status_code == status, body
    assert response.mimetype == "application/problem+json"
    assert body["title"] == title and body["type"] == f"/problems/{slug}", body
    text_ = response.get_data(as_text=True)
    # Never the driver's message (it may quote stored values) nor a traceback.
    assert "Traceback" not in text_ and "psycopg2" not in text_ and "duplicate key" not in text_
    assert "Retry-After" not in response.headers  # not "try again": the same request fails the same way
    return body


@pytest.mark.parametrize("kind", ["integrity", "not-null"])
def test_integrity_error_is_409_conflict(api, kind):
    _problem(api.get(f"/_test/provoke/{kind}"), 409, "Conflict", "data-conflict")
    assert api.get("/_test/alive").status_code == 200


@pytest.mark.parametrize("kind", ["data", "range"])
def test_data_error_is_422(api, kind):
    _problem(api.get(f"/_test/provoke/{kind}"), 422, "Unprocessable Content", "invalid-data")
    assert api.get("/_test/alive").status_code == 200


@pytest.mark.parametrize("kind", ["timeout", "programming"])
def test_other_database_errors_are_500_and_logged(api, kind, caplog):
    # Alembic's fileConfig (the session's migration) disabled loggers that existed then; this one must log.
    logging.getLogger("app.errors").disabled = False
    with caplog.at_level(logging.ERROR, logger="app.errors"):
        _problem(api.get(f"/_test/provoke/{kind}"), 500, "Internal Server Error", "internal-server-error")
    assert any(r.exc_info for r in caplog.records), "the traceback goes to the log"
    assert api.get("/_test/alive").status_code == 200


def test_unreachable_database_is_503(app):
    refused = create_app({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg2://postgres@127.0.0.1:1/nothing"})

    @refused.get("/_test/alive")
    def alive() -> str:
        return str(db.session.execute(text("SELECT 1")).scalar_one())

    response = refused.test_client().get("/_test/alive")
    body = response.get_json()
    assert response.status_code == 503 and body["type"] == "/problems/database-unavailable", body
    assert response.headers["Retry-After"] == "5"
