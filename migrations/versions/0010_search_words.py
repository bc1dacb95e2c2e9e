"""jobs: a GIN index of the searched text's words, so a search costs what it finds, not what the history holds

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 00:00:00.000000

PostgreSQL only (SQLite searches with LIKE and has no such index). Built CONCURRENTLY outside any transaction,
so submits and transitions go on while a big table is indexed; an index left invalid by an interrupted run is
dropped and built again on the next run. ANALYZE afterwards: the planner needs the words' statistics to pick it.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# Frozen copy (a migration must not change when the app does) of app/jobs/models.py's SEARCH_WORDS.
INDEX = 'ix_jobs_search_words'
DOCUMENT = ("(CAST(id AS TEXT) || ' ' || CAST(params AS TEXT) || ' ' || coalesce(error_type, '') || ' ' "
            "|| coalesce(error_message, ''))")
WORDS = (f"array_to_tsvector(array_remove(regexp_split_to_array(regexp_replace(lower(left({DOCUMENT}, 100000)), "
         "'([a-z0-9_-]{64})[a-z0-9_-]+', '\\1', 'g'), '[^a-z0-9_-]+'), ''))")


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    with op.get_context().autocommit_block():
        invalid = op.get_bind().execute(sa.text(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = :name AND NOT i.indisvalid"), {"name": INDEX}).first()
        if invalid:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        op.execute("SET maintenance_work_mem = '256MB'")  # this session only: a faster build on a big table
        op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON jobs USING gin ({WORDS})")
        op.execute("RESET maintenance_work_mem")
        op.execute("ANALYZE jobs")


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
