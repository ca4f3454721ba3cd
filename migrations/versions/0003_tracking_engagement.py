"""tracking engagement: event idempotency keys, per-send engagement, rollups, SNS dedupe.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_key", sa.String(length=120), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_events_event_key"), ["event_key"])

    op.create_table(
        "send_engagements",
        sa.Column("send_id", BigId, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("opens", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("machine_opens", sa.Integer(), nullable=False),
        sa.Column("machine_clicks", sa.Integer(), nullable=False),
        sa.Column("first_open_at", sa.DateTime(), nullable=True),
        sa.Column("first_click_at", sa.DateTime(), nullable=True),
        sa.Column("unsubscribed_at", sa.DateTime(), nullable=True),
        sa.Column("bounced_at", sa.DateTime(), nullable=True),
        sa.Column("complained_at", sa.DateTime(), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["send_id"], ["sends.id"], name=op.f("fk_send_engagements_send_id_sends"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("send_id", name=op.f("pk_send_engagements")),
    )
    with op.batch_alter_table("send_engagements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_send_engagements_campaign_id"), ["campaign_id"], unique=False
        )

    counters = [
        sa.Column(name, sa.Integer(), nullable=False)
        for name in (
            "opens", "unique_opens", "clicks", "unique_clicks", "machine_opens",
            "machine_clicks", "unsubscribes", "bounces", "soft_bounces", "complaints",
            "deliveries",
        )
    ]
    op.create_table(
        "engagement_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("step_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("link_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        *counters,
        sa.PrimaryKeyConstraint(
            "day", "campaign_id", "step_index", "link_index", name=op.f("pk_engagement_rollups")
        ),
    )
    with op.batch_alter_table("engagement_rollups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_engagement_rollups_journey_day", ["journey_id", "day"], unique=False
        )
        batch_op.create_index(
            "ix_engagement_rollups_campaign_day", ["campaign_id", "day"], unique=False
        )
        batch_op.create_index("ix_engagement_rollups_partner_id", ["partner_id"], unique=False)

    op.create_table(
        "sns_messages",
        sa.Column("id", BigId, nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("topic_arn", sa.String(length=300), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sns_messages")),
        sa.UniqueConstraint("message_id", name=op.f("uq_sns_messages_message_id")),
    )


def downgrade() -> None:
    op.drop_table("sns_messages")
    with op.batch_alter_table("engagement_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_engagement_rollups_partner_id")
        batch_op.drop_index("ix_engagement_rollups_campaign_day")
        batch_op.drop_index("ix_engagement_rollups_journey_day")
    op.drop_table("engagement_rollups")
    with op.batch_alter_table("send_engagements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_send_engagements_campaign_id"))
    op.drop_table("send_engagements")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_events_event_key"), type_="unique")
        batch_op.drop_column("event_key")
