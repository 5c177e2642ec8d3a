"""Tables. Migrations in `migrations/versions` create exactly these; a test keeps them in step."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC without an offset (SQLite has none) and hands back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None else None


accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(200), nullable=True),
    Column("prefix", String(32), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("scopes", String(100), nullable=False),  # comma-separated: upload, read, admin
    Column("expires_at", UtcDateTime, nullable=True),
)

patients = Table(
    "patients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(500), nullable=False),
    Column("dob", String(10), nullable=True),
    Column("sex", String(50), nullable=True),
    Column("additional_variables", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

pdfs = Table(
    "pdfs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("patient_id", Integer, ForeignKey("patients.id"), nullable=False, index=True),
    Column("filename", Text, nullable=False),
    Column("storage_key", String(200), nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("page_count", Integer, nullable=False),
    Column("repaired", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("active_content", JSON, nullable=False),  # e.g. ["javascript", "open_action"]
    # the newest earlier upload of the same bytes to the same patient (`duplicate_of`), without a scan
    Index("ix_pdfs_account_patient_sha256", "account_id", "patient_id", "sha256", "id"),
)

# One row per Idempotency-Key of an account: claimed while its request runs, then the PDF
# it created, kept until expires_at.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=True),
    Column("pdf_id", String(40), nullable=True),
    Column("locked_until", UtcDateTime, nullable=True),  # set while in progress
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    PrimaryKeyConstraint("account_id", "key"),
)

# Append-only (database triggers refuse UPDATE and DELETE) and hash-chained: each record's
# hash is an HMAC over its fields and the previous record's hash.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime, nullable=False, index=True),
    Column("action", String(40), nullable=False),
    Column("outcome", String(80), nullable=False),
    Column("account_id", Integer, nullable=True, index=True),
    Column("key_prefix", String(32), nullable=True),
    Column("client", String(64), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("patient_id", Integer, nullable=True),
    Column("pdf_id", String(40), nullable=True),
    Column("subject", String(100), nullable=True),  # what a key change was about: the key's prefix
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# Signed links are keyed by the server secret and the newest salt here; `links revoke-all`
# adds a salt, which kills every link signed before.
link_salts = Table(
    "link_salts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("salt", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)


# Background work, one row per job (jobs/ runs them). A job is inserted in the transaction of
# the row it is about, so a committed PDF always has its `process_pdf` job. A worker claims
# a due job by taking a lease (`lease_owner` is unique per claim, so it is also the fencing
# token) and finishes it with a write that succeeds only while it still holds that lease.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(40), nullable=False),  # e.g. process_pdf
    Column("subject", String(100), nullable=True),  # what the job is about, e.g. a PDF id
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("status", String(10), nullable=False),  # queued, running, done, failed
    Column("attempts", Integer, nullable=False),  # claims so far
    Column("max_attempts", Integer, nullable=False),
    Column("run_at", UtcDateTime, nullable=False),  # due from then (later after a failure: backoff)
    Column("lease_owner", String(100), nullable=True),  # host:pid/claim of the worker holding it
    Column("lease_until", UtcDateTime, nullable=True),
    Column("error", String(60), nullable=True),  # stable code of the last failure
    Column("last_error", Text, nullable=True),  # what happened, without patient data
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Index("ix_jobs_status_run_at", "status", "run_at"),
    Index("ix_jobs_status_lease_until", "status", "lease_until"),
    # one job per kind and subject: processing a PDF again requeues its job
    Index("ux_jobs_kind_subject", "kind", "subject", unique=True),
)

# What processing found in a PDF: one row per processed PDF, its pages below. Written (and
# replaced) in the transaction that finishes the PDF's job.
pdf_extractions = Table(
    "pdf_extractions",
    metadata,
    Column("pdf_id", String(40), ForeignKey("pdfs.id"), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("patient_id", Integer, ForeignKey("patients.id"), nullable=False),
    Column("page_count", Integer, nullable=False),
    Column("pages_ocr", Integer, nullable=False),
    Column("engines", JSON, nullable=False),  # {"text": "pdfium 6721", "ocr": "tesseract 5.3.4 eng"}
    Column("complete", Boolean, nullable=False),  # false: only the pages it finished (see note)
    Column("note", Text, nullable=True),
    Column("written_by", String(100), nullable=False),  # the lease that wrote it
    Column("finished_at", UtcDateTime, nullable=False),
    Index("ix_pdf_extractions_account_patient", "account_id", "patient_id", "pdf_id"),
)

# One row per extracted page. `id` is also the row id of the page's search entry
# (`page_search`, created by the migration per database: FTS5 on SQLite, tsvector on PostgreSQL).
pdf_pages = Table(
    "pdf_pages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pdf_id", String(40), ForeignKey("pdfs.id"), nullable=False),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("patient_id", Integer, ForeignKey("patients.id"), nullable=False),
    Column("page", Integer, nullable=False),  # 1-based
    Column("width", Float, nullable=False),  # PDF points, as displayed (after /Rotate and the CropBox)
    Column("height", Float, nullable=False),
    Column("rotation", Integer, nullable=False),
    Column("source", String(8), nullable=False),  # text, ocr or none
    Column("text", Text, nullable=False),
    Column("words", JSON, nullable=False),  # [[text, x1, y1, x2, y2, confidence or null], ...]
    Index("ux_pdf_pages_pdf_page", "pdf_id", "page", unique=True),
    Index("ix_pdf_pages_account_patient", "account_id", "patient_id"),
)

# Tables the migration creates per database and that SQLAlchemy does not describe.
SEARCH_TABLE = "page_search"

# The console's sign-in: single-use links (only their hash is kept) that start sessions.
console_login_links = Table(
    "console_login_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
)

# Server-side console sessions: the cookie holds the token, the row holds its hash. A session
# ends by sign-out, revocation or timeout (idle: last_seen_at; absolute: expires_at).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("prefix", String(32), nullable=False, unique=True),  # names the session in listings and the audit trail
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("csrf_token", String(64), nullable=False),
    Column("client", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("end_reason", String(20), nullable=True),  # signed_out, revoked, idle, expired
)

# Webhooks (webhooks/): an account's endpoints, the events written in the transaction of the
# change they report, one delivery per event and endpoint (its id is the `webhook-id` header,
# the same on every attempt), each delivery run by a `deliver_webhook` job, and its attempts.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("events", JSON, nullable=False),  # ["pdf.uploaded", ...]
    Column("secret", Text, nullable=False),  # sealed (security/secret_box.py), never stored in the clear
    Column("previous_secret", Text, nullable=True),  # sealed; still signs until previous_secret_expires_at
    Column("previous_secret_expires_at", UtcDateTime, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_at", UtcDateTime, nullable=True),
    Column("disabled_reason", String(40), nullable=True),  # gone (410), failing (for days), disabled (by the account)
    Column("failing_since", UtcDateTime, nullable=True),  # first failed attempt since the last success
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(40), primary_key=True),  # evt_…
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("type", String(40), nullable=False),
    Column("body", Text, nullable=False),  # the exact JSON sent (and signed) on every attempt
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_webhook_events_account_created", "account_id", "created_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),  # msg_…: the webhook-id header, and its job's subject
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("endpoint_id", Integer, ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("event_id", String(40), ForeignKey("webhook_events.id"), nullable=False),
    Column("attempts", Integer, nullable=False),  # attempts made (each one is in webhook_attempts)
    Column("last_attempt_at", UtcDateTime, nullable=True),
    Column("response_status", Integer, nullable=True),  # of the last attempt, if it got an answer
    Column("error", String(60), nullable=True),  # stable code of the last attempt's failure
    Column("succeeded_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("delivery_id", String(40), ForeignKey("webhook_deliveries.id"), nullable=False, index=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("attempt", Integer, nullable=False),  # the job's attempt number
    Column("at", UtcDateTime, nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("error", String(60), nullable=True),  # timeout, connection_failed, http_status, webhook_url_not_public, …
    Column("detail", Text, nullable=True),  # what happened, in our words (never the receiver's body)
    Column("duration_ms", Integer, nullable=False),
)
