"""contact imports become queue jobs: the file lives in import_chunks, a heartbeat shows life

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_jobs") as batch_op:
        batch_op.drop_column("path")
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("import_jobs") as batch_op:
        batch_op.alter_column("attempts", server_default=None)
    op.create_table(
        "import_chunks",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["import_jobs.id"], ondelete="CASCADE",
                                name=op.f("fk_import_chunks_job_id_import_jobs")),
        sa.PrimaryKeyConstraint("job_id", "seq", name=op.f("pk_import_chunks")),
    )


def downgrade() -> None:
    op.drop_table("import_chunks")
    with op.batch_alter_table("import_jobs") as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("attempts")
        batch_op.add_column(sa.Column("path", sa.String(length=1000), nullable=False,
                                      server_default=""))
