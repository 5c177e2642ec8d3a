"""The account's webhook endpoints and their delivery log, managed with an `admin` key."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from patientpdf import webhooks
from patientpdf.api.audit import audited
from patientpdf.api.deps import ROW_ID_SCHEMA, AdminPrincipal, ServiceContext
from patientpdf.api.routes.pdfs import AUTH, NOT_JSON
from patientpdf.api.schemas import ErrorBody, Responses, rfc3339
from patientpdf.errors import NotFound
from patientpdf.security.ids import parse_row_id

router = APIRouter(tags=["Webhooks"])


async def _path_webhook_id(webhook_id: Annotated[str, Path(description="The endpoint's id", json_schema_extra=ROW_ID_SCHEMA)]) -> int:
    """The API's one rule for ids in paths (security.ids.parse_row_id): anything else names nothing."""
    parsed = parse_row_id(webhook_id)
    if parsed is None:
        raise NotFound("No such webhook endpoint in your account: an endpoint id is a whole number in plain digits.", code="webhook_not_found")
    return parsed


# After the principal in each signature: 401 comes before 404.
WebhookId = Annotated[int, Depends(_path_webhook_id)]
DeliveryId = Annotated[str, Path(max_length=40, description="The delivery's id (msg_…): its webhook-id header")]
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such webhook endpoint (or delivery) in your account"}}
REFUSED: Responses = {
    400: {
        "model": ErrorBody,
        "description": "The URL may not receive webhooks (webhook_url_invalid, webhook_url_not_https, webhook_url_not_public, "
        "webhook_url_unresolvable) or an event type is unknown (webhook_event_unknown, webhook_events_empty)",
    }
}
LIMIT: Responses = {409: {"model": ErrorBody, "description": "The account has 20 endpoints already (webhook_limit_reached)"}}
DISABLED: Responses = {409: {"model": ErrorBody, "description": "The endpoint is disabled (webhook_disabled)"}}
EventType = Literal["pdf.uploaded", "pdf.processed", "pdf.processing_failed", "pdf.deleted", "key.revoked"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=10_000, description="https:// URL that receives the events (checked: public addresses only)")
    events: list[str] = Field(max_length=20, description=f"Event types to receive: {', '.join(webhooks.EVENT_TYPES)}")


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=10_000, description="A new URL, checked as at registration")
    events: list[str] | None = Field(None, max_length=20)
    enabled: bool | None = Field(None, description="true re-enables a disabled endpoint; false disables it")


DEFAULT_GRACE_SECONDS = 86400


class SecretRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(DEFAULT_GRACE_SECONDS, ge=0, le=30 * 86400, description="How long the old secret keeps signing beside the new one")


class Webhook(BaseModel):
    id: int
    url: str
    events: list[EventType]
    enabled: bool
    disabled_reason: Literal["gone", "failing", "disabled"] | None = Field(
        description="Why it is disabled: gone (the receiver answered 410), failing (failed for days), disabled (by you)"
    )
    disabled_at: datetime | None
    failing_since: datetime | None = Field(description="First failed attempt since the last success")
    previous_secret_expires_at: datetime | None = Field(description="During a rotation: when the old secret stops signing")
    created_at: datetime
    updated_at: datetime


class NewSecret(Webhook):
    secret: str = Field(description="whsec_… signing secret. It is shown this once")


class Delivery(BaseModel):
    id: str = Field(description="The webhook-id header of every attempt")
    webhook_id: int
    event_id: str
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int = Field(description="Attempts made so far (replays included)")
    response_status: int | None = Field(description="The last attempt's HTTP status, if the receiver answered")
    error: str | None = Field(description="The last failure's code: timeout, connection_failed, tls_failed, network_error, http_status, webhook_url_*, webhook_gone, webhook_disabled")
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    succeeded_at: datetime | None
    created_at: datetime


class Attempt(BaseModel):
    attempt: int
    at: datetime
    response_status: int | None
    error: str | None
    detail: str | None
    duration_ms: int


class DeliveryWithAttempts(Delivery):
    attempt_log: list[Attempt]


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items() if key != "account_id"}
    if isinstance(value, list):
        return [_json(item) for item in value]
    return value


@router.post(
    "/webhooks", status_code=201, response_model=NewSecret, responses=AUTH | REFUSED | NOT_JSON | LIMIT, summary="Register a webhook endpoint"
)
@audited("webhook.create")
async def create_webhook(body: WebhookCreate, principal: AdminPrincipal, context: ServiceContext) -> JSONResponse:
    """The answer holds the endpoint's signing `secret`, shown this once."""
    row = await run_in_threadpool(webhooks.create_endpoint, context, principal.account_id, body.url, body.events)
    return JSONResponse(_json(row), status_code=201, headers={"Location": f"/webhooks/{row['id']}"})


@router.get("/webhooks", response_model=list[Webhook], responses=AUTH, summary="The account's webhook endpoints")
@audited("webhook.list")
async def list_webhooks(principal: AdminPrincipal, context: ServiceContext) -> JSONResponse:
    return JSONResponse(_json(await run_in_threadpool(webhooks.list_endpoints, context, principal.account_id)))


@router.get("/webhooks/{webhook_id}", response_model=Webhook, responses=AUTH | NOT_FOUND, summary="One webhook endpoint")
@audited("webhook.read")
async def get_webhook(principal: AdminPrincipal, webhook_id: WebhookId, context: ServiceContext) -> JSONResponse:
    return JSONResponse(_json(await run_in_threadpool(webhooks.get_endpoint, context, principal.account_id, webhook_id)))


@router.patch("/webhooks/{webhook_id}", response_model=Webhook, responses=AUTH | REFUSED | NOT_FOUND, summary="Change a webhook endpoint")
@audited("webhook.update")
async def update_webhook(principal: AdminPrincipal, webhook_id: WebhookId, body: WebhookUpdate, context: ServiceContext) -> JSONResponse:
    row = await run_in_threadpool(webhooks.update_endpoint, context, principal.account_id, webhook_id, body.url, body.events, body.enabled)
    return JSONResponse(_json(row))


@router.delete("/webhooks/{webhook_id}", status_code=204, response_class=Response, responses=AUTH | NOT_FOUND, summary="Delete a webhook endpoint")
@audited("webhook.delete")
async def delete_webhook(principal: AdminPrincipal, webhook_id: WebhookId, context: ServiceContext) -> Response:
    """The endpoint, its deliveries and their pending attempts are gone."""
    await run_in_threadpool(webhooks.delete_endpoint, context, principal.account_id, webhook_id)
    return Response(status_code=204)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    status_code=201,
    response_model=NewSecret,
    responses=AUTH | NOT_FOUND | NOT_JSON,
    summary="Rotate the signing secret",
)
@audited("webhook.rotate_secret")
async def rotate_secret(
    principal: AdminPrincipal, webhook_id: WebhookId, context: ServiceContext, body: SecretRotate | None = None
) -> JSONResponse:
    """A new secret, shown once. For `grace_seconds` every delivery carries two signatures, one
    per secret, so a receiver verifies with either while it switches."""
    grace = timedelta(seconds=body.grace_seconds if body is not None else DEFAULT_GRACE_SECONDS)
    row = await run_in_threadpool(webhooks.rotate_secret, context, principal.account_id, webhook_id, grace)
    return JSONResponse(_json(row), status_code=201)


@router.post(
    "/webhooks/{webhook_id}/test", status_code=202, response_model=Delivery, responses=AUTH | NOT_FOUND | DISABLED, summary="Send a ping event"
)
@audited("webhook.test")
async def test_webhook(principal: AdminPrincipal, webhook_id: WebhookId, context: ServiceContext) -> JSONResponse:
    """A `webhook.ping` event to this endpoint; follow it in the delivery log."""
    row = await run_in_threadpool(webhooks.send_ping, context, principal.account_id, webhook_id)
    return JSONResponse(_json(row), status_code=202)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=list[Delivery], responses=AUTH | NOT_FOUND, summary="The delivery log, newest first")
@audited("webhook.deliveries")
async def list_deliveries(
    principal: AdminPrincipal,
    webhook_id: WebhookId,
    context: ServiceContext,
    status: Annotated[Literal["pending", "succeeded", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JSONResponse:
    job_status = {"succeeded": "done"}.get(status or "", status)
    rows = await run_in_threadpool(webhooks.list_deliveries, context, principal.account_id, webhook_id, limit, job_status)
    return JSONResponse(_json(rows))


@router.get(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}",
    response_model=DeliveryWithAttempts,
    responses=AUTH | NOT_FOUND,
    summary="One delivery with each of its attempts",
)
@audited("webhook.delivery")
async def get_delivery(principal: AdminPrincipal, webhook_id: WebhookId, delivery_id: DeliveryId, context: ServiceContext) -> JSONResponse:
    return JSONResponse(_json(await run_in_threadpool(webhooks.get_delivery, context, principal.account_id, webhook_id, delivery_id)))


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=Delivery,
    responses=AUTH | NOT_FOUND | {409: {"model": ErrorBody, "description": "The delivery is being sent now, or the endpoint is disabled"}},
    summary="Send a delivery again (same webhook-id)",
)
@audited("webhook.retry")
async def retry_delivery(principal: AdminPrincipal, webhook_id: WebhookId, delivery_id: DeliveryId, context: ServiceContext) -> JSONResponse:
    row = await run_in_threadpool(webhooks.retry_delivery, context, principal.account_id, webhook_id, delivery_id)
    return JSONResponse(_json(row), status_code=202)
