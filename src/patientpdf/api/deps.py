"""Dependencies: the service context and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from patientpdf.context import Context
from patientpdf.services.accounts import Principal, authenticate

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


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
ServiceContext = Annotated[Context, Depends(get_context)]


def base_url(request: Request, context: Context) -> str:
    return context.settings.public_base_url or str(request.base_url).rstrip("/")
