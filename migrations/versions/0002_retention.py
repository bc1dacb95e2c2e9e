"""retention roll-ups and tombstones

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 21:03:20.058506

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    
    op.create_table('job_daily_counts',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('report', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('jobs', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.BigInteger(), nullable=False),
    sa.Column('duration_sum', sa.Float(), nullable=False),
    sa.Column('wait_sum', sa.Float(), nullable=False),
    sa.Column('duration_buckets', sa.JSON(), nullable=False),
    sa.Column('wait_buckets', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'report', 'state', name=op.f('pk_job_daily_counts'))
    )
    op.create_table('purged_jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=False),
    sa.Column('report', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('purged_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_purged_jobs'))
    )
    with op.batch_alter_table('purged_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_purged_jobs_purged_at'), ['purged_at'], unique=False)

    


def downgrade():
    
    with op.batch_alter_table('purged_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_purged_jobs_purged_at'))

    op.drop_table('purged_jobs')
    op.drop_table('job_daily_counts')
    
