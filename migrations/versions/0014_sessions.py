"""sessions that end: a per-user session version, disabled users

Revision ID: 0014_sessions
Revises: 0013_audiences
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_sessions"
down_revision = "0013_audiences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every login session carries the version it was issued under; bumping it ends them all.
    # Sessions issued before this migration carry none and so end with it.
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("session_version", sa.Integer(), nullable=False,
                                      server_default="1"))
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("session_version")
