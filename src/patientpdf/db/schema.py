"""Tables. Migrations in `migrations/versions` create exactly these; a test keeps them in step."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
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
