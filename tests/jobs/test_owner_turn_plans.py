"""The dispatcher's owner reads come from indexes, not from every owner who ever submitted: with 100 owners waiting
among 100,000 idle owner rows, the owner pick reads ``ix_owner_queues_turn`` in order (no sort) and the sum of jobs
in flight reads ``ix_owner_queues_busy`` (no scan of the table)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import isolated_database


@pytest.fixture(scope="module")
def crowded(app):
    """An app on its own database: 100,000 idle owners, 100 waiting (30 of them with a job in flight), analysed."""
    from app import create_app
    from app.extensions import db

    other = create_app({"SQLALCHEMY_DATABASE_URI": isolated_database("owner_turn")})
    with other.app_context():
        db.session.execute(sa.text(
            "INSERT INTO owner_queues (owner, waiting, inflight, served_at)"
            " SELECT 'user:idle' || n, 0, 0, now() - n * interval '1 second' FROM generate_series(1, 100000) AS n"
            " UNION ALL SELECT 'user:busy' || n, 3, CASE WHEN n <= 30 THEN 1 ELSE 0 END,"
            " CASE WHEN n % 10 = 0 THEN NULL ELSE now() - n * interval '1 minute' END FROM generate_series(1, 100) AS n"))
        db.session.commit()
        db.session.execute(sa.text("ANALYZE owner_queues"))
        db.session.commit()
        yield other
        db.session.remove()
        db.engine.dispose()


def plan_and_rows(statement: sa.Select) -> tuple[str, list]:
    """PostgreSQL's plan of a statement with its parameters inlined, and what it returns."""
    from app.extensions import db

    sql = str(statement.compile(db.engine, compile_kwargs={"literal_binds": True}))
    plan = "\n".join(db.session.execute(sa.text("EXPLAIN " + sql)).scalars())
    return plan, list(db.session.execute(statement))


def test_the_owner_pick_reads_the_turn_index_in_order(crowded):
    from app.jobs.dispatch import owners_in_turn_query

    with crowded.app_context():
        plan, rows = plan_and_rows(owners_in_turn_query(cap=2))
    assert "ix_owner_queues_turn" in plan and "Sort" not in plan and "Seq Scan" not in plan, plan
    owners = [row[0].owner for row in rows]
    # Never served first (by name), then the one served longest ago: busy99 (99 minutes ago; busy100 was never).
    assert owners[:10] == sorted(f"user:busy{n}" for n in range(10, 101, 10))
    assert owners[10:13] == ["user:busy99", "user:busy98", "user:busy97"]
    assert len(owners) == 100


def test_jobs_in_flight_are_summed_from_the_busy_index(crowded):
    from app.jobs.dispatch import in_flight_expression

    with crowded.app_context():
        plan, rows = plan_and_rows(sa.select(in_flight_expression()))
    assert "ix_owner_queues_busy" in plan and "Seq Scan" not in plan, plan
    assert rows[0][0] == 30
