"""contacts.attributes becomes JSONB on PostgreSQL (stored parsed: filters read it directly)

SQLite keeps JSON (text). The column's values and their meaning do not change; PostgreSQL
stores the object parsed (keys in its own order, no duplicate keys), so an audience filter
reads an attribute without re-parsing the whole object for every condition on every row.

Revision ID: 0016_contact_attributes_jsonb
Revises: 0015_conversions
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016_contact_attributes_jsonb"
down_revision = "0015_conversions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("contacts", "attributes", type_=postgresql.JSONB(),
                    existing_type=sa.JSON(), existing_nullable=False,
                    postgresql_using="attributes::jsonb")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("contacts", "attributes", type_=sa.JSON(),
                    existing_type=postgresql.JSONB(), existing_nullable=False,
                    postgresql_using="attributes::json")
