"""history at scale: list indexes in (created_at, id) order, trigram search, finished-job buckets, no broker_epoch

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000

On PostgreSQL every index is built with CREATE INDEX CONCURRENTLY outside any transaction, so writes go on
while a big table is indexed (an index left invalid by an interrupted run is dropped and built again on the
next run); the indexes they replace are dropped CONCURRENTLY afterwards. Everything else is one short
transaction: the bucket table, its backfill (one GROUP BY over the finished jobs) and dropping broker_epoch
(a catalog change; lock_timeout keeps it from queueing writes behind a long transaction).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# Frozen copies (a migration must not change when the app does): app/jobs/models.py, app/jobs/throughput.py.
FINAL = "('Succeeded', 'Failed', 'Cancelled')"
NEW_INDEXES = {
    'ix_jobs_created_id': ['created_at', 'id'],
    'ix_jobs_state_created_id': ['state', 'created_at', 'id'],
    'ix_jobs_report_created_id': ['report', 'created_at', 'id'],
    'ix_jobs_report_state_created_id': ['report', 'state', 'created_at', 'id'],
    'ix_jobs_owner_created_id': ['owner', 'created_at', 'id'],
    'ix_jobs_owner_state_created_id': ['owner', 'state', 'created_at', 'id'],
    'ix_jobs_state_finished': ['state', 'finished_at'],
}
# Carried in the leaf pages (PostgreSQL only): owner + report is checked without reading the table.
INCLUDE = {
    'ix_jobs_owner_created_id': ['report'],
    'ix_jobs_owner_state_created_id': ['report'],
}
OLD_INDEXES = {
    'ix_jobs_created_at': ['created_at'],
    'ix_jobs_state': ['state'],
    'ix_jobs_report': ['report'],
    'ix_jobs_owner_created': ['owner', 'created_at'],
}
SEARCH_INDEX = 'ix_jobs_search_trgm'
SEARCH_DOCUMENT = ("(CAST(id AS TEXT) || ' ' || CAST(params AS TEXT) || ' ' || coalesce(error_type, '') || ' ' "
                   "|| coalesce(error_message, ''))")


def upgrade():
    dialect = op.get_bind().dialect.name
    op.create_table('job_finished_buckets',
    sa.Column('unit', sa.String(length=8), nullable=False),
    sa.Column('start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('unit', 'start', 'state', 'shard', name=op.f('pk_job_finished_buckets'))
    )
    for statement in _backfill(dialect):
        op.execute(statement)
    if dialect == 'postgresql':
        op.execute("SET LOCAL lock_timeout = '10s'")
        op.drop_column('jobs', 'broker_epoch')
        with op.get_context().autocommit_block():
            _postgresql_indexes()
    else:
        with op.batch_alter_table('jobs', schema=None) as batch_op:
            batch_op.drop_column('broker_epoch')
            for name, columns in NEW_INDEXES.items():
                batch_op.create_index(name, columns, unique=False)
            for name in OLD_INDEXES:
                batch_op.drop_index(name)


def _backfill(dialect):
    """Buckets from the finished jobs still in the table (shard 0) and the purged ones' daily roll-ups (shard 1).

    Minutes only for the last two hours (the chart shows one); days for the whole history.
    """
    if dialect == 'postgresql':
        day, minute = "date_trunc('day', finished_at, 'UTC')", "date_trunc('minute', finished_at, 'UTC')"
        rolled_day, recent = "(day::timestamp AT TIME ZONE 'UTC')", "now() - interval '2 hours'"
    else:  # SQLAlchemy's SQLite storage format for DateTime
        day, minute = "strftime('%Y-%m-%d 00:00:00.000000', finished_at)", "strftime('%Y-%m-%d %H:%M:00.000000', finished_at)"
        rolled_day, recent = "(day || ' 00:00:00.000000')", "strftime('%Y-%m-%d %H:%M:%S', 'now', '-2 hours')"
    insert = "INSERT INTO job_finished_buckets (unit, start, state, shard, value) "
    finished = f"FROM jobs WHERE state IN {FINAL} AND finished_at IS NOT NULL"
    return [
        insert + f"SELECT 'day', {day}, state, 0, count(*) {finished} GROUP BY {day}, state",
        insert + f"SELECT 'minute', {minute}, state, 0, count(*) {finished} AND finished_at >= {recent} "
                 f"GROUP BY {minute}, state",
        insert + f"SELECT 'day', {rolled_day}, state, 1, sum(jobs) FROM job_daily_counts WHERE state IN {FINAL} "
                 f"GROUP BY {rolled_day}, state",
    ]


def _postgresql_indexes():
    """Build the new indexes without blocking writes, then drop the ones they replace."""
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("SET maintenance_work_mem = '256MB'")  # this session only: a faster build of the big ones
    for name, columns in NEW_INDEXES.items():
        include = f" INCLUDE ({', '.join(INCLUDE[name])})" if name in INCLUDE else ""
        _create_concurrently(name, f"ON jobs ({', '.join(columns)}){include}")
    _create_concurrently(SEARCH_INDEX, f"ON jobs USING gin ({SEARCH_DOCUMENT} gin_trgm_ops)")
    for name in OLD_INDEXES:
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute("RESET maintenance_work_mem")
    op.execute("ANALYZE jobs")  # statistics of the search expression, which the planner's choices need


def _create_concurrently(name, definition):
    # An interrupted CONCURRENTLY build leaves an invalid index behind that IF NOT EXISTS would keep.
    invalid = op.get_bind().execute(sa.text(
        "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name AND NOT i.indisvalid"
    ), {"name": name}).first()
    if invalid:
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} {definition}")


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == 'postgresql':
        with op.get_context().autocommit_block():
            for name, columns in OLD_INDEXES.items():
                _create_concurrently(name, f"ON jobs ({', '.join(columns)})")
            for name in [*NEW_INDEXES, SEARCH_INDEX]:
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        op.add_column('jobs', sa.Column('broker_epoch', sa.String(length=64), nullable=True))
    else:
        with op.batch_alter_table('jobs', schema=None) as batch_op:
            for name, columns in OLD_INDEXES.items():
                batch_op.create_index(name, columns, unique=False)
            for name in NEW_INDEXES:
                batch_op.drop_index(name)
            batch_op.add_column(sa.Column('broker_epoch', sa.String(length=64), nullable=True))
    op.drop_table('job_finished_buckets')
