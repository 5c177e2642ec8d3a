"""Patients: list with search by name, create, open one (its PDFs and the drop zone)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from patientpdf.console.auth import Changing, SignedIn, actor_of, context_of, small_form
from patientpdf.console.pages import base_path, is_htmx, render
from patientpdf.console.path_ids import PatientId
from patientpdf.console.routes import audited
from patientpdf.errors import BadRequest, Forbidden, NotFound
from patientpdf.services import patients, pdfs, uploads
from patientpdf.services.audit import AuditEvent
from patientpdf.services.paging import MAX_LIMIT, PageRequest
from patientpdf.services.processing import Processing

router = APIRouter()
CONSOLE_PAGE = PageRequest(limit=MAX_LIMIT)  # the console lists at most this many rows per table

T = TypeVar("T")


class PatientForm(BaseModel):
    name: str = Field(min_length=1, max_length=500)
    dob: date | None = None
    sex: str | None = Field(None, max_length=50)

    @field_validator("dob", "sex", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return value or None


@contextmanager
def another_accounts_patient_is_not_found(patient_id: int) -> Iterator[None]:
    """The API answers 403 for another account's patient (its upload document says so); the
    console shows no difference between someone else's patient and none at all."""
    try:
        yield
    except Forbidden as exc:
        if exc.code != "patient_forbidden":
            raise
        raise NotFound(f"No patient with id {patient_id} in your account.", code="patient_not_found") from None


async def owned(patient_id: int, call: Callable[..., T], *args: Any) -> T:
    with another_accounts_patient_is_not_found(patient_id):
        return await run_in_threadpool(call, *args)


def processing_label(processing: Processing) -> str:
    if processing.status == "done" and processing.extraction is not None:
        ocr = processing.extraction["pages_ocr"]
        return "done" + (f" ({ocr} page{'s' if ocr != 1 else ''} by OCR)" if ocr else "")
    if processing.status == "failed":
        return f"failed: {processing.error}"
    return {"running": "processing…", "queued": "queued"}.get(processing.status, processing.status)


def shaped_pdfs(rows: Any, processing: dict[str, Processing]) -> list[dict[str, Any]]:
    """The PDFs as the table shows them, each with where its processing stands."""
    shaped = []
    for row in rows:
        state = processing[row["id"]]
        shaped.append(
            dict(row)
            | {
                "processing_status": state.status,
                "processing_label": processing_label(state),
                "processing_pending": state.status in ("queued", "running"),
            }
        )
    return shaped


@router.get("/patients")
@audited("patient.list")
async def list_patients(request: Request, session: SignedIn, q: Annotated[str, Query(max_length=200)] = "") -> Response:
    rows, newest, _more = await run_in_threadpool(
        patients.list_patients, context_of(request), session.account_id, CONSOLE_PAGE, q.strip() or None
    )
    values = {"nav": "patients", "patients": rows, "newest": newest, "q": q}
    template = "_patient_rows.html" if is_htmx(request) and request.headers.get("hx-target") == "patient-rows" else "patients.html"
    return render(request, template, values, session=session)


@router.post("/patients")
@audited("patient.create")
async def create_patient(request: Request, session: Changing) -> Response:
    form = await small_form(request)
    try:
        values = PatientForm.model_validate({name: form.get(name) for name in ("name", "dob", "sex")})
    except ValidationError:
        raise BadRequest("A patient needs a name (at most 500 characters); the date of birth is YYYY-MM-DD.", code="invalid_patient") from None
    row = await run_in_threadpool(
        patients.create_patient,
        context_of(request),
        session.account_id,
        {"name": values.name, "dob": values.dob.isoformat() if values.dob else None, "sex": values.sex, "additional_variables": {}},
    )
    request.state.patient_id = row["id"]
    return RedirectResponse(f"{base_path(request)}/patients/{row['id']}", status_code=303)


@router.get("/patients/{patient_id}")
@audited("patient.read")
async def patient_page(patient_id: PatientId, request: Request, session: SignedIn) -> Response:
    ctx = context_of(request)
    patient = await owned(patient_id, patients.owned_patient, ctx, session.account_id, patient_id)
    rows, processing, _more = await owned(patient_id, pdfs.list_pdfs, ctx, session.account_id, patient_id, CONSOLE_PAGE)
    values = {"nav": "patients", "patient": patient, "pdfs": shaped_pdfs(rows, processing), "notice": request.query_params.get("notice")}
    return render(request, "patient.html", values, session=session)


@router.get("/patients/{patient_id}/pdfs")
@audited("pdf.list")
async def pdf_table(patient_id: PatientId, request: Request, session: SignedIn) -> Response:
    """The PDF table alone, for htmx: refreshed after each upload and while processing runs."""
    rows, processing, _more = await owned(patient_id, pdfs.list_pdfs, context_of(request), session.account_id, patient_id, CONSOLE_PAGE)
    return render(request, "_pdf_rows.html", {"pdfs": shaped_pdfs(rows, processing), "patient_id": patient_id}, session=session)


@router.post("/patients/{patient_id}/pdfs")
@audited("pdf.upload")
async def upload(patient_id: PatientId, request: Request, session: Changing) -> JSONResponse:
    """The drop zone's upload, one PDF per request, checked and stored as the API's upload is.
    Answers JSON, so the page can show each file's outcome and the server's `detail`."""
    ctx = context_of(request)
    await owned(patient_id, patients.owned_patient, ctx, session.account_id, patient_id)
    boundary = uploads.admit_body(ctx, request.headers.get("content-length"), request.headers.get("content-type"))
    upload = await uploads.receive(ctx, request.stream(), boundary)
    try:
        actor = actor_of(request, session)
        event = AuditEvent(
            action="pdf.upload",
            outcome="201",
            account_id=session.account_id,
            key_prefix=actor.key_prefix,
            client=actor.client,
            request_id=actor.request_id,
        )
        row = await uploads.store(ctx, session.account_id, patient_id, upload, event)
        request.state.audited = True
    finally:
        upload.discard()
    body = {"id": row["id"], "filename": row["filename"], "pages": row["page_count"], "duplicate_of": row["duplicate_of"]}
    return JSONResponse(body, status_code=201)
