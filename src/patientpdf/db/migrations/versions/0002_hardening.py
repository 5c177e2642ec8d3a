"""key scopes and expiry, active content, idempotency keys, the audit chain, link salts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from patientpdf.db.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APPEND_ONLY_SQLITE = """
CREATE TRIGGER audit_events_no_{op} BEFORE {op} ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END
"""
APPEND_ONLY_POSTGRES = [
    """
    CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$
    """,
    """
    CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
    """,
]


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.String(100), nullable=False, server_default="upload,read,admin"))
        batch.add_column(sa.Column("expires_at", UtcDateTime, nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scopes", server_default=None)
    with op.batch_alter_table("pdfs") as batch:
        batch.add_column(sa.Column("active_content", sa.JSON, nullable=False, server_default="[]"))
    with op.batch_alter_table("pdfs") as batch:
        batch.alter_column("active_content", server_default=None)
    op.create_index("ix_pdfs_account_patient_sha256", "pdfs", ["account_id", "patient_id", "sha256", "id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("pdf_id", sa.String(40), nullable=True),
        sa.Column("locked_until", UtcDateTime, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key"),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(80), nullable=False),
        sa.Column("account_id", sa.Integer, nullable=True),
        sa.Column("key_prefix", sa.String(32), nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("patient_id", sa.Integer, nullable=True),
        sa.Column("pdf_id", sa.String(40), nullable=True),
        sa.Column("subject", sa.String(100), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_account_id", "audit_events", ["account_id"])
    if op.get_bind().dialect.name == "sqlite":
        for statement in ("UPDATE", "DELETE"):
            op.execute(APPEND_ONLY_SQLITE.format(op=statement))
    else:
        for statement in APPEND_ONLY_POSTGRES:
            op.execute(statement)
    op.create_table(
        "link_salts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("link_salts")
    op.drop_table("audit_events")
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP FUNCTION audit_events_append_only()")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_pdfs_account_patient_sha256", "pdfs")
    with op.batch_alter_table("pdfs") as batch:
        batch.drop_column("active_content")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("scopes")
