"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from patientpdf.api.deps import ServiceContext
from patientpdf.api.schemas import Health
from patientpdf.context import Context
from patientpdf.errors import Unavailable
from patientpdf.storage import StorageError

router = APIRouter(tags=["Health"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok", "checks": {}})


def _readiness(context: Context) -> dict[str, str]:
    checks = {}
    try:
        context.db.ping()
        checks["database"] = "ok"
    except Unavailable:
        checks["database"] = "unavailable"
    try:
        context.storage.ping()
        checks["storage"] = "ok"
    except StorageError:
        checks["storage"] = "unavailable"
    return checks


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}}, summary="Readiness: database and storage reachable")
async def readyz(context: ServiceContext) -> JSONResponse:
    checks = await run_in_threadpool(_readiness, context)
    down = sorted(name for name, state in checks.items() if state != "ok")
    if down:
        return JSONResponse(
            {
                "status": "unavailable",
                "checks": checks,
                "detail": f"Not ready: {', '.join(down)} unavailable.",
                "code": "not_ready",
            },
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return JSONResponse({"status": "ready", "checks": checks})
