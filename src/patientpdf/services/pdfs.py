"""Storing, reading and deleting patients' PDFs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection, RowMapping

from patientpdf import storage, webhooks
from patientpdf.context import Context
from patientpdf.db import repositories as repo
from patientpdf.errors import BadRequest, Forbidden, InsufficientStorage, NotFound, Unavailable
from patientpdf.intake.multipart import ReceivedUpload
from patientpdf.intake.pdf_check import check_pdf
from patientpdf.security.ids import is_pdf_id, new_pdf_id
from patientpdf.security.links import LinkCheck
from patientpdf.services import audit, idempotency, paging, processing
from patientpdf.services.clock import now_utc
from patientpdf.services.paging import FIRST_PAGE, PageRequest
from patientpdf.services.patients import owned_patient_in

log = logging.getLogger(__name__)

PDF_CONTENT_TYPE = "application/pdf"


def storage_key_for(pdf_id: str) -> str:
    # Spread over 1024 directories by the id's random tail; nothing of the client is in it.
    return f"pdfs/{pdf_id[-2:]}/{pdf_id}.pdf"


def storage_errors_as_api_errors(exc: storage.StorageError) -> Exception:
    log.warning("storage failure: %s (%r)", exc, exc.__cause__)
    if isinstance(exc, storage.StorageFull):
        return InsufficientStorage(
            "The server has no space left to store this PDF. Nothing was stored; try again later.",
            code="storage_full",
        )
    return Unavailable(
        "The PDF storage is unavailable. Nothing was stored; retry in a few seconds.", code="storage_unavailable"
    )


def check_digests(upload: ReceivedUpload, expected: list[tuple[str, str]]) -> None:
    """400 unless the PDF's SHA-256 is each one the client sent: (where it came from, hex digest)."""
    for source, digest in expected:
        if digest != upload.sha256:
            raise BadRequest(
                f"The PDF's SHA-256 is {upload.sha256}, but {source} says {digest}: the file changed on its way. "
                "Nothing was stored; send it again.",
                code="digest_mismatch",
            )


@dataclass
class PreparedPdf:
    """A checked upload whose bytes are durably stored, waiting for its row."""

    values: dict[str, Any]
    upload: ReceivedUpload


def prepare_pdf(ctx: Context, account_id: int, patient_id: int, upload: ReceivedUpload, filename: str) -> PreparedPdf:
    """Check the spooled upload and store its bytes durably (blocking: runs on a thread)."""
    assert upload.spool_path is not None
    report = check_pdf(upload.spool_path, upload.size, ctx.settings.active_content)
    pdf_id = new_pdf_id()
    key = storage_key_for(pdf_id)
    try:
        ctx.storage.put_file(key, upload.spool_path, filename)
    except storage.StorageError as exc:
        raise storage_errors_as_api_errors(exc) from exc
    values = {
        "id": pdf_id,
        "account_id": account_id,
        "patient_id": patient_id,
        "filename": filename,
        "storage_key": key,
        "size": upload.size,
        "sha256": upload.sha256,
        "content_type": PDF_CONTENT_TYPE,
        "page_count": report.page_count,
        "repaired": report.repaired,
        "active_content": list(report.active_content),
        "created_at": now_utc(),
    }
    return PreparedPdf(values, upload)


async def record_pdf(
    ctx: Context, prepared: PreparedPdf, event: audit.AuditEvent, claim: idempotency.Claim | None = None
) -> dict[str, Any]:
    """Record a prepared PDF with its audit record and idempotency key, in a transaction shared
    with the other uploads committing now (one lock turn, one sync to disk). All or nothing:
    if the row is not committed, the bytes are deleted."""
    values = prepared.values
    account_id, patient_id, pdf_id = values["account_id"], values["patient_id"], values["id"]
    fingerprint = upload_fingerprint(patient_id, prepared.upload) if claim is not None else ""

    def record(conn: Connection) -> str | None:
        duplicate_of = repo.find_duplicate_pdf(conn, account_id, patient_id, values["sha256"])
        repo.insert_pdf(conn, values)
        processing.enqueue(conn, ctx.settings, account_id, pdf_id)  # a committed PDF always has its job
        webhooks.emit(conn, account_id, webhooks.PDF_UPLOADED, webhooks.pdf_data(values), now_utc())
        if claim is not None:
            idempotency.finish(conn, account_id, claim, fingerprint, pdf_id)
        event.pdf_id, event.patient_id = pdf_id, patient_id
        audit.append(conn, ctx.audit_key, event)
        return duplicate_of

    committed = ctx.db.group_commit.submit(record)
    try:
        duplicate_of = await asyncio.wrap_future(committed)
    except asyncio.CancelledError:
        # The commit goes on without us: its outcome, not our cancellation, decides the bytes' fate.
        committed.add_done_callback(lambda done: _delete_blob_quietly(ctx, values["storage_key"]) if _failed(done) else None)
        raise
    except BaseException:
        _delete_blob_quietly(ctx, values["storage_key"])
        raise
    return values | {"duplicate_of": duplicate_of}


def _failed(future: Future[Any]) -> bool:
    return future.cancelled() or future.exception() is not None


def upload_fingerprint(patient_id: int, upload: ReceivedUpload) -> str:
    return idempotency.fingerprint(patient_id, upload.filename, upload.sha256)


def _delete_blob_quietly(ctx: Context, key: str) -> None:
    try:
        ctx.storage.delete(key)
    except storage.StorageError:
        # Left for `patientpdf storage check` to find; the key holds no patient data.
        log.exception("could not delete blob %s", key)


def _pdf_not_found(pdf_id: str) -> NotFound:
    return NotFound(f"PDF not found: no PDF with id {pdf_id!r} in your account.", code="pdf_not_found")


def get_pdf(ctx: Context, account_id: int, pdf_id: str) -> RowMapping:
    row = None
    if is_pdf_id(pdf_id):
        with ctx.db.read() as conn:
            row = repo.get_pdf(conn, account_id, pdf_id)
    if row is None:
        raise _pdf_not_found(pdf_id)
    return row


def uploaded_pdf(ctx: Context, account_id: int, pdf_id: str) -> dict[str, Any]:
    """A stored PDF as its upload answered it, `duplicate_of` included (for idempotent replays)."""
    with ctx.db.read() as conn:
        row = repo.get_pdf(conn, account_id, pdf_id)
        if row is None:
            raise _pdf_not_found(pdf_id)
        return dict(row) | {"duplicate_of": repo.find_duplicate_pdf(conn, account_id, row["patient_id"], row["sha256"], before=pdf_id)}


def _pdf_id(raw: str) -> str:
    if not is_pdf_id(raw):
        raise ValueError(raw)
    return raw


def get_pdf_with_processing(ctx: Context, account_id: int, pdf_id: str) -> tuple[RowMapping, processing.Processing]:
    row = None
    if is_pdf_id(pdf_id):
        with ctx.db.read() as conn:
            row = repo.get_pdf(conn, account_id, pdf_id)
            if row is not None:
                return row, processing.processing_of(conn, account_id, [pdf_id])[pdf_id]
    raise _pdf_not_found(pdf_id)


def list_pdfs(
    ctx: Context, account_id: int, patient_id: int, page: PageRequest = FIRST_PAGE
) -> tuple[Sequence[RowMapping], dict[str, processing.Processing], str | None]:
    """One page of the owned patient's PDFs, newest first (404/403 as owned_patient_in), their
    processing, and the next page's cursor, in one read."""
    before = paging.decode_cursor("pdfs", page.cursor, _pdf_id) if page.cursor else None
    with ctx.db.read() as conn:
        owned_patient_in(conn, account_id, patient_id)
        fetched = repo.list_pdfs_of_patient(conn, account_id, patient_id, before, page.limit + 1)
        rows, next_cursor = paging.page_of(fetched, page, "pdfs", lambda row: row["id"])
        return rows, processing.processing_of(conn, account_id, [row["id"] for row in rows]), next_cursor


def delete_pdf(ctx: Context, account_id: int, pdf_id: str) -> RowMapping:
    """Delete the row (with its extraction, search entries and jobs; its pdf.deleted event in the
    same transaction) first, then the bytes: a crash in between leaves bytes, never a dangling row."""
    row = None
    if is_pdf_id(pdf_id):
        with ctx.db.write() as conn:
            if repo.get_pdf(conn, account_id, pdf_id) is not None:
                processing.delete_with_pdf(conn, account_id, pdf_id)
            row = repo.delete_pdf(conn, account_id, pdf_id)
            if row is not None:
                deleted_at = now_utc()
                webhooks.emit(conn, account_id, webhooks.PDF_DELETED, webhooks.deleted_data(row, deleted_at), deleted_at)
    if row is None:
        raise _pdf_not_found(pdf_id)
    _delete_blob_quietly(ctx, row["storage_key"])
    return row


def pdf_url(
    ctx: Context, base_url: str, row: RowMapping | dict[str, Any], ttl: int, salt: str, presigned: bool = True
) -> str:
    """The PDF's `url`: the store's presigned URL when so configured (and `presigned`), else our own signed link."""
    if presigned and ctx.settings.s3_presign:
        store_url = ctx.storage.presigned_url(row["storage_key"], ttl)
        if store_url:
            return store_url
    expires, signature = ctx.signer.sign(row["id"], ttl, salt)
    return f"{base_url}/files/{row['id']}?{urlencode({'expires': expires, 'signature': signature})}"


def pdf_for_signed_link(ctx: Context, pdf_id: str, expires: str, signature: str) -> RowMapping:
    with ctx.db.read() as conn:
        salt = repo.newest_link_salt(conn)  # never cached: `links revoke-all` takes effect at once
        row = repo.get_pdf_for_signed_link(conn, pdf_id) if is_pdf_id(pdf_id) else None
    outcome = ctx.signer.check(pdf_id, expires, signature, salt)
    if outcome is LinkCheck.INVALID:
        raise Forbidden("This link is not valid: it was altered, cut short or revoked. Ask for a fresh link.", code="link_invalid")
    if outcome is LinkCheck.EXPIRED:
        raise Forbidden(
            "This link has expired. Read the PDF's metadata (GET /pdfs/{id}) for a fresh link.", code="link_expired"
        )
    if row is None:
        raise NotFound("This PDF no longer exists.", code="pdf_not_found")
    return row


def open_bytes(ctx: Context, row: RowMapping, start: int, length: int) -> Any:
    try:
        return ctx.storage.open_range(row["storage_key"], start, length)
    except storage.StorageError as exc:
        raise storage_errors_as_api_errors(exc) from exc
