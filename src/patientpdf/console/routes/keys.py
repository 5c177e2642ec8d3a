"""The account's API keys: list, create (shown once), rotate with a grace period, revoke."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from patientpdf.console.auth import Changing, SignedIn, actor_of, context_of, form_list, small_form
from patientpdf.console.pages import base_path, render
from patientpdf.console.path_ids import KeyId
from patientpdf.console.routes import audited
from patientpdf.errors import BadRequest, NotFound
from patientpdf.services import accounts
from patientpdf.services.clock import now_utc

router = APIRouter()
# The choices the forms offer, in seconds (None: never expires)
EXPIRY_CHOICES = {"never": None, "1d": 86400, "30d": 30 * 86400, "90d": 90 * 86400, "365d": 365 * 86400}
GRACE_CHOICES = {"0": 0, "1h": 3600, "24h": 86400, "7d": 7 * 86400}
# A key this close to its expiry shows as "expiring" (the old key of a rotation, for instance)
EXPIRING_WITHIN = timedelta(days=7)


class KeyForm(BaseModel):
    name: str | None = Field(None, max_length=200)
    scopes: list[accounts.Scope] = Field(min_length=1)
    expires: str = "never"


def key_state(row: dict[str, Any], now: datetime) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    if row["expires_at"] is not None and row["expires_at"] - now <= EXPIRING_WITHIN:
        return "expiring"
    return "active"


async def _keys_page(request: Request, session: SignedIn, new_key: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    rows = await run_in_threadpool(accounts.list_keys, context_of(request), session.account_id)
    now = now_utc()
    keys = [row | {"state": key_state(row, now)} for row in reversed(rows)]
    values = {
        "nav": "keys",
        "keys": keys,
        "new_key": new_key,
        "scopes": accounts.SCOPES,
        "scope_meaning": accounts.SCOPE_MEANING,
        "expiry_choices": list(EXPIRY_CHOICES),
        "grace_choices": list(GRACE_CHOICES),
    }
    return render(request, "keys.html", values, status_code=status_code, session=session)


@router.get("/keys")
@audited("key.list")
async def list_keys(request: Request, session: SignedIn) -> Response:
    return await _keys_page(request, session)


@router.post("/keys")
@audited("key.create")
async def create_key(request: Request, session: Changing) -> Response:
    """The page again, with the new key shown this once (never in a URL, never stored)."""
    form = await small_form(request)
    try:
        values = KeyForm.model_validate(
            {"name": form.get("name") or None, "scopes": await form_list(request, "scopes"), "expires": form.get("expires", "never")}
        )
    except ValidationError:
        raise BadRequest("Choose at least one scope (upload, read, admin), and a name of at most 200 characters.", code="invalid_key") from None
    if values.expires not in EXPIRY_CHOICES:
        raise BadRequest("Choose an expiry from the list.", code="invalid_key")
    seconds = EXPIRY_CHOICES[values.expires]
    expires_at = now_utc() + timedelta(seconds=seconds) if seconds else None
    row = await run_in_threadpool(
        accounts.create_key,
        context_of(request),
        session.account_id,
        values.name,
        accounts.parse_scopes(values.scopes),
        expires_at,
        actor_of(request, session),
    )
    request.state.audited = True  # by the service, in the key's own transaction
    return await _keys_page(request, session, new_key=row, status_code=201)


@router.post("/keys/{key_id}/rotate")
@audited("key.rotate")
async def rotate_key(key_id: KeyId, request: Request, session: Changing) -> Response:
    grace = (await small_form(request)).get("grace", "24h")
    if grace not in GRACE_CHOICES:
        raise BadRequest("Choose a grace period from the list.", code="invalid_grace")
    try:
        row = await run_in_threadpool(
            accounts.rotate_key,
            context_of(request),
            key_id,
            timedelta(seconds=GRACE_CHOICES[grace]),
            session.account_id,
            actor_of(request, session),
        )
    except LookupError:
        raise NotFound(f"No API key with id {key_id} in your account, or it is revoked.", code="key_not_found") from None
    request.state.audited = True
    return await _keys_page(request, session, new_key=row, status_code=201)


@router.post("/keys/{key_id}/revoke")
@audited("key.revoke")
async def revoke_key(key_id: KeyId, request: Request, session: Changing) -> Response:
    try:
        await run_in_threadpool(accounts.revoke_key, context_of(request), key_id, session.account_id, actor_of(request, session))
    except LookupError:
        raise NotFound(f"No API key with id {key_id} in your account.", code="key_not_found") from None
    request.state.audited = True
    return RedirectResponse(f"{base_path(request)}/keys", status_code=303)
