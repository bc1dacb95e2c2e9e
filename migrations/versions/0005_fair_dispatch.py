"""fair dispatch: job priority, owners' lines kept at write time, worker slots, dispatch pauses

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:00:00.000000

Adding ``priority`` with a constant default rewrites nothing (PostgreSQL 11+). The dispatcher's partial index
holds only waiting jobs, built CONCURRENTLY so a big jobs table keeps taking writes. ``owner_queues`` is
backfilled with one INSERT ... SELECT ... GROUP BY over the unfinished jobs: jobs published before this
version (Enqueued with ``dispatched_at`` set) count as in flight, as they are (their messages are queued).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

WAITING_ROWS = "dispatched_at IS NULL AND state IN ('Enqueued', 'Retrying')"


def upgrade():
    op.add_column('jobs', sa.Column('priority', sa.SmallInteger(), nullable=False, server_default='5'))
    op.create_table('owner_queues',
    sa.Column('owner', sa.String(length=128), nullable=False),
    sa.Column('waiting', sa.Integer(), nullable=False),
    sa.Column('inflight', sa.Integer(), nullable=False),
    sa.Column('served_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('owner', name=op.f('pk_owner_queues'))
    )
    op.create_index('ix_owner_queues_turn', 'owner_queues', ['served_at'], unique=False,
                    postgresql_where=sa.text('waiting > 0'), sqlite_where=sa.text('waiting > 0'))
    op.create_table('worker_slots',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_worker_slots'))
    )
    op.create_table('dispatch_pauses',
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('paused_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paused_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('scope', name=op.f('pk_dispatch_pauses'))
    )
    op.execute(
        "INSERT INTO owner_queues (owner, waiting, inflight, served_at) "
        "SELECT owner, "
        f"sum(CASE WHEN {WAITING_ROWS} THEN 1 ELSE 0 END), "
        f"sum(CASE WHEN {WAITING_ROWS} THEN 0 ELSE 1 END), NULL "
        "FROM jobs WHERE state IN ('Enqueued', 'Retrying', 'Processing') GROUP BY owner"
    )
    _create_waiting_index()


def _create_waiting_index():
    columns = ['owner', sa.text('priority DESC'), 'created_at', 'id']
    if op.get_bind().dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            op.create_index('ix_jobs_waiting_turn', 'jobs', columns, unique=False, postgresql_concurrently=True,
                            postgresql_where=sa.text(WAITING_ROWS), if_not_exists=True)
    else:
        op.create_index('ix_jobs_waiting_turn', 'jobs', columns, unique=False, sqlite_where=sa.text(WAITING_ROWS))


def downgrade():
    op.drop_index('ix_jobs_waiting_turn', table_name='jobs')
    op.drop_table('dispatch_pauses')
    op.drop_table('worker_slots')
    op.drop_index('ix_owner_queues_turn', table_name='owner_queues', postgresql_where=sa.text('waiting > 0'),
                  sqlite_where=sa.text('waiting > 0'))
    op.drop_table('owner_queues')
    op.drop_column('jobs', 'priority')
