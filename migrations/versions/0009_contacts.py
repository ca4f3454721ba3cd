"""Contact records: hashed suppressions, erasable sends, consent history, tags

- lastmile_email_digest(text): the SHA-256 (hex) of a prefixed, lower-cased address; an
  IMMUTABLE SQL function on PostgreSQL, a Python function registered per connection on SQLite
  (campaigns.digest).
- suppressions.email_hash: that hash of the normalized address, which every suppression check
  matches on; suppressions.email becomes nullable (NULL once the contact was erased).
- contacts.email_hash: generated (stored) from contacts.email by the database, indexed: a
  contact's status is a plain join with the suppressions.
- sends.contact_id becomes nullable: an erased contact's sends stay (counts, rollups) with
  contact_id NULL and email ''.
- consent_events: who changed a contact's consent, when, how and from what source.
- contact_tags: one row per (contact, tag), filtered by (partner_id, tag).

Revision ID: 0009_contacts
Revises: 0008_schedule
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0009_contacts"
down_revision = "0008_schedule"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Must stay equal to campaigns.digest (kept here so the migration never changes meaning).
PREFIX = "lastmile-suppression-v1:"


FUNCTION = "lastmile_email_digest"


def _digest(value: str | None) -> str | None:
    if value is None:
        return None
    return hashlib.sha256((PREFIX + value.lower()).encode("utf-8")).hexdigest()


def _create_function() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Only immutable functions, so a generated column may use it and the planner inlines
        # it (no per-row function call): decode(..., 'escape') with backslashes doubled gives
        # the text's UTF-8 bytes exactly as convert_to(..., 'UTF8'), which is only STABLE.
        op.execute(
            f"CREATE OR REPLACE FUNCTION {FUNCTION}(address text) RETURNS text "
            "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT encode(sha256(decode("
            f"replace('{PREFIX}' || lower(address), '\\', '\\\\'), 'escape')), 'hex') $$"
        )
    elif bind.dialect.name == "sqlite":
        bind.connection.driver_connection.create_function(FUNCTION, 1, _digest,
                                                          deterministic=True)


def upgrade() -> None:
    _create_function()
    with op.batch_alter_table("suppressions") as batch_op:
        batch_op.add_column(sa.Column("email_hash", sa.String(length=64), nullable=True))
        batch_op.alter_column("email", existing_type=sa.String(length=320), nullable=True)
    op.execute("UPDATE suppressions SET email_hash = lastmile_email_digest(email)")
    with op.batch_alter_table("suppressions") as batch_op:
        batch_op.alter_column("email_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_suppressions_email_hash"),
                                          ["email_hash"])
    with op.batch_alter_table("sends") as batch_op:
        batch_op.alter_column("contact_id", existing_type=BigId, nullable=True)
    # SQLite cannot ADD a stored generated column: the batch rebuilds the table instead.
    with op.batch_alter_table("contacts", recreate="always" if op.get_bind().dialect.name
                              == "sqlite" else "auto") as batch_op:
        batch_op.add_column(sa.Column(
            "email_hash", sa.String(length=64),
            sa.Computed(f"{FUNCTION}(email)", persisted=True), nullable=True))
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_email_hash"), ["email_hash"],
                              unique=False)
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
        batch_op.drop_index(batch_op.f("ix_contacts_email_hash"))
    with op.batch_alter_table("contacts", recreate="always" if op.get_bind().dialect.name
                              == "sqlite" else "auto") as batch_op:
        batch_op.drop_column("email_hash")
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
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}(text)")
