"""POST /patients/{patient_id}/pdf/ — the upload, read from the raw request stream.

FastAPI would parse a form body before any dependency runs; this route declares no body
parameters, so the key and the patient are checked first and the body is streamed after.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from patientpdf.api.deps import ServiceContext, UploadPrincipal, base_url
from patientpdf.api.schemas import ErrorBody, UploadedPdf, uploaded_pdf_body
from patientpdf.errors import BadRequest
from patientpdf.intake.filenames import clean_filename
from patientpdf.intake.multipart import IntakeLimits, multipart_boundary, receive_upload
from patientpdf.services import pdfs

router = APIRouter(tags=["PDFs"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "filename"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The PDF file to upload"},
                        "filename": {
                            "type": "string",
                            "description": "The name to give the uploaded file; must end in .pdf",
                            "examples": ["medical_record.pdf"],
                        },
                    },
                }
            }
        },
    }
}

ERRORS = {
    400: "Invalid request. The file must be a valid PDF document and the filename must include the .pdf extension.",
    401: "Authentication required. Make sure you've included a valid API key in the request headers.",
    403: "Unauthorized access. You can only upload PDFs for patients associated with your account.",
    404: "Patient not found. The specified patient ID does not exist.",
    413: "File too large. The PDF file exceeds the maximum allowed size.",
    503: "A backend (database or storage) is unavailable; retry after Retry-After seconds. Nothing was stored.",
    507: "The server has no space left. Nothing was stored.",
}


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadRequest("The Content-Length header is not a number.", code="bad_content_length")
    return int(raw)


async def upload_pdf(patient_id: int, request: Request, principal: UploadPrincipal, context: ServiceContext) -> JSONResponse:
    """Uploads a PDF file directly to a specific patient. This endpoint is used when you already
    know which patient the PDF belongs to and want to upload it directly to their record."""
    limits = IntakeLimits(max_file_bytes=context.settings.max_upload_bytes)
    declared = _content_length(request)
    if declared is not None and declared > limits.max_body_bytes:
        raise limits.too_large()
    boundary = multipart_boundary(request.headers.get("content-type"))
    upload = await receive_upload(request.stream(), boundary, limits, context.settings.spool_dir)
    try:
        filename = clean_filename(upload.filename)
        row = await run_in_threadpool(pdfs.store_pdf, context, principal.account_id, patient_id, upload, filename)
    finally:
        upload.discard()
    url = pdfs.pdf_url(context, base_url(request, context), row)
    return JSONResponse(uploaded_pdf_body(row, url), status_code=201, headers={"Location": f"/pdfs/{row['id']}"})


for path, in_schema in (("/patients/{patient_id}/pdf/", True), ("/patients/{patient_id}/pdf", False)):
    router.add_api_route(
        path,
        upload_pdf,
        methods=["POST"],
        status_code=201,
        summary="Upload Patient PDF",
        response_model=UploadedPdf,
        responses={status: {"model": ErrorBody, "description": text} for status, text in ERRORS.items()}
        | {201: {"description": "PDF uploaded successfully"}},
        openapi_extra=UPLOAD_BODY,
        include_in_schema=in_schema,
        operation_id="upload_patient_pdf" if in_schema else "upload_patient_pdf_no_slash",
    )
