"""owner_queues: the owner pick and the jobs-in-flight sum read from indexes, whatever the number of owners

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 12:00:00.000000

``owner_queues`` keeps a row for every owner who ever submitted. The dispatcher's owner pick orders the waiting
owners by ``served_at NULLS FIRST, owner``: the old ``(served_at)`` index could not give that order, so every
waiting owner was sorted. Its sum of ``inflight`` over busy owners read every owner row. The new turn index gives
the pick's order directly; the busy index holds only owners with jobs in flight. Both are built CONCURRENTLY on
PostgreSQL, so submits and dispatch go on meanwhile.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

def upgrade():
    # SQLite has no NULLS FIRST in an index, and needs none: it sorts NULL first in ascending order anyway.
    first = sa.text('served_at NULLS FIRST') if op.get_bind().dialect.name == 'postgresql' else 'served_at'
    _replace_turn_index([first, 'owner'], 'ix_owner_queues_turn_v2')
    _create('ix_owner_queues_busy', ['inflight'], 'inflight > 0')


def downgrade():
    op.drop_index('ix_owner_queues_busy', table_name='owner_queues')
    _replace_turn_index(['served_at'], 'ix_owner_queues_turn_v1')


def _replace_turn_index(columns, temporary):
    """Build the new turn index under a temporary name, drop the old one, then take its name: never without one."""
    _create(temporary, columns, 'waiting > 0')
    op.drop_index('ix_owner_queues_turn', table_name='owner_queues')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'ALTER INDEX {temporary} RENAME TO ix_owner_queues_turn')
    else:
        # SQLite cannot rename an index; its tables are small (local use only): build it again under its name.
        _create('ix_owner_queues_turn', columns, 'waiting > 0')
        op.drop_index(temporary, table_name='owner_queues')


def _create(name, columns, where):
    """A partial index on owner_queues, CONCURRENTLY on PostgreSQL."""
    if op.get_bind().dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            op.create_index(name, 'owner_queues', columns, unique=False, postgresql_concurrently=True,
                            postgresql_where=sa.text(where), if_not_exists=True)
    else:
        op.create_index(name, 'owner_queues', columns, unique=False, sqlite_where=sa.text(where))
