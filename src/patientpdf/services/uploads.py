"""Receiving an upload, step by step; the API's upload route and the console's drop zone both
run these, so a PDF is checked and stored the same way whichever door it came through.

1. `admit_body`: before a byte of the body is read, 413 for a declared length over the limit
   and 400 for a body that is not multipart/form-data; then `open_spool`, on the same thread
   as the key and patient checks.
2. `receive`: stream the body to a spool file, counted, hashed and bounded (intake.multipart).
3. `store`: the client's digests, the file name, the PDF check, the bytes, then the row with
   its audit record (services.pdfs). The caller discards the spool file afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from anyio import to_thread

from patientpdf.context import Context
from patientpdf.errors import BadRequest
from patientpdf.intake.filenames import clean_filename
from patientpdf.intake.multipart import IntakeLimits, ReceivedUpload, SpoolFile, multipart_boundary, receive_upload
from patientpdf.services import audit, idempotency, pdfs


def intake_limits(ctx: Context) -> IntakeLimits:
    settings = ctx.settings
    return IntakeLimits(settings.max_upload_bytes, settings.body_idle_timeout_seconds, settings.body_timeout_seconds)


def admit_body(ctx: Context, content_length: str | None, content_type: str | None) -> bytes:
    """The body's multipart boundary, once its declared size and type are acceptable."""
    limits = intake_limits(ctx)
    if content_length is not None:
        if not content_length.isdigit():
            raise BadRequest("The Content-Length header is not a number.", code="bad_content_length")
        if int(content_length) > limits.max_body_bytes:
            raise limits.too_large()
    return multipart_boundary(content_type)


def open_spool(ctx: Context) -> SpoolFile:
    """The spool file for an admitted upload's body (blocking: on the admission's thread)."""
    return SpoolFile.open_in(ctx.settings.spool_dir)


async def receive(
    ctx: Context, chunks: AsyncIterator[bytes], boundary: bytes, spool: SpoolFile | None = None
) -> ReceivedUpload:
    """The body streamed to a spool file; on any error nothing of it is left."""
    return await receive_upload(chunks, boundary, intake_limits(ctx), ctx.settings.spool_dir, spool)


async def store(
    ctx: Context,
    account_id: int,
    patient_id: int,
    upload: ReceivedUpload,
    event: audit.AuditEvent,
    claim: idempotency.Claim | None = None,
    digests: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Check the received upload and store it with its audit record: the new PDF's row."""
    pdfs.check_digests(upload, list(digests))
    filename = clean_filename(upload.filename)
    prepared = await to_thread.run_sync(pdfs.prepare_pdf, ctx, account_id, patient_id, upload, filename)
    return await pdfs.record_pdf(ctx, prepared, event, claim)
