"""job results as chunks: a report streams its result, a download reads (and resumes) it piece by piece

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 02:00:00.000000

New results are written in chunks of 1 MiB (job_result_chunks); the ones already there stay whole in
job_results.content (chunk_size NULL) and are served from it. Nothing is copied, so upgrading a history of
millions of results takes an instant: a new table, a nullable column, and content no longer required.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('job_result_chunks',
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_result_chunks_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'seq', name=op.f('pk_job_result_chunks'))
    )
    with op.batch_alter_table('job_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chunk_size', sa.Integer(), nullable=True))
        batch_op.alter_column('content', existing_type=sa.LargeBinary(), nullable=True)


def downgrade():
    bind = op.get_bind()
    # Put each chunked result back together, one at a time (a result may be large).
    ids = [row[0] for row in bind.execute(sa.text("SELECT job_id FROM job_results WHERE chunk_size IS NOT NULL"))]
    for job_id in ids:
        chunks = bind.execute(sa.text("SELECT data FROM job_result_chunks WHERE job_id = :j ORDER BY seq"),
                              {"j": job_id}).scalars()
        bind.execute(sa.text("UPDATE job_results SET content = :c WHERE job_id = :j"),
                     {"c": b"".join(bytes(c) for c in chunks), "j": job_id})
    with op.batch_alter_table('job_results', schema=None) as batch_op:
        batch_op.alter_column('content', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column('chunk_size')
    op.drop_table('job_result_chunks')
