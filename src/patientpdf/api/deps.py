"""Dependencies: the service context and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from patientpdf.context import Context
from patientpdf.services.accounts import Principal, authenticate
from patientpdf.services.patients import authorize_upload

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Your account's API key.", scheme_name="X-API-Key"
)


def get_context(request: Request) -> Context:
    return request.app.state.context  # type: ignore[no-any-return]


ApiKey = Annotated[str | None, Security(api_key_header)]


async def current_principal(request: Request, api_key: ApiKey) -> Principal:
    principal = await run_in_threadpool(authenticate, get_context(request), api_key)
    request.state.key_prefix = principal.key_prefix
    return principal


async def upload_principal(request: Request, api_key: ApiKey) -> Principal:
    """The upload's checks before its body, in the order of the contract: 401, then 404/403.

    A dependency, so it runs before FastAPI reports a malformed `patient_id` (422): a bad
    key is 401 whatever the path holds.
    """
    raw = request.path_params.get("patient_id", "")
    patient_id = int(raw) if raw.isascii() and raw.isdigit() else None
    principal = await run_in_threadpool(authorize_upload, get_context(request), api_key, patient_id)
    request.state.key_prefix = principal.key_prefix
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
UploadPrincipal = Annotated[Principal, Depends(upload_principal)]
ServiceContext = Annotated[Context, Depends(get_context)]


def base_url(request: Request, context: Context) -> str:
    return context.settings.public_base_url or str(request.base_url).rstrip("/")
