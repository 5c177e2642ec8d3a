"""Idempotency-Key for the upload (IETF draft-ietf-httpapi-idempotency-key-header).

Per account, a key is claimed before the body is read: a second request with a key whose
first request still runs gets 409. The claim turns into the stored PDF's id, in the same
transaction that records the PDF, and is kept for `idempotency_ttl_seconds`. A request that
fails releases its claim, so the client can retry with the same key. A retry is recognised
by its fingerprint: the patient, the file name and the SHA-256 of the PDF.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from patientpdf.context import Context
from patientpdf.db import repositories as repo
from patientpdf.errors import BadRequest, Conflict, Unprocessable
from patientpdf.services.clock import now_utc

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Claim:
    """The state of one key for this request: claimed by it, or finished earlier (pdf_id set)."""

    key: str
    fingerprint: str | None = None
    pdf_id: str | None = None


def parse_key(raw: str) -> str:
    # The draft makes the key a structured-field string: "…"; bare tokens are common too.
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise BadRequest(
            f"The Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters; a UUID is a good key.",
            code="bad_idempotency_key",
        )
    return key


def fingerprint(patient_id: int, filename: str | None, sha256: str) -> str:
    return hashlib.sha256(f"{patient_id}\n{filename}\n{sha256}".encode("utf-8", "surrogateescape")).hexdigest()


def claim(ctx: Context, account_id: int, key: str) -> Claim:
    try:
        return _claim(ctx, account_id, key)
    except IntegrityError:
        # Another request inserted the same key between our read and our insert (PostgreSQL).
        return _claim(ctx, account_id, key)


def _claim(ctx: Context, account_id: int, key: str) -> Claim:
    now = now_utc()
    # The longest a live request can hold its claim: past this its process died with it.
    locked_until = now + timedelta(seconds=ctx.settings.body_timeout_seconds + 120)
    with ctx.db.write() as conn:
        row = repo.get_idempotency_key(conn, account_id, key)
        if row is not None and row["expires_at"] <= now:
            repo.delete_idempotency_key(conn, account_id, key)
            row = None
        if row is None:
            expires_at = now + timedelta(seconds=ctx.settings.idempotency_ttl_seconds)
            repo.insert_idempotency_key(conn, account_id, key, locked_until, now, expires_at)
            repo.delete_expired_idempotency_keys(conn, now)
            return Claim(key)
        if row["pdf_id"] is not None:
            return Claim(key, fingerprint=row["fingerprint"], pdf_id=row["pdf_id"])
        if row["locked_until"] > now:
            raise Conflict(
                "A request with this Idempotency-Key is still being processed. Wait for it, then retry to get its response.",
                code="idempotency_key_in_progress",
            )
        repo.relock_idempotency_key(conn, account_id, key, locked_until)
        return Claim(key)


def check_replay(claim: Claim, request_fingerprint: str) -> None:
    if claim.fingerprint != request_fingerprint:
        raise Unprocessable(
            "This Idempotency-Key was already used for a different upload (another file, file name or patient). "
            "Use a new key for a new upload.",
            code="idempotency_key_reused",
        )


def finish(conn: Connection, account_id: int, claim: Claim, request_fingerprint: str, pdf_id: str) -> None:
    repo.finish_idempotency_key(conn, account_id, claim.key, request_fingerprint, pdf_id)


def release(ctx: Context, account_id: int, claim: Claim) -> None:
    """The request failed: free the key for a retry."""
    with ctx.db.write() as conn:
        repo.delete_idempotency_key(conn, account_id, claim.key, only_unfinished=True)
