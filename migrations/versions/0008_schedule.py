"""scheduling and test sends: campaigns.send_at/timezone/recipient_timezone/starts_at, test_sends

Revision ID: 0008_schedule
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_schedule"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # All nullable (or defaulted): campaigns launched before this revision have no send_at,
    # which means "as soon as launched", exactly what they did.
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.add_column(sa.Column("send_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("recipient_timezone", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("starts_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.alter_column("recipient_timezone", server_default=None)
    op.create_table(
        "test_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("status IN ('sending', 'sent', 'failed')",
                           name=op.f("ck_test_sends_status_known")),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE",
                                name=op.f("fk_test_sends_campaign_id_campaigns")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"],
                                name=op.f("fk_test_sends_partner_id_partners")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_test_sends_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_test_sends")),
    )
    op.create_index("ix_test_sends_campaign_created", "test_sends",
                    ["campaign_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_test_sends_campaign_created", table_name="test_sends")
    op.drop_table("test_sends")
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_column("starts_at")
        batch_op.drop_column("recipient_timezone")
        batch_op.drop_column("timezone")
        batch_op.drop_column("send_at")
