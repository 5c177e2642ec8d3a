"""Is this file a PDF a viewer can open? Checked on the spooled file, never decompressing content.

Cheap checks first (header, `%%EOF` near the end), then qpdf (through pikepdf) parses the
cross-reference data and trailer and walks the page tree. qpdf reads objects on demand and
never needs to inflate page content streams to do that.

Active content (scripts, actions that run on open, launched programs, attached files, XFA
forms, rich media) is found from the objects' dictionaries alone: content streams stay
compressed, and object streams are the only streams read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pikepdf

from patientpdf.errors import BadRequest

TAIL_BYTES = 1024


ACTIVE_CONTENT_KINDS = ("javascript", "open_action", "launch", "embedded_files", "xfa", "rich_media")
_CONTAINERS = (pikepdf.Dictionary, pikepdf.Stream, pikepdf.Array)
_RICH_MEDIA = {"/RichMedia", "/Screen", "/Movie", "/Sound", "/3D"}


@dataclass(frozen=True)
class PdfReport:
    page_count: int
    repaired: bool
    active_content: tuple[str, ...] = ()


def _dictionaries(pdf: pikepdf.Pdf) -> Iterator[pikepdf.Dictionary | pikepdf.Stream]:
    """Every dictionary of the file, nested ones included, each once; stream data is never read."""
    for top in pdf.objects:
        pending = [top]
        while pending:
            obj = pending.pop()
            if isinstance(obj, (pikepdf.Dictionary, pikepdf.Stream)):
                yield obj
                children = obj.values()
            elif isinstance(obj, pikepdf.Array):
                children = obj
            else:
                continue
            # Indirect children are objects of their own in pdf.objects: visited there.
            pending.extend(child for child in children if isinstance(child, _CONTAINERS) and not child.is_indirect)


def _active_content(pdf: pikepdf.Pdf) -> tuple[str, ...]:
    found: set[str] = set()
    root = pdf.Root
    # An /OpenAction that is a destination only picks the first page to show; an action dictionary runs.
    if isinstance(root.get("/OpenAction"), pikepdf.Dictionary):
        found.add("open_action")
    names = root.get("/Names")
    if isinstance(names, pikepdf.Dictionary):
        if "/JavaScript" in names:
            found.add("javascript")
        if "/EmbeddedFiles" in names:
            found.add("embedded_files")
    form = root.get("/AcroForm")
    if isinstance(form, pikepdf.Dictionary) and "/XFA" in form:
        found.add("xfa")
    for obj in _dictionaries(pdf):
        action = obj.get("/S")
        if action == pikepdf.Name.JavaScript or "/JS" in obj:
            found.add("javascript")
        elif action == pikepdf.Name.Launch:
            found.add("launch")
        kind, subtype = obj.get("/Type"), obj.get("/Subtype")
        if kind == pikepdf.Name.EmbeddedFile or subtype == pikepdf.Name.FileAttachment or "/EF" in obj:
            found.add("embedded_files")
        if isinstance(subtype, pikepdf.Name) and str(subtype) in _RICH_MEDIA:
            found.add("rich_media")
    return tuple(kind for kind in ACTIVE_CONTENT_KINDS if kind in found)


def check_pdf(path: Path, size: int, active_content_policy: str = "flag") -> PdfReport:
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
            active = _active_content(pdf)
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
    if active and active_content_policy == "reject":
        raise BadRequest(
            f"The PDF contains active content ({', '.join(active)}), which this service does not accept. "
            "Print it to a new PDF (or flatten it) and upload that copy.",
            code="pdf_active_content",
        )
    return PdfReport(page_count=page_count, repaired=repaired, active_content=active)

