"""audiences: saved segments, and the index the brand's sharing rules count mail with

Revision ID: 0013_audiences
Revises: 0012_launcher
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_audiences"
down_revision = "0012_launcher"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"],
                                name=op.f("fk_segments_partner_id_partners")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL",
                                name=op.f("fk_segments_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("partner_id", "name", name=op.f("uq_segments_partner_id_name")),
    )
    op.create_index(op.f("ix_segments_partner_id"), "segments", ["partner_id"])
    # No batch copy of sends (or contacts): a plain CREATE INDEX on both databases.
    op.create_index("ix_sends_email_sent_at", "sends", ["email", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_sends_email_sent_at", table_name="sends")
    op.drop_index(op.f("ix_segments_partner_id"), table_name="segments")
    op.drop_table("segments")
