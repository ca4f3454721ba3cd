"""engagement from evidence and conversions: proxied opens, integration keys, conversions

Revision ID: 0015_conversions
Revises: 0014_sessions
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_conversions"
down_revision = "0014_sessions"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ROLLUP_COLUMNS = ("proxied_opens", "conversions", "conversion_value_cents")


def upgrade() -> None:
    op.add_column("events", sa.Column("proxied", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    for name in ROLLUP_COLUMNS:
        kind = BigId if name == "conversion_value_cents" else sa.Integer()
        op.add_column("engagement_rollups", sa.Column(name, kind, nullable=False,
                                                      server_default="0"))
    op.create_table(
        "integration_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=12), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL",
                                name=op.f("fk_integration_keys_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_integration_keys_key_hash")),
    )
    op.create_table(
        "conversions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("integration_key_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("send_id", BigId, nullable=False),
        sa.Column("link_index", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value_cents", BigId, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("value_cents IS NULL OR value_cents >= 0",
                           name=op.f("ck_conversions_value_not_negative")),
        sa.ForeignKeyConstraint(["integration_key_id"], ["integration_keys.id"],
                                ondelete="SET NULL",
                                name=op.f("fk_conversions_integration_key_id_integration_keys")),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"], ondelete="CASCADE",
                                name=op.f("fk_conversions_send_id_sends")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint("external_id", name=op.f("uq_conversions_external_id")),
    )
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.create_index("ix_conversions_contact", ["contact_id"], unique=False)
        batch_op.create_index("ix_conversions_send", ["send_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversions_campaign_id"), ["campaign_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_conversions_journey_id"), ["journey_id"],
                              unique=False)


def downgrade() -> None:
    op.drop_table("conversions")
    op.drop_table("integration_keys")
    with op.batch_alter_table("engagement_rollups") as batch_op:
        for name in ROLLUP_COLUMNS:
            batch_op.drop_column(name)
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_column("proxied")
