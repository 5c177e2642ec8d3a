"""Dependencies: the service context and the admitted caller.

Admission, in order: the key (401, counted as a failure of the client address; once the
address has used up its failed authentications, a failure is 429 instead); then the key's
scope (403); then the key's request rate (429). A valid key is never refused for other
requests' failures from its address. The caller's account and key prefix go into the request
state for the logs and the audit trail.

Every dependency is `async def`: FastAPI runs a plain `def` one on a worker thread, a round
trip per request. One that blocks hands its work to a thread itself (`run_in_threadpool`).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from patientpdf.context import Context
from patientpdf.errors import TooManyRequests, Unauthenticated
from patientpdf.intake.multipart import SpoolFile
from patientpdf.services import links, pdfs, uploads
from patientpdf.security.ids import MAX_ROW_ID, parse_row_id
from patientpdf.services.accounts import Principal, authenticate
from patientpdf.services.patients import authorize_upload, no_patient_with_this_id

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Your account's API key.", scheme_name="X-API-Key"
)


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context  # set once by create_app
    return context


async def _context(request: Request) -> Context:
    return get_context(request)


ApiKey = Annotated[str | None, Security(api_key_header)]

# Read as text and parsed by the one rule (security.ids.parse_row_id), documented as the integer it must be.
ROW_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}


def patient_id_in_path(scope: Any) -> int | None:
    """The path's patient id, or None if the path holds none (for admission and the audit record)."""
    raw = scope.get("path_params", {}).get("patient_id")
    return parse_row_id(raw) if isinstance(raw, str) else None


async def _path_patient_id(
    patient_id: Annotated[str, Path(description="The patient's id", json_schema_extra=ROW_ID_SCHEMA)],
) -> int:
    parsed = parse_row_id(patient_id)
    if parsed is None:
        raise no_patient_with_this_id()
    return parsed


# Declare it after the principal: dependencies run in order, and 401 comes before 404.
PatientId = Annotated[int, Depends(_path_patient_id)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _admit(ctx: Context, client: str, scope: str, check_key: Callable[[], Principal], state: Any) -> Principal:
    try:
        principal = check_key()
    except Unauthenticated:
        blocked_for = ctx.rate_limits.failed_auth_from(client)
        if blocked_for is not None:
            raise TooManyRequests(
                f"Too many failed authentications from your address. Try again in {blocked_for} seconds.",
                code="too_many_failed_authentications",
                retry_after=blocked_for,
            ) from None
        raise
    # who it is, for the logs and the audit record, also when the next checks refuse it
    state.key_prefix, state.account_id = principal.key_prefix, principal.account_id
    principal.require(scope)
    wait = ctx.rate_limits.key_request(principal.key_prefix)
    if wait is not None:
        raise TooManyRequests(
            f"This API key is over its request rate. Try again in {wait} seconds.", code="rate_limited", retry_after=wait
        )
    return principal


def principal_with(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def dependency(request: Request, api_key: ApiKey) -> Principal:
        ctx = get_context(request)
        check_key = lambda: authenticate(ctx, api_key)  # noqa: E731
        return await run_in_threadpool(_admit, ctx, client_address(request), scope, check_key, request.state)

    return dependency


@dataclass
class AdmittedUpload:
    """An upload past its checks before the body: who sends it, the body's multipart
    boundary, and the spool file its PDF goes to."""

    principal: Principal
    boundary: bytes
    spool: SpoolFile


async def upload_admission(request: Request, api_key: ApiKey) -> AsyncIterator[AdmittedUpload]:
    """The upload's checks before its body, in the order of the contract: 401, then 404/403,
    then 413/400 from the body's declared length and type. One trip to a worker thread does
    them all and opens the spool file, which is gone after the response unless it was stored.

    A dependency, so it runs before FastAPI reports a malformed `patient_id` (422): a bad
    key is 401 whatever the path holds.
    """
    patient_id = patient_id_in_path(request.scope)
    ctx = get_context(request)
    state = request.state
    headers = request.headers

    def identified(principal: Principal) -> None:
        state.key_prefix, state.account_id = principal.key_prefix, principal.account_id

    # A request cancelled while admit() runs never receives its spool file: whichever of the
    # two comes second (the file opened, the cancellation) removes it, now, not at the next start.
    handover = threading.Lock()
    opened: list[SpoolFile] = []
    abandoned = False

    def admit() -> AdmittedUpload:
        check_key = lambda: authorize_upload(ctx, api_key, patient_id, identified)  # noqa: E731
        principal = _admit(ctx, client_address(request), "upload", check_key, state)
        boundary = uploads.admit_body(ctx, headers.get("content-length"), headers.get("content-type"))
        admitted = AdmittedUpload(principal, boundary, uploads.open_spool(ctx))
        with handover:
            opened.append(admitted.spool)
            if abandoned:
                admitted.spool.discard()
        return admitted

    try:
        admitted = await run_in_threadpool(admit)
    except BaseException:
        with handover:
            abandoned = True
            for spool in opened:
                spool.discard()
        raise
    try:
        yield admitted
    finally:
        admitted.spool.discard()


ReadPrincipal = Annotated[Principal, Depends(principal_with("read"))]
UploadScopePrincipal = Annotated[Principal, Depends(principal_with("upload"))]
AdminPrincipal = Annotated[Principal, Depends(principal_with("admin"))]
UploadAdmission = Annotated[AdmittedUpload, Depends(upload_admission)]
ServiceContext = Annotated[Context, Depends(_context)]


def base_url(request: Request, context: Context) -> str:
    return context.settings.public_base_url or str(request.base_url).rstrip("/")


LinkFor = Callable[[Any], str]


async def link_maker(
    request: Request,
    url_ttl: Annotated[
        str | None, Query(description="Lifetime in seconds of the signed links in this response, at most the server's maximum.")
    ] = None,
) -> LinkFor:
    """Makes each PDF's `url` for this response, with the caller's `url_ttl`."""
    ctx = get_context(request)
    ttl = links.link_ttl(ctx, url_ttl)
    salt = links.cached_salt(ctx)
    if salt is None:
        salt = await run_in_threadpool(links.signing_salt, ctx)
    base = base_url(request, ctx)
    return lambda row: pdfs.pdf_url(ctx, base, row, ttl, salt)


Links = Annotated[LinkFor, Depends(link_maker)]
