"""The account's API keys, managed with an `admin` key. Each change is audited by the service."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from patientpdf.api.audit import audited
from patientpdf.api.deps import ROW_ID_SCHEMA, AdminPrincipal, ServiceContext
from patientpdf.api.paging import PAGED, Page, paged_response
from patientpdf.api.routes.pdfs import AUTH, NOT_JSON
from patientpdf.api.schemas import ErrorBody, Responses, rfc3339
from patientpdf.errors import NotFound
from patientpdf.security.ids import parse_row_id
from patientpdf.services import accounts
from patientpdf.services.clock import now_utc

router = APIRouter(tags=["API keys"])


async def _path_key_id(key_id: Annotated[str, Path(description="The key's id", json_schema_extra=ROW_ID_SCHEMA)]) -> int:
    parsed = parse_row_id(key_id)
    if parsed is None:
        raise NotFound("No such API key in your account: a key id is a whole number in plain digits (1, 2, 3, ...).", code="key_not_found")
    return parsed


# After the principal in each signature: 401 comes before 404.
KeyId = Annotated[int, Depends(_path_key_id)]
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such key in your account"}}


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    scopes: list[accounts.Scope] = Field(default_factory=lambda: list(accounts.SCOPES), min_length=1)
    # strict: JSON `true` is not a number of seconds (pydantic's lax mode would read it as 1)
    expires_in_seconds: int | None = Field(None, gt=0, le=10 * 365 * 86400, strict=True, description="Expire the key after this long; default: never")


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(86400, ge=0, le=30 * 86400, strict=True, description="How long the old key keeps working")


class ApiKey(BaseModel):
    id: int
    name: str | None
    prefix: str = Field(description="The key's first 12 characters: how logs and listings name it")
    scopes: list[str]
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class NewApiKey(ApiKey):
    key: str = Field(description="The full key. It is shown this once and stored only as a hash")


def _body(row: dict[str, Any]) -> dict[str, Any]:
    body = {name: row[name] for name in ("id", "name", "prefix", "scopes")}
    for name in ("created_at", "expires_at", "last_used_at", "revoked_at"):
        body[name] = rfc3339(row[name]) if row[name] is not None else None
    if "key" in row:
        body["key"] = row["key"]
    return body


def _actor(request: Request, principal: accounts.Principal) -> accounts.Actor:
    client = request.client.host if request.client else None
    return accounts.Actor(key_prefix=principal.key_prefix, client=client, request_id=request.state.request_id)


def _key_not_found(key_id: int) -> NotFound:
    return NotFound(f"No API key with id {key_id} in your account.", code="key_not_found")


@router.get(
    "/keys", response_model=list[ApiKey], responses=AUTH | PAGED, summary="The account's API keys (never the keys themselves), paged"
)
@audited("key.list")
async def list_keys(request: Request, principal: AdminPrincipal, context: ServiceContext, page: Page) -> JSONResponse:
    rows, next_cursor = await run_in_threadpool(accounts.list_keys_page, context, principal.account_id, page)
    return paged_response(request, [_body(row) for row in rows], next_cursor, page)


@router.post("/keys", status_code=201, response_model=NewApiKey, responses=AUTH | NOT_JSON, summary="Create an API key")
@audited("key.create")
async def create_key(body: KeyCreate, request: Request, principal: AdminPrincipal, context: ServiceContext) -> JSONResponse:
    expires_at = now_utc() + timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds else None
    scopes = accounts.parse_scopes(body.scopes)
    row = await run_in_threadpool(
        accounts.create_key, context, principal.account_id, body.name, scopes, expires_at, _actor(request, principal)
    )
    request.state.audited = True  # by the service, in the key's own transaction
    return JSONResponse(_body(row), status_code=201)


@router.post(
    "/keys/{key_id}/rotate",
    status_code=201,
    response_model=NewApiKey,
    responses=AUTH | NOT_FOUND | NOT_JSON,
    summary="Rotate an API key",
)
@audited("key.rotate")
async def rotate_key(
    body: KeyRotate, request: Request, principal: AdminPrincipal, key_id: KeyId, context: ServiceContext
) -> JSONResponse:
    """A new key with the old one's name and scopes; the old key keeps working for the grace period."""
    try:
        row = await run_in_threadpool(
            accounts.rotate_key, context, key_id, timedelta(seconds=body.grace_seconds), principal.account_id, _actor(request, principal)
        )
    except LookupError:
        raise _key_not_found(key_id) from None
    request.state.audited = True
    return JSONResponse(_body(row), status_code=201)


@router.delete("/keys/{key_id}", response_model=ApiKey, responses=AUTH | NOT_FOUND, summary="Revoke an API key at once")
@audited("key.revoke")
async def revoke_key(request: Request, principal: AdminPrincipal, key_id: KeyId, context: ServiceContext) -> JSONResponse:
    try:
        row = await run_in_threadpool(accounts.revoke_key, context, key_id, principal.account_id, _actor(request, principal))
    except LookupError:
        raise _key_not_found(key_id) from None
    request.state.audited = True
    return JSONResponse(_body(row))
