"""jobs.trace_parent: the creating request's span, so a later dispatch continues its trace

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:00:00.000000

A nullable column without a default: PostgreSQL adds it without rewriting the table.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('jobs', sa.Column('trace_parent', sa.String(length=64), nullable=True))


def downgrade():
    op.drop_column('jobs', 'trace_parent')
