"""schedules: jobs that run later (state Scheduled) and recurring schedules (cron, time zone, misfire policy)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:00:00.000000

The two new ``jobs`` columns are nullable without a default: adding them rewrites nothing. Their two partial
indexes (one job per schedule and slot; due Scheduled jobs) hold no row of an existing table and are built
CONCURRENTLY so a big jobs table keeps taking writes. The foreign key to ``schedules`` is added NOT VALID and
then validated, which scans ``jobs`` without blocking writes (every value is NULL).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

SLOT_ROWS = "schedule_id IS NOT NULL"
SCHEDULED_ROWS = "state = 'Scheduled'"
FK = 'fk_jobs_schedule_id_schedules'


def upgrade():
    op.create_table('schedules',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=False),
    sa.Column('report', sa.String(length=64), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('cron', sa.String(length=120), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('misfire', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('next_fire_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_fired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_job_id', sa.Uuid(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("misfire IN ('skip', 'run_once')", name=op.f('ck_schedules_misfire')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedules'))
    )
    op.create_index('ix_schedules_due', 'schedules', ['next_fire_at'], unique=False,
                    postgresql_where=sa.text('enabled'), sqlite_where=sa.text('enabled'))
    op.create_index('ix_schedules_owner_created', 'schedules', ['owner', 'created_at', 'id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        _postgresql_jobs()
    else:
        _sqlite_jobs()


def _postgresql_jobs():
    op.add_column('jobs', sa.Column('schedule_id', sa.Uuid(), nullable=True))
    op.add_column('jobs', sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=True))
    op.execute(f"ALTER TABLE jobs ADD CONSTRAINT {FK} FOREIGN KEY (schedule_id) REFERENCES schedules (id) "
               "ON DELETE SET NULL NOT VALID")
    op.execute(f"ALTER TABLE jobs VALIDATE CONSTRAINT {FK}")
    with op.get_context().autocommit_block():
        op.create_index('uq_jobs_schedule_slot', 'jobs', ['schedule_id', 'scheduled_for'], unique=True,
                        postgresql_where=sa.text(SLOT_ROWS), postgresql_concurrently=True, if_not_exists=True)
        op.create_index('ix_jobs_scheduled_due', 'jobs', ['scheduled_for'], unique=False,
                        postgresql_where=sa.text(SCHEDULED_ROWS), postgresql_concurrently=True, if_not_exists=True)


def _sqlite_jobs():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('schedule_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(FK, 'schedules', ['schedule_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index('uq_jobs_schedule_slot', ['schedule_id', 'scheduled_for'], unique=True,
                              sqlite_where=sa.text(SLOT_ROWS))
        batch_op.create_index('ix_jobs_scheduled_due', ['scheduled_for'], unique=False,
                              sqlite_where=sa.text(SCHEDULED_ROWS))


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_jobs_scheduled_due")
        op.execute("DROP INDEX IF EXISTS uq_jobs_schedule_slot")
        op.drop_constraint(FK, 'jobs', type_='foreignkey')
        op.drop_column('jobs', 'scheduled_for')
        op.drop_column('jobs', 'schedule_id')
    else:
        with op.batch_alter_table('jobs', schema=None) as batch_op:
            batch_op.drop_index('ix_jobs_scheduled_due')
            batch_op.drop_index('uq_jobs_schedule_slot')
            batch_op.drop_constraint(FK, type_='foreignkey')
            batch_op.drop_column('scheduled_for')
            batch_op.drop_column('schedule_id')
    op.drop_index('ix_schedules_owner_created', table_name='schedules')
    op.drop_index('ix_schedules_due', table_name='schedules', postgresql_where=sa.text('enabled'),
                  sqlite_where=sa.text('enabled'))
    op.drop_table('schedules')
