"""Pooled PostgreSQL connections are pinged only after sitting idle (issue 14: a ping per transaction was six
round trips per job): a connection the server cut while it sat idle is replaced without an error, a busy one is
used without a ping. Real PostgreSQL; the server kills the connection (pg_terminate_backend)."""
from __future__ import annotations

import time
from unittest import mock

import psycopg2
import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from tests.conftest import PG_ADMIN_URL

IDLE = 0.3


@pytest.fixture
def idle_app(app):
    """An app on the test database whose connections are pinged after ``IDLE`` seconds in the pool."""
    fresh = create_app({"LONGRUN_DB_PING_IDLE_SECONDS": IDLE})
    with fresh.app_context():
        yield fresh
        db.engine.dispose()


def backend_pid() -> int:
    with db.engine.connect() as conn:
        return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


def kill(pid: int) -> None:
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert cur.fetchone()[0]
    admin.close()


def test_a_connection_the_server_cut_while_idle_is_replaced_without_an_error(idle_app):
    pid = backend_pid()
    kill(pid)
    time.sleep(IDLE + 0.1)
    assert backend_pid() != pid  # pinged at checkout, found dead, reconnected: the caller saw nothing


def test_a_connection_back_from_use_a_moment_ago_is_not_pinged_but_one_that_sat_idle_is(idle_app):
    backend_pid()  # one pooled connection, given back just now
    with mock.patch.object(db.engine.dialect, "do_ping", wraps=db.engine.dialect.do_ping) as ping:
        for _ in range(5):
            backend_pid()
        assert ping.call_count == 0
        time.sleep(IDLE + 0.1)
        backend_pid()
        assert ping.call_count == 1


def test_zero_pings_before_every_use(app):
    every = create_app({"LONGRUN_DB_PING_IDLE_SECONDS": 0})
    with every.app_context():
        backend_pid()
        with mock.patch.object(db.engine.dialect, "do_ping", wraps=db.engine.dialect.do_ping) as ping:
            backend_pid()
            backend_pid()
        assert ping.call_count == 2
        db.engine.dispose()
