"""job counters kept at write time, backfilled from existing rows; daily roll-ups keep only job counts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 10:00:00.000000

The backfill continues exactly where /metrics stood: live rows plus what the daily roll-ups kept of purged
jobs (jobs created and finished also count the tombstones of operator deletes, which the old scrape lost).
One INSERT ... SELECT ... GROUP BY per kind over the jobs table; the roll-up rows are few.
"""
import json
from collections import defaultdict

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# Frozen copies (a migration must not change when the app does): app/jobs/counters.py.
BUCKETS = ('0.1', '0.5', '1', '2.5', '5', '10', '30', '60', '300', '900', '3600')
FINAL = "('Succeeded', 'Failed', 'Cancelled')"
COLUMNS = "INSERT INTO job_counters (name, report, label, shard, value, seconds) "


def upgrade():
    op.create_table('job_counters',
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.Column('report', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=16), nullable=False),
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name', 'report', 'label', 'shard', name=op.f('pk_job_counters'))
    )
    bind = op.get_bind()
    for statement in _from_rows(bind.dialect.name):
        bind.execute(sa.text(statement))
    _from_daily_roll_ups(bind)

    with op.batch_alter_table('job_daily_counts', schema=None) as batch_op:
        for column in ('attempts', 'duration_sum', 'wait_sum', 'duration_buckets', 'wait_buckets'):
            batch_op.drop_column(column)


def _seconds(start, end, dialect):
    if dialect == 'postgresql':
        return f"EXTRACT(EPOCH FROM ({end} - {start}))"
    # julianday() is a double of days: ~10 us of noise, rounded off to whole milliseconds.
    return f"round((julianday({end}) - julianday({start})) * 86400.0, 3)"


def _bucket(seconds):
    whens = " ".join(f"WHEN {seconds} <= {bound} THEN '{bound}'" for bound in BUCKETS)
    return f"CASE {whens} ELSE '+Inf' END"


def _histogram(name, start, end, where, dialect):
    seconds = f"(CASE WHEN {_seconds(start, end, dialect)} < 0 THEN 0 ELSE {_seconds(start, end, dialect)} END)"
    return (COLUMNS + f"SELECT '{name}', report, bucket, 0, count(*), sum(secs) FROM "
            f"(SELECT report, {_bucket(seconds)} AS bucket, {seconds} AS secs FROM jobs WHERE {where}) AS observed "
            "GROUP BY report, bucket")


def _from_rows(dialect):
    """Live jobs into shard 0; jobs created and finished that only a tombstone remembers into shard 2."""
    return [
        COLUMNS + "SELECT 'created', report, '', 0, count(*), 0 FROM jobs GROUP BY report",
        COLUMNS + "SELECT 'created', report, '', 2, count(*), 0 FROM purged_jobs GROUP BY report",
        COLUMNS + "SELECT 'in_state', report, state, 0, count(*), 0 FROM jobs GROUP BY report, state",
        COLUMNS + f"SELECT 'finished', report, state, 0, count(*), 0 FROM jobs WHERE state IN {FINAL} "
                  "GROUP BY report, state",
        COLUMNS + f"SELECT 'finished', report, state, 2, count(*), 0 FROM purged_jobs WHERE state IN {FINAL} "
                  "GROUP BY report, state",
        COLUMNS + "SELECT 'attempts', report, '', 0, sum(attempts), 0 FROM jobs WHERE attempts > 0 GROUP BY report",
        COLUMNS + "SELECT 'started', report, '', 0, count(*), 0 FROM jobs WHERE started_at IS NOT NULL "
                  "GROUP BY report",
        _histogram('queue_wait', 'created_at', 'started_at', 'started_at IS NOT NULL', dialect),
        _histogram('duration', 'started_at', 'finished_at',
                   f'started_at IS NOT NULL AND finished_at IS NOT NULL AND state IN {FINAL}', dialect),
    ]


def _from_daily_roll_ups(bind):
    """Shard 1: attempts, starts and histograms of purged jobs, which only the roll-ups kept (few rows)."""
    rows = defaultdict(lambda: [0, 0.0])
    for report, attempts, duration_sum, wait_sum, durations, waits in bind.execute(sa.text(
            "SELECT report, attempts, duration_sum, wait_sum, duration_buckets, wait_buckets FROM job_daily_counts")):
        durations, waits = _as_dict(durations), _as_dict(waits)
        rows[('attempts', report, '')][0] += attempts or 0
        rows[('started', report, '')][0] += sum(int(n) for n in waits.values())
        for name, buckets, total in (('duration', durations, duration_sum), ('queue_wait', waits, wait_sum)):
            for bound, n in buckets.items():
                rows[(name, report, bound)][0] += int(n)
            if buckets:  # the sum of a histogram lives on its buckets' rows; put it on the first one
                rows[(name, report, next(iter(buckets)))][1] += total or 0.0
    values = [{'name': n, 'report': r, 'label': lb, 'value': v, 'seconds': s}
              for (n, r, lb), (v, s) in rows.items() if v or s]
    if values:
        bind.execute(sa.text(COLUMNS + "VALUES (:name, :report, :label, 1, :value, :seconds)"), values)


def _as_dict(raw):
    if isinstance(raw, str):
        raw = json.loads(raw)
    return raw or {}


def downgrade():
    # The roll-ups' histogram columns come back empty: what they held now lives in job_counters only.
    with op.batch_alter_table('job_daily_counts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('duration_sum', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('wait_sum', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('duration_buckets', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('wait_buckets', sa.JSON(), nullable=False, server_default='{}'))
    op.drop_table('job_counters')
