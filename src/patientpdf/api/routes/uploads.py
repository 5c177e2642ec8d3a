"""POST /patients/{patient_id}/pdf/ — the upload, read from the raw request stream.

FastAPI would parse a form body before any dependency runs; this route declares no body
parameters, so the key and the patient are checked first and the body is streamed after.
"""

from __future__ import annotations

import base64
import binascii
import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from patientpdf.api.audit import audited, request_event
from patientpdf.api.deps import Links, PatientId, ServiceContext, UploadAdmission
from patientpdf.api.schemas import WWW_AUTHENTICATE, ErrorBody, Responses, UploadedPdf, uploaded_pdf_body
from patientpdf.errors import BadRequest
from patientpdf.intake.multipart import ReceivedUpload
from patientpdf.services import idempotency, pdfs, uploads

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
                        "sha256": {
                            "type": "string",
                            "pattern": "^[0-9a-fA-F]{64}$",
                            "description": "Optional: the SHA-256 of the PDF, hex; a mismatch is 400 digest_mismatch",
                        },
                    },
                }
            }
        },
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
            "description": "Makes a retry safe: the same key and body return the first response and store nothing new "
            "(kept 24 hours, per account).",
        },
        {
            "name": "Repr-Digest",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Optional RFC 9530 digest of the PDF's bytes: sha-256=:<base64>:",
        },
    ],
}

ERRORS = {
    400: "Invalid request. The file must be a valid PDF document and the filename must include the .pdf extension.",
    401: "Authentication required. Make sure you've included a valid API key in the request headers.",
    403: "Unauthorized access. You can only upload PDFs for patients associated with your account.",
    404: "Patient not found. The specified patient ID does not exist.",
    408: "The body arrived too slowly (idle or total deadline). Nothing was stored.",
    409: "A request with this Idempotency-Key is still being processed.",
    413: "File too large. The PDF file exceeds the maximum allowed size.",
    422: "This Idempotency-Key was used for a different upload.",
    429: "Too many failed authentications from this address, or this key is over its request rate.",
    503: "A backend (database or storage) is unavailable; retry after Retry-After seconds. Nothing was stored.",
    507: "The server has no space left. Nothing was stored.",
}


_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_REPR_DIGEST_SHA256 = re.compile(r"(?:^|,)\s*sha-256\s*=\s*:([A-Za-z0-9+/=]*):\s*(?:;[^,]*)?(?:,|$)")


def _client_digests(request: Request, upload: ReceivedUpload) -> list[tuple[str, str]]:
    """The SHA-256 digests the client sent, as lowercase hex: Repr-Digest (RFC 9530) and the form field."""
    digests = []
    header = request.headers.get("repr-digest")
    if header is not None and "sha-256" in header:
        match = _REPR_DIGEST_SHA256.search(header)
        try:
            raw = base64.b64decode(match.group(1), validate=True) if match else b""
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise BadRequest(
                "The Repr-Digest header's sha-256 is malformed; send sha-256=:<base64 of the 32-byte SHA-256>:.",
                code="bad_digest",
            )
        digests.append(("the Repr-Digest header", raw.hex()))
    field = upload.fields.get("sha256")
    if field is not None:
        if not _SHA256_HEX.match(field.strip()):
            raise BadRequest("The 'sha256' field must be the PDF's SHA-256 as 64 hex digits.", code="bad_digest")
        digests.append(("the 'sha256' field", field.strip().lower()))
    return digests


@audited("pdf.upload")
async def upload_pdf(
    request: Request, admitted: UploadAdmission, patient_id: PatientId, context: ServiceContext, link_for: Links
) -> JSONResponse:
    """Uploads a PDF file directly to a specific patient. This endpoint is used when you already
    know which patient the PDF belongs to and want to upload it directly to their record."""
    principal = admitted.principal
    raw_key = request.headers.get("idempotency-key")
    claim = None
    if raw_key is not None:
        claim = await run_in_threadpool(idempotency.claim, context, principal.account_id, idempotency.parse_key(raw_key))
    stored = False
    try:
        upload = await uploads.receive(context, request.stream(), admitted.boundary, admitted.spool)
        try:
            digests = _client_digests(request, upload)
            if claim is not None and claim.pdf_id is not None:
                return await _replay(request, context, principal.account_id, claim, patient_id, upload, link_for)
            event = request_event(request.scope, "pdf.upload", 201)
            row = await uploads.store(context, principal.account_id, patient_id, upload, event, claim, digests)
            stored = True
            request.state.audited = True
        finally:
            upload.discard()
    finally:
        if claim is not None and claim.pdf_id is None and not stored:
            await run_in_threadpool(idempotency.release, context, principal.account_id, claim)
    return JSONResponse(uploaded_pdf_body(row, link_for(row)), status_code=201, headers={"Location": f"/pdfs/{row['id']}"})


async def _replay(
    request: Request,
    context: ServiceContext,
    account_id: int,
    claim: idempotency.Claim,
    patient_id: int,
    upload: ReceivedUpload,
    link_for: Links,
) -> JSONResponse:
    """The first response again, for a retry of a finished request: nothing new is stored."""
    idempotency.check_replay(claim, pdfs.upload_fingerprint(patient_id, upload))
    assert claim.pdf_id is not None
    row = await run_in_threadpool(pdfs.uploaded_pdf, context, account_id, claim.pdf_id)
    request.state.outcome_code = "idempotent_replay"
    request.state.pdf_id = row["id"]
    headers = {"Location": f"/pdfs/{row['id']}", "Idempotent-Replayed": "true"}
    return JSONResponse(uploaded_pdf_body(row, link_for(row)), status_code=201, headers=headers)


UPLOAD_RESPONSES: Responses = {status: {"model": ErrorBody, "description": text} for status, text in ERRORS.items()}
UPLOAD_RESPONSES[401] = {"model": ErrorBody, "description": ERRORS[401], "headers": WWW_AUTHENTICATE}
UPLOAD_RESPONSES[201] = {"description": "PDF uploaded successfully"}

for path, in_schema in (("/patients/{patient_id}/pdf/", True), ("/patients/{patient_id}/pdf", False)):
    router.add_api_route(
        path,
        upload_pdf,
        methods=["POST"],
        status_code=201,
        summary="Upload Patient PDF",
        response_model=UploadedPdf,
        responses=UPLOAD_RESPONSES,
        openapi_extra=UPLOAD_BODY,
        include_in_schema=in_schema,
        operation_id="upload_patient_pdf" if in_schema else "upload_patient_pdf_no_slash",
    )
