"""processing: the jobs table, extractions and their pages, the page search index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

from patientpdf.db.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The search index, per database. Both index the same normalised terms (services/matching.py
# folds case and accents before anything reaches the database), so they find the same pages.
SEARCH_SQLITE = [
    # rowid = pdf_pages.id; the terms are already folded: unicode61 only splits them on spaces
    "CREATE VIRTUAL TABLE page_search USING fts5(terms, tokenize = 'unicode61 remove_diacritics 2')",
]
SEARCH_POSTGRES = [
    """
    CREATE TABLE page_search (
        page_id INTEGER PRIMARY KEY REFERENCES pdf_pages (id),
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        terms tsvector NOT NULL
    )
    """,
    "CREATE INDEX ix_page_search_terms ON page_search USING GIN (terms)",
]


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(100), nullable=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("run_at", UtcDateTime, nullable=False),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", UtcDateTime, nullable=True),
        sa.Column("error", sa.String(60), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=True),
        sa.Column("finished_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_jobs_status_run_at", "jobs", ["status", "run_at"])
    op.create_index("ix_jobs_status_lease_until", "jobs", ["status", "lease_until"])
    op.create_index("ux_jobs_kind_subject", "jobs", ["kind", "subject"], unique=True)
    op.create_table(
        "pdf_extractions",
        sa.Column("pdf_id", sa.String(40), sa.ForeignKey("pdfs.id"), primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("page_count", sa.Integer, nullable=False),
        sa.Column("pages_ocr", sa.Integer, nullable=False),
        sa.Column("engines", sa.JSON, nullable=False),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("written_by", sa.String(100), nullable=False),
        sa.Column("finished_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_pdf_extractions_account_patient", "pdf_extractions", ["account_id", "patient_id", "pdf_id"])
    op.create_table(
        "pdf_pages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("pdf_id", sa.String(40), sa.ForeignKey("pdfs.id"), nullable=False),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("page", sa.Integer, nullable=False),
        sa.Column("width", sa.Float, nullable=False),
        sa.Column("height", sa.Float, nullable=False),
        sa.Column("rotation", sa.Integer, nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("words", sa.JSON, nullable=False),
    )
    op.create_index("ux_pdf_pages_pdf_page", "pdf_pages", ["pdf_id", "page"], unique=True)
    op.create_index("ix_pdf_pages_account_patient", "pdf_pages", ["account_id", "patient_id"])
    for statement in SEARCH_SQLITE if op.get_bind().dialect.name == "sqlite" else SEARCH_POSTGRES:
        op.execute(statement)
    # PDFs stored before processing existed get their job too: every PDF row has one.
    jobs = sa.table(
        "jobs",
        sa.column("kind", sa.String), sa.column("subject", sa.String), sa.column("account_id", sa.Integer),
        sa.column("payload", sa.JSON), sa.column("status", sa.String), sa.column("attempts", sa.Integer),
        sa.column("max_attempts", sa.Integer), sa.column("run_at", UtcDateTime), sa.column("created_at", UtcDateTime),
    )  # fmt: skip
    pdfs = sa.table("pdfs", sa.column("id", sa.String), sa.column("account_id", sa.Integer))
    now = sa.literal(datetime.now(timezone.utc), UtcDateTime)
    existing = sa.select(
        sa.literal("process_pdf"), pdfs.c.id, pdfs.c.account_id, sa.literal({}, sa.JSON), sa.literal("queued"),
        sa.literal(0), sa.literal(5), now, now,
    )  # fmt: skip
    op.execute(jobs.insert().from_select([column.name for column in jobs.columns], existing))


def downgrade() -> None:
    op.execute("DROP TABLE page_search")
    op.drop_table("pdf_pages")
    op.drop_table("pdf_extractions")
    op.drop_table("jobs")
