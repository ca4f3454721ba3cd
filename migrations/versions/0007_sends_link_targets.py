"""sends.link_targets: each sent message's rendered link targets, so a click never renders

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and without a default: rows sent before this revision keep NULL, and a click
    # on them falls back to rendering the message (tracking.services.compute_link_targets).
    with op.batch_alter_table("sends") as batch_op:
        batch_op.add_column(sa.Column("link_targets", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sends") as batch_op:
        batch_op.drop_column("link_targets")
