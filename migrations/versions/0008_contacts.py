"""Contact records: hashed suppressions, erasable sends, consent history, tags

- suppressions.email_hash: the SHA-256 of the normalized address that every suppression
  check matches on; suppressions.email becomes nullable (NULL once the contact was erased).
- sends.contact_id becomes nullable: an erased contact's sends stay (counts, rollups) with
  contact_id NULL and email ''.
- contacts.email gets an index: a brand-wide suppression finds every partner's contact.
- consent_events: who changed a contact's consent, when, how and from what source.
- contact_tags: one row per (contact, tag), filtered by (partner_id, tag).

Revision ID: 0008_contacts
Revises: 0007
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0008_contacts"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Must stay equal to campaigns.digest (kept here so the migration never changes meaning).
PREFIX = "lastmile-suppression-v1:"


def _backfill_hashes() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("UPDATE suppressions SET email_hash = "
                             "encode(sha256(convert_to(:prefix || email, 'UTF8')), 'hex')"),
                     {"prefix": PREFIX})
        return
    rows = bind.execute(sa.text("SELECT id, email FROM suppressions")).all()
    for row_id, email in rows:
        digest = hashlib.sha256((PREFIX + email).encode("utf-8")).hexdigest()
        bind.execute(sa.text("UPDATE suppressions SET email_hash = :h WHERE id = :i"),
                     {"h": digest, "i": row_id})


def upgrade() -> None:
    with op.batch_alter_table("suppressions") as batch_op:
        batch_op.add_column(sa.Column("email_hash", sa.String(length=64), nullable=True))
        batch_op.alter_column("email", existing_type=sa.String(length=320), nullable=True)
    _backfill_hashes()
    with op.batch_alter_table("suppressions") as batch_op:
        batch_op.alter_column("email_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_suppressions_email_hash"),
                                          ["email_hash"])
    with op.batch_alter_table("sends") as batch_op:
        batch_op.alter_column("contact_id", existing_type=BigId, nullable=True)
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.create_index("ix_contacts_email", ["email"], unique=False)
    op.create_table(
        "consent_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("contact_id", BigId, nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("consent", sa.Boolean(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "source IN ('form', 'import', 'api', 'unsubscribe', 'bounce', 'complaint')",
            name=op.f("ck_consent_events_source_known")),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE",
                                name=op.f("fk_consent_events_contact_id_contacts")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"],
                                name=op.f("fk_consent_events_partner_id_partners")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL",
                                name=op.f("fk_consent_events_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    with op.batch_alter_table("consent_events") as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_events_contact_id"), ["contact_id"],
                              unique=False)
    op.create_table(
        "contact_tags",
        sa.Column("contact_id", BigId, nullable=False),
        sa.Column("tag", sa.String(length=50), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE",
                                name=op.f("fk_contact_tags_contact_id_contacts")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"],
                                name=op.f("fk_contact_tags_partner_id_partners")),
        sa.PrimaryKeyConstraint("contact_id", "tag", name=op.f("pk_contact_tags")),
    )
    with op.batch_alter_table("contact_tags") as batch_op:
        batch_op.create_index("ix_contact_tags_partner_id_tag", ["partner_id", "tag"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contact_tags") as batch_op:
        batch_op.drop_index("ix_contact_tags_partner_id_tag")
    op.drop_table("contact_tags")
    with op.batch_alter_table("consent_events") as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_events_contact_id"))
    op.drop_table("consent_events")
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.drop_index("ix_contacts_email")
    # Sends of erased contacts cannot exist without a contact before this revision: they go
    # (with their events), and the counts of their campaigns shrink accordingly.
    op.execute("DELETE FROM sends WHERE contact_id IS NULL")
    with op.batch_alter_table("sends") as batch_op:
        batch_op.alter_column("contact_id", existing_type=BigId, nullable=False)
    # An erased address kept only as a hash gets its hash as a placeholder: it matches nothing
    # before this revision, so such an address is no longer suppressed after a downgrade.
    op.execute("UPDATE suppressions SET email = email_hash WHERE email IS NULL")
    with op.batch_alter_table("suppressions") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_suppressions_email_hash"), type_="unique")
        batch_op.alter_column("email", existing_type=sa.String(length=320), nullable=False)
        batch_op.drop_column("email_hash")
