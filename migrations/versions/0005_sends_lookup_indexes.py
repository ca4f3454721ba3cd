"""sends lookup indexes: provider message id (SES notifications), partner + status (scorecards)

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sends") as batch_op:
        batch_op.create_index("ix_sends_provider_message_id", ["provider_message_id"])
        batch_op.create_index("ix_sends_partner_status", ["partner_id", "status"])


def downgrade() -> None:
    with op.batch_alter_table("sends") as batch_op:
        batch_op.drop_index("ix_sends_partner_status")
        batch_op.drop_index("ix_sends_provider_message_id")
