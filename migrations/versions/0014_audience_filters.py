"""audience filters: contacts.attributes as JSONB, a trigram index for contact search (PostgreSQL)

- contacts.attributes becomes JSONB on PostgreSQL (SQLite keeps JSON text). The values and
  their meaning do not change; PostgreSQL stores the object parsed (keys in its own order, no
  duplicate keys), so a filter reads one attribute without re-parsing the whole object for
  every condition on every row.
- ix_contacts_search_trgm: a GIN trigram index (extension pg_trgm) on email, first and last
  name joined by tabs (campaigns.models.contact_search_text), which `q` searches with ILIKE.
  SQLite has neither; its search reads the table, as before.

Revision ID: 0014_audience_filters
Revises: 0013_audiences
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014_audience_filters"
down_revision = "0013_audiences"
branch_labels = None
depends_on = None

# Must stay equal to campaigns.models.contact_search_text (kept here, as SQL, so the
# migration never changes meaning).
SEARCH_TEXT = "((((email || E'\\t') || first_name) || E'\\t') || last_name)"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("contacts", "attributes", type_=postgresql.JSONB(),
                    existing_type=sa.JSON(), existing_nullable=False,
                    postgresql_using="attributes::jsonb")
    # pg_trgm is a trusted extension: the database's owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(f"CREATE INDEX ix_contacts_search_trgm ON contacts USING gin "
               f"({SEARCH_TEXT} gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_contacts_search_trgm", table_name="contacts")
    op.alter_column("contacts", "attributes", type_=sa.JSON(),
                    existing_type=postgresql.JSONB(), existing_nullable=False,
                    postgresql_using="attributes::json")
