"""One PDF: the viewer (the browser's own PDF viewer beside the extracted text), the page
images with the matched words' boxes, and deletion with confirmation."""

from __future__ import annotations

from typing import Annotated, Any

from sqlalchemy import RowMapping
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from patientpdf.console.auth import Changing, SignedIn, context_of
from patientpdf.console.pages import base_path, render
from patientpdf.console.routes import audited
from patientpdf.services import links, pdfs, processing, viewing

router = APIRouter()
PdfId = Annotated[str, Path(max_length=40)]
# The viewer's iframe link: long enough to open the PDF, short enough to be worthless when copied
VIEWER_LINK_TTL_SECONDS = 300


def _viewer_link(request: Request, row: RowMapping) -> str:
    ctx = context_of(request)
    ttl = min(VIEWER_LINK_TTL_SECONDS, ctx.settings.url_ttl_seconds)
    # Our own link, relative: the CSP lets the iframe load only from this origin.
    return pdfs.pdf_url(ctx, "", row, ttl, links.signing_salt(ctx), presigned=False)


@router.get("/pdfs/{pdf_id}")
@audited("pdf.read")
async def viewer(pdf_id: PdfId, request: Request, session: SignedIn, q: Annotated[str, Query(max_length=200)] = "") -> Response:
    """The PDF in the browser's own viewer beside its text, page by page; with `q`, the pages
    that match, each drawn by the server with the matched words boxed."""
    ctx = context_of(request)
    query = q.strip()
    extraction = await run_in_threadpool(processing.extraction_of, ctx, session.account_id, pdf_id, bool(query))
    row = extraction.pdf
    request.state.patient_id = row["patient_id"]
    link = await run_in_threadpool(_viewer_link, request, row)
    names = await run_in_threadpool(viewing.names_of, ctx, session.account_id, [row["id"]])
    matches = viewing.matches_in(extraction.pages, query) if query else None
    for match in matches or []:
        match["snippet_html"] = Markup(match["snippet"])  # matching.snippet escapes the words itself
    values: dict[str, Any] = {
        "nav": "patients",
        "pdf": row,
        "patient_name": names[row["id"]]["patient_name"] if row["id"] in names else f"Patient {row['patient_id']}",
        "link": link,
        "q": query,
        "processing": extraction.processing,
        "pages": extraction.pages,
        "matches": matches,
    }
    return render(request, "viewer.html", values, session=session)


@router.get("/pdfs/{pdf_id}/pages/{page}.png")
@audited("pdf.page_image")
async def page_image(pdf_id: PdfId, page: Annotated[int, Path(ge=1, le=100_000)], request: Request, session: SignedIn) -> Response:
    image = await run_in_threadpool(viewing.page_png, context_of(request), session.account_id, pdf_id, page)
    return Response(image, media_type="image/png")


@router.get("/pdfs/{pdf_id}/delete")
@audited("pdf.read")
async def confirm_delete(pdf_id: PdfId, request: Request, session: SignedIn) -> Response:
    row = await run_in_threadpool(pdfs.get_pdf, context_of(request), session.account_id, pdf_id)
    request.state.patient_id = row["patient_id"]
    return render(request, "pdf_delete.html", {"nav": "patients", "pdf": row}, session=session)


@router.post("/pdfs/{pdf_id}/delete")
@audited("pdf.delete")
async def delete(pdf_id: PdfId, request: Request, session: Changing) -> Response:
    row = await run_in_threadpool(pdfs.delete_pdf, context_of(request), session.account_id, pdf_id)
    request.state.patient_id = row["patient_id"]
    return RedirectResponse(f"{base_path(request)}/patients/{row['patient_id']}?notice=deleted", status_code=303)
