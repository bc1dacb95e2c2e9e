"""jobs.checkpoint: a long report's cursor, so a later attempt resumes where the last one stopped

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 21:00:00.000000

A nullable column without a default: PostgreSQL adds it without rewriting the table.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('jobs', sa.Column('checkpoint', sa.JSON(none_as_null=True), nullable=True))


def downgrade():
    op.drop_column('jobs', 'checkpoint')
