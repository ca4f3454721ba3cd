"""contact imports that say what they will do: mapping, dry run, consent source

Revision ID: 0011_imports
Revises: 0010_profile
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_imports"
down_revision = "0010_profile"
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('queued', 'checking', 'importing', 'done', 'failed')"
NEW_STATUSES = "status IN ('uploaded', 'queued', 'checking', 'importing', 'done', 'failed')"
JOB_COLUMNS = ("dry_run", "encoding", "delimiter", "columns", "preview", "mapping",
               "consent_source")


def upgrade() -> None:
    # Plain ALTERs on contacts: a batch copy on SQLite would try to write its generated
    # email_hash column. SQLite keeps the empty default (it cannot drop one in place).
    op.add_column("contacts", sa.Column("consent_source", sa.Text(), nullable=False,
                                        server_default=""))
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("contacts", "consent_source", server_default=None)

    with op.batch_alter_table("import_jobs") as batch_op:
        batch_op.add_column(sa.Column("dry_run", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("encoding", sa.String(length=20), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("delimiter", sa.String(length=1), nullable=False,
                                      server_default=","))
        batch_op.add_column(sa.Column("columns", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("preview", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("mapping", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("consent_source", sa.Text(), nullable=False,
                                      server_default=""))
        batch_op.drop_constraint(op.f("ck_import_jobs_status_known"), type_="check")
        batch_op.create_check_constraint(op.f("ck_import_jobs_status_known"), NEW_STATUSES)
    with op.batch_alter_table("import_jobs") as batch_op:
        for name in ("dry_run", "encoding", "delimiter", "consent_source"):
            batch_op.alter_column(name, server_default=None)


def downgrade() -> None:
    # Uploads still waiting for their mapping cannot be represented before this revision.
    op.execute("DELETE FROM import_chunks WHERE job_id IN "
               "(SELECT id FROM import_jobs WHERE status = 'uploaded')")
    op.execute("DELETE FROM import_jobs WHERE status = 'uploaded'")
    with op.batch_alter_table("import_jobs") as batch_op:
        batch_op.drop_constraint(op.f("ck_import_jobs_status_known"), type_="check")
        batch_op.create_check_constraint(op.f("ck_import_jobs_status_known"), OLD_STATUSES)
        for name in JOB_COLUMNS:
            batch_op.drop_column(name)
    op.drop_column("contacts", "consent_source")
