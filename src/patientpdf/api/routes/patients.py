"""Patients of the caller's account."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from patientpdf.api.deps import CurrentPrincipal, ServiceContext, base_url
from patientpdf.api.schemas import ErrorBody, Patient, PatientCreate, patient_body
from patientpdf.services import patients, pdfs

router = APIRouter(tags=["Patients"])

AUTH = {401: {"model": ErrorBody, "description": "Missing, invalid or revoked API key"}}


@router.post("/patients", status_code=201, response_model=Patient, responses=AUTH, summary="Create a patient")
async def create_patient(body: PatientCreate, principal: CurrentPrincipal, context: ServiceContext) -> JSONResponse:
    values = body.model_dump()
    values["dob"] = body.dob.isoformat() if body.dob else None
    row = await run_in_threadpool(patients.create_patient, context, principal.account_id, values)
    return JSONResponse(patient_body(row, None), status_code=201, headers={"Location": f"/patients/{row['id']}/"})


@router.get("/patients", response_model=list[Patient], responses=AUTH, summary="The account's patients")
async def list_patients(request: Request, principal: CurrentPrincipal, context: ServiceContext) -> JSONResponse:
    rows, newest = await run_in_threadpool(patients.list_patients, context, principal.account_id)
    base = base_url(request, context)
    return JSONResponse(
        [
            patient_body(row, pdfs.pdf_url(context, base, newest[row["id"]]) if row["id"] in newest else None)
            for row in rows
        ]
    )


async def get_patient(patient_id: int, request: Request, principal: CurrentPrincipal, context: ServiceContext) -> JSONResponse:
    row, newest = await run_in_threadpool(patients.patient_with_newest_pdf, context, principal.account_id, patient_id)
    url = pdfs.pdf_url(context, base_url(request, context), newest) if newest else None
    return JSONResponse(patient_body(row, url))


for path, in_schema in (("/patients/{patient_id}/", True), ("/patients/{patient_id}", False)):
    router.add_api_route(
        path,
        get_patient,
        methods=["GET"],
        response_model=Patient,
        responses=AUTH | {403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
        summary="One patient",
        include_in_schema=in_schema,
        operation_id="get_patient" if in_schema else "get_patient_no_slash",
    )
