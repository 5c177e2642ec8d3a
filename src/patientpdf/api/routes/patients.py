"""Patients of the caller's account."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from patientpdf.api.audit import audited
from patientpdf.api.deps import PatientId, Links, ReadPrincipal, ServiceContext, UploadScopePrincipal, base_url
from patientpdf.api.paging import PAGED, Page, paged_response
from patientpdf.api.routes.pdfs import AUTH, BAD_TTL, NOT_JSON
from patientpdf.api.schemas import ErrorBody, Patient, PatientCreate, patient_body, pdf_json_cache_body
from patientpdf.services import patients

router = APIRouter(tags=["Patients"])


@router.post(
    "/patients",
    status_code=201,
    response_model=Patient,
    responses=AUTH | NOT_JSON,
    summary="Create a patient",
)
@audited("patient.create")
async def create_patient(body: PatientCreate, request: Request, principal: UploadScopePrincipal, context: ServiceContext) -> JSONResponse:
    values = body.model_dump()
    values["dob"] = body.dob.isoformat() if body.dob else None
    row = await run_in_threadpool(patients.create_patient, context, principal.account_id, values)
    request.state.patient_id = row["id"]
    return JSONResponse(patient_body(row, None), status_code=201, headers={"Location": f"/patients/{row['id']}/"})


@router.get(
    "/patients", response_model=list[Patient], responses=AUTH | BAD_TTL | PAGED, summary="The account's patients, by id, paged"
)
@audited("patient.list")
async def list_patients(request: Request, principal: ReadPrincipal, context: ServiceContext, link_for: Links, page: Page) -> JSONResponse:
    rows, newest, next_cursor = await run_in_threadpool(patients.list_patients, context, principal.account_id, page)
    body = [patient_body(row, link_for(newest[row["id"]]) if row["id"] in newest else None) for row in rows]
    return paged_response(request, body, next_cursor, page)


@audited("patient.read")
async def get_patient(
    principal: ReadPrincipal, patient_id: PatientId, request: Request, context: ServiceContext, link_for: Links
) -> JSONResponse:
    row, newest, extraction = await run_in_threadpool(patients.patient_with_newest_pdf, context, principal.account_id, patient_id)
    cache = pdf_json_cache_body(extraction, base_url(request, context)) if extraction else None
    return JSONResponse(patient_body(row, link_for(newest) if newest else None, cache))


for path, in_schema in (("/patients/{patient_id}/", True), ("/patients/{patient_id}", False)):
    router.add_api_route(
        path,
        get_patient,
        methods=["GET"],
        response_model=Patient,
        responses=AUTH | BAD_TTL | {403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
        summary="One patient",
        include_in_schema=in_schema,
        operation_id="get_patient" if in_schema else "get_patient_no_slash",
    )
