"""One PDF: the viewer (the browser's own PDF viewer beside the extracted text), the page
images with the matched words' boxes, and deletion with confirmation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from patientpdf.console.auth import Changing, SignedIn, context_of
from patientpdf.console.pages import base_path, render
from patientpdf.console.routes import audited
from patientpdf.services import links, pdfs

router = APIRouter()
PdfId = Annotated[str, Path(max_length=40)]
# The viewer's iframe link: long enough to open the PDF, short enough to be worthless when copied
VIEWER_LINK_TTL_SECONDS = 300


def _viewer_link(request: Request, row: object) -> str:
    ctx = context_of(request)
    ttl = min(VIEWER_LINK_TTL_SECONDS, ctx.settings.url_ttl_seconds)
    # Our own link, relative: the CSP lets the iframe load only from this origin.
    return pdfs.pdf_url(ctx, "", row, ttl, links.signing_salt(ctx), presigned=False)  # type: ignore[arg-type]


@router.get("/pdfs/{pdf_id}")
@audited("pdf.read")
async def viewer(pdf_id: PdfId, request: Request, session: SignedIn, q: Annotated[str, Query(max_length=200)] = "") -> Response:
    ctx = context_of(request)
    row = await run_in_threadpool(pdfs.get_pdf, ctx, session.account_id, pdf_id)
    request.state.patient_id = row["patient_id"]
    link = await run_in_threadpool(_viewer_link, request, row)
    values: dict[str, Any] = {"nav": "patients", "pdf": row, "link": link, "q": q, "pages": [], "matches": None}
    return render(request, "viewer.html", values, session=session)


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
