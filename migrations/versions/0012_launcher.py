"""the launcher: how far a partner got in a campaign's four steps, so a draft resumes there

Revision ID: 0012_launcher
Revises: 0011_imports
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_launcher"
down_revision = "0011_imports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing campaigns count as not started in the launcher (0 steps done). SQLite keeps the
    # default (it cannot drop one in place); PostgreSQL drops it like every other column's.
    op.add_column("campaigns", sa.Column("launch_steps_done", sa.Integer(), nullable=False,
                                         server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("campaigns", "launch_steps_done", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_column("launch_steps_done")
