"""Reading, downloading and deleting PDFs; the signed link."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from patientpdf.api.audit import audited
from patientpdf.api.deps import PatientId, AdminPrincipal, Links, ReadPrincipal, ServiceContext
from patientpdf.api.downloads import pdf_response
from patientpdf.api.paging import PAGED, Page, paged_response
from patientpdf.api.schemas import WWW_AUTHENTICATE, Responses, ErrorBody, ExtractionDocument, PdfMetadata, extraction_body, pdf_metadata_body
from patientpdf.services import pdfs, processing

router = APIRouter(tags=["PDFs"])

NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such PDF in your account"}}
AUTH: Responses = {
    401: {"model": ErrorBody, "description": "Missing, invalid, revoked or expired API key", "headers": WWW_AUTHENTICATE},
    403: {"model": ErrorBody, "description": "The key lacks the scope this needs"},
    429: {"model": ErrorBody, "description": "Too many failed authentications from this address, or the key is over its rate"},
}
NOT_JSON: Responses = {400: {"model": ErrorBody, "description": "The body is not JSON"}}
BAD_TTL: Responses = {400: {"model": ErrorBody, "description": "url_ttl is not a number of seconds within the maximum"}}
PDF_BYTES: dict[str, Any] = {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}, "description": "The PDF"}
SIGNED_LINK: Responses = {200: PDF_BYTES, 403: {"model": ErrorBody, "description": "The link expired, was altered or was revoked"}}
CONDITIONAL: Responses = {
    206: {"description": "One byte range of the PDF (Range, and If-Range with the current ETag)"},
    304: {"description": "Not modified: If-None-Match names the current ETag; no body"},
    412: {"model": ErrorBody, "description": "If-Match names no current ETag"},
}


@router.get("/pdfs/{pdf_id}", response_model=PdfMetadata, responses=AUTH | NOT_FOUND | BAD_TTL, summary="PDF metadata")
@audited("pdf.read")
async def get_pdf(pdf_id: str, request: Request, principal: ReadPrincipal, context: ServiceContext, link_for: Links) -> JSONResponse:
    row, state = await run_in_threadpool(pdfs.get_pdf_with_processing, context, principal.account_id, pdf_id)
    request.state.patient_id = row["patient_id"]
    return JSONResponse(pdf_metadata_body(row, link_for(row), state))


@router.get(
    "/pdfs/{pdf_id}/extraction",
    response_model=ExtractionDocument,
    responses={202: {"model": ExtractionDocument, "description": "Not processed yet: `status` queued or running, no pages"}}
    | AUTH
    | NOT_FOUND,
    summary="The PDF's text and word boxes, page by page",
)
@audited("pdf.extraction")
async def get_extraction(pdf_id: str, request: Request, principal: ReadPrincipal, context: ServiceContext) -> JSONResponse:
    """200 with every page's text and words (`[text, x1, y1, x2, y2, confidence]`, PDF points, origin at the
    top-left of the page as displayed) once processed; `status: failed` with a stable `error` code if it
    cannot be; 202 with `status` (and `Retry-After`) while it waits."""
    extraction = await run_in_threadpool(processing.extraction_of, context, principal.account_id, pdf_id)
    request.state.patient_id = extraction.pdf["patient_id"]
    body = extraction_body(extraction)
    if body["status"] in ("queued", "running"):
        return JSONResponse(body, status_code=202, headers={"Retry-After": "2"})
    return JSONResponse(body)


@router.post(
    "/pdfs/{pdf_id}/reprocess",
    status_code=202,
    responses={202: {"description": "Queued; the previous extraction is served until the new one replaces it"}} | AUTH | NOT_FOUND,
    summary="Process the PDF again",
)
@audited("pdf.reprocess")
async def reprocess_pdf(pdf_id: str, request: Request, principal: AdminPrincipal, context: ServiceContext) -> JSONResponse:
    row = await run_in_threadpool(processing.reprocess, context, principal.account_id, pdf_id)
    request.state.patient_id = row["patient_id"]
    return JSONResponse({"pdf_id": row["id"], "status": "queued"}, status_code=202)


@router.get(
    "/pdfs/{pdf_id}/content",
    responses={200: PDF_BYTES} | CONDITIONAL | AUTH | NOT_FOUND,
    response_class=Response,
    summary="Download a PDF with the API key",
)
@audited("pdf.download")
async def download_pdf(pdf_id: str, request: Request, principal: ReadPrincipal, context: ServiceContext) -> Response:
    row = await run_in_threadpool(pdfs.get_pdf, context, principal.account_id, pdf_id)
    request.state.patient_id = row["patient_id"]
    return await pdf_response(request, context, row)


@router.delete("/pdfs/{pdf_id}", status_code=204, responses=AUTH | NOT_FOUND, response_class=Response, summary="Delete a PDF")
@audited("pdf.delete")
async def delete_pdf(pdf_id: str, request: Request, principal: AdminPrincipal, context: ServiceContext) -> Response:
    row = await run_in_threadpool(pdfs.delete_pdf, context, principal.account_id, pdf_id)
    request.state.patient_id = row["patient_id"]
    return Response(status_code=204)


@router.get(
    "/files/{pdf_id}",
    responses=SIGNED_LINK | CONDITIONAL | NOT_FOUND,
    response_class=Response,
    summary="Download a PDF through its signed link (no API key)",
)
@audited("pdf.link_download")
async def signed_download(
    pdf_id: str,
    request: Request,
    context: ServiceContext,
    expires: Annotated[str, Query()] = "",
    signature: Annotated[str, Query()] = "",
) -> Response:
    row = await run_in_threadpool(pdfs.pdf_for_signed_link, context, pdf_id, expires, signature)
    request.state.account_id = row["account_id"]
    request.state.patient_id = row["patient_id"]
    return await pdf_response(request, context, row)


# HEAD answers with the headers of GET (browsers and download managers probe with it).
router.add_api_route("/pdfs/{pdf_id}/content", download_pdf, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/files/{pdf_id}", signed_download, methods=["HEAD"], include_in_schema=False)


@audited("pdf.list")
async def list_patient_pdfs(
    principal: ReadPrincipal, patient_id: PatientId, request: Request, context: ServiceContext, link_for: Links, page: Page
) -> JSONResponse:
    rows, states, next_cursor = await run_in_threadpool(pdfs.list_pdfs, context, principal.account_id, patient_id, page)
    return paged_response(request, [pdf_metadata_body(row, link_for(row), states[row["id"]]) for row in rows], next_cursor, page)


for path, in_schema in (("/patients/{patient_id}/pdfs/", True), ("/patients/{patient_id}/pdfs", False)):
    router.add_api_route(
        path,
        list_patient_pdfs,
        methods=["GET"],
        response_model=list[PdfMetadata],
        responses=AUTH | BAD_TTL | PAGED | {403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
        summary="A patient's PDFs, newest first, paged",
        include_in_schema=in_schema,
        operation_id="list_patient_pdfs" if in_schema else "list_patient_pdfs_no_slash",
    )
