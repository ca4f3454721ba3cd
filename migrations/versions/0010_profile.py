"""partner profile: advisor name, title, photo, signature, disclosures; brand approval of changes

Revision ID: 0010_profile
Revises: 0009_contacts
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_profile"
down_revision = "0009_contacts"
branch_labels = None
depends_on = None

_NEW_PARTNER_COLUMNS = (
    ("display_name", sa.String(length=200)),
    ("advisor_name", sa.String(length=100)),
    ("title", sa.String(length=100)),
    ("photo_url", sa.String(length=2000)),
    ("signature", sa.Text()),
    ("disclosures", sa.Text()),
)


def upgrade() -> None:
    # Nullable: existing partners have no profile yet and emails fall back to the account name.
    with op.batch_alter_table("partners") as batch_op:
        for name, kind in _NEW_PARTNER_COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))

    op.create_table(
        "partner_profile_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=50), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=True),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'superseded')",
            name=op.f("ck_partner_profile_changes_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"],
            name=op.f("fk_partner_profile_changes_partner_id_partners"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["users.id"],
            name=op.f("fk_partner_profile_changes_requested_by_users"), ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"],
            name=op.f("fk_partner_profile_changes_decided_by_users"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_profile_changes")),
    )
    with op.batch_alter_table("partner_profile_changes") as batch_op:
        batch_op.create_index("ix_partner_profile_changes_partner_status",
                              ["partner_id", "status"], unique=False)
        batch_op.create_index("ix_partner_profile_changes_status", ["status"], unique=False)

    op.create_table(
        "brand_settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name=op.f("fk_brand_settings_updated_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_brand_settings")),
    )


def downgrade() -> None:
    op.drop_table("brand_settings")
    with op.batch_alter_table("partner_profile_changes") as batch_op:
        batch_op.drop_index("ix_partner_profile_changes_status")
        batch_op.drop_index("ix_partner_profile_changes_partner_status")
    op.drop_table("partner_profile_changes")
    with op.batch_alter_table("partners") as batch_op:
        for name, _kind in reversed(_NEW_PARTNER_COLUMNS):
            batch_op.drop_column(name)
