"""brand control: tier and region lists, journey versions, compliance rules

Revision ID: 0018_brandctl
Revises: 0017_network
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_brandctl"
down_revision = "0017_network"
branch_labels = None
depends_on = None


def _seed_lists() -> None:
    """Seed the lists from the tiers and regions partners and journeys already use."""
    conn = op.get_bind()
    seen: dict[tuple[str, str], str] = {}

    def note(kind: str, value) -> None:
        if not isinstance(value, str):
            return
        name = " ".join(value.split())[:50]
        if name and (kind, name.lower()) not in seen:
            seen[(kind, name.lower())] = name

    for tier, region in conn.execute(sa.text("SELECT tier, region FROM partners ORDER BY id")):
        note("tier", tier)
        note("region", region)
    journeys = sa.table("journeys", sa.column("audience_tiers", sa.JSON),
                        sa.column("audience_regions", sa.JSON))
    for tiers, regions in conn.execute(sa.select(journeys.c.audience_tiers,
                                                 journeys.c.audience_regions)):
        for value in tiers or []:
            note("tier", value)
        for value in regions or []:
            note("region", value)
    if seen:
        names = sa.table("audience_names", sa.column("kind", sa.String), sa.column("name", sa.String),
                         sa.column("key", sa.String), sa.column("created_at", sa.DateTime))
        now = conn.execute(sa.select(sa.func.current_timestamp())).scalar()
        op.bulk_insert(names, [{"kind": kind, "name": name, "key": key, "created_at": now}
                               for (kind, key), name in seen.items()])


def upgrade() -> None:
    op.create_table(
        "audience_names",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('tier','region')", name=op.f("ck_audience_names_kind_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_names")),
        sa.UniqueConstraint("kind", "key", name=op.f("uq_audience_names_kind_key")),
    )
    _seed_lists()
    with op.batch_alter_table("journeys") as batch_op:
        batch_op.add_column(sa.Column("previous_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False,
                                      server_default="1"))
        batch_op.create_foreign_key(op.f("fk_journeys_previous_id_journeys"), "journeys",
                                    ["previous_id"], ["id"])
        batch_op.create_index(op.f("ix_journeys_previous_id"), ["previous_id"])
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.add_column(sa.Column("previous_submission", sa.JSON(), nullable=True))
    op.create_table(
        "compliance_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("pattern", sa.String(length=500), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("journey_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('phrase', 'regex', 'image_domain')",
                           name=op.f("ck_compliance_rules_kind_known")),
        sa.ForeignKeyConstraint(["journey_id"], ["journeys.id"], ondelete="CASCADE",
                                name=op.f("fk_compliance_rules_journey_id_journeys")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL",
                                name=op.f("fk_compliance_rules_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_rules")),
    )
    op.create_index(op.f("ix_compliance_rules_journey_id"), "compliance_rules", ["journey_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_compliance_rules_journey_id"), table_name="compliance_rules")
    op.drop_table("compliance_rules")
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_column("previous_submission")
    with op.batch_alter_table("journeys") as batch_op:
        batch_op.drop_index(op.f("ix_journeys_previous_id"))
        batch_op.drop_constraint(op.f("fk_journeys_previous_id_journeys"), type_="foreignkey")
        batch_op.drop_column("version")
        batch_op.drop_column("previous_id")
    op.drop_table("audience_names")
