"""Is this file a PDF a viewer can open? Checked on the spooled file, never decompressing content.

Cheap checks first (header, `%%EOF` near the end), then qpdf (through pikepdf) parses the
cross-reference data and trailer and walks the page tree. qpdf reads objects on demand and
never needs to inflate page content streams to do that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pikepdf

from patientpdf.errors import BadRequest

TAIL_BYTES = 1024


@dataclass(frozen=True)
class PdfReport:
    page_count: int
    repaired: bool


def check_pdf(path: Path, size: int) -> PdfReport:
    if size == 0:
        raise BadRequest("The file is empty. Send the PDF's bytes in the 'file' field.", code="empty_file")
    with open(path, "rb") as handle:
        head = handle.read(5)
        handle.seek(max(0, size - TAIL_BYTES))
        tail = handle.read(TAIL_BYTES)
    if head != b"%PDF-":
        raise BadRequest(
            "The file is not a PDF: it does not start with '%PDF-'. Upload the PDF document itself.",
            code="not_a_pdf",
        )
    if b"%%EOF" not in tail:
        raise BadRequest(
            "The PDF is incomplete: no '%%EOF' marker in its last 1024 bytes, which is how a truncated "
            "upload looks. Check the file opens locally and upload it again.",
            code="pdf_truncated",
        )
    try:
        with pikepdf.open(path, access_mode=pikepdf.AccessMode.stream) as pdf:
            page_count = len(pdf.pages)
            repaired = bool(pdf.get_warnings())
    except pikepdf.PasswordError:
        raise BadRequest(
            "The PDF is password-protected. Remove the password (save an unprotected copy) and upload again.",
            code="pdf_encrypted",
        ) from None
    except Exception:  # qpdf raises several types for damaged files; all mean the same to the client
        raise BadRequest(
            "The file is not a valid PDF: its cross-reference data or trailer cannot be read. "
            "Check that it opens in a PDF viewer and upload the original.",
            code="invalid_pdf",
        ) from None
    if page_count < 1:
        raise BadRequest("The PDF has no pages. Upload a PDF with at least one page.", code="pdf_no_pages")
    return PdfReport(page_count=page_count, repaired=repaired)

