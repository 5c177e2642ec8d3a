"""An account's webhook endpoints: register, change, rotate the secret, delete; the delivery
log and its replay; the ping. `account_id` None: the operator's CLI, for any account."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, RowMapping

from patientpdf.context import Context
from patientpdf.db import jobs as job_queue
from patientpdf.db import repositories as repo
from patientpdf.db import webhooks as db
from patientpdf.errors import BadRequest, Conflict, NotFound
from patientpdf.webhooks import signing, targets
from patientpdf.webhooks.delivery import secret_context
from patientpdf.webhooks.events import EVENT_TYPES, MAX_ATTEMPTS, PING, emit_to

MAX_ENDPOINTS_PER_ACCOUNT = 20
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
_JOB_TO_DELIVERY = {"queued": "pending", "running": "pending", "done": "succeeded", "failed": "failed"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _not_found(endpoint_id: int) -> NotFound:
    return NotFound(f"No webhook endpoint with id {endpoint_id} in your account.", code="webhook_not_found")


def _owned(conn: Connection, account_id: int | None, endpoint_id: int) -> RowMapping:
    row = db.get_endpoint_for_operator(conn, endpoint_id) if account_id is None else db.get_endpoint(conn, account_id, endpoint_id)
    if row is None:
        raise _not_found(endpoint_id)
    return row


def public_endpoint(row: RowMapping) -> dict[str, Any]:
    """An endpoint as the account sees it: never its secret."""
    return {
        "id": row["id"],
        "account_id": row["account_id"],
        "url": row["url"],
        "events": list(row["events"]),
        "enabled": row["enabled"],
        "disabled_reason": row["disabled_reason"],
        "disabled_at": row["disabled_at"],
        "failing_since": row["failing_since"],
        "previous_secret_expires_at": row["previous_secret_expires_at"] if row["previous_secret"] is not None else None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def checked_events(events: Sequence[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise BadRequest(
            f"Unknown event type {', '.join(unknown)}: choose among {', '.join(EVENT_TYPES)}.", code="webhook_event_unknown"
        )
    if not events:
        raise BadRequest(f"Name at least one event type: {', '.join(EVENT_TYPES)}.", code="webhook_events_empty")
    return [event for event in EVENT_TYPES if event in events]


def checked_url(ctx: Context, url: str) -> str:
    """Registration's SSRF check (resolves the host: blocking)."""
    try:
        targets.check(url, targets.AllowedHosts.parse(ctx.settings.webhook_allowed_hosts))
    except targets.UrlRefused as exc:
        raise BadRequest(exc.detail, code=exc.code) from None
    return url


def create_endpoint(ctx: Context, account_id: int, url: str, events: Sequence[str]) -> dict[str, Any]:
    """A new endpoint; its secret is in the result and shown nowhere else, ever."""
    chosen = checked_events(events)
    checked_url(ctx, url)
    secret = signing.new_secret()
    now = _now()
    with ctx.db.write() as conn:
        if repo.get_account(conn, account_id) is None:
            raise NotFound(f"No account with id {account_id}.", code="account_not_found")
        if db.count_endpoints(conn, account_id) >= MAX_ENDPOINTS_PER_ACCOUNT:
            raise Conflict(
                f"An account has at most {MAX_ENDPOINTS_PER_ACCOUNT} webhook endpoints; delete one first.", code="webhook_limit_reached"
            )
        values = {
            "account_id": account_id, "url": url, "events": chosen, "secret": ctx.secret_box.seal(secret, secret_context(account_id)),
            "enabled": True, "created_at": now, "updated_at": now,
        }  # fmt: skip
        row = db.get_endpoint(conn, account_id, db.insert_endpoint(conn, values))
    assert row is not None
    return public_endpoint(row) | {"secret": secret}


def list_endpoints(ctx: Context, account_id: int | None) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        rows = db.list_endpoints_for_operator(conn) if account_id is None else db.list_endpoints(conn, account_id)
    return [public_endpoint(row) for row in rows]


def get_endpoint(ctx: Context, account_id: int | None, endpoint_id: int) -> dict[str, Any]:
    with ctx.db.read() as conn:
        return public_endpoint(_owned(conn, account_id, endpoint_id))


def update_endpoint(
    ctx: Context,
    account_id: int | None,
    endpoint_id: int,
    url: str | None = None,
    events: Sequence[str] | None = None,
    enabled: bool | None = None,
) -> dict[str, Any]:
    """Change the URL (checked again), the event types, or enable/disable it. Enabling clears
    `disabled_reason` and the failing streak; deliveries that failed meanwhile stay failed
    (retry them from the delivery log)."""
    values: dict[str, Any] = {}
    if events is not None:
        values["events"] = checked_events(events)
    if url is not None:
        values["url"] = checked_url(ctx, url)
    now = _now()
    with ctx.db.write() as conn:
        row = _owned(conn, account_id, endpoint_id)
        if enabled is True and not row["enabled"]:
            values |= {"enabled": True, "disabled_at": None, "disabled_reason": None, "failing_since": None}
        elif enabled is False and row["enabled"]:
            values |= {"enabled": False, "disabled_at": now, "disabled_reason": "disabled"}
        if values:
            changed = db.update_endpoint(conn, row["account_id"], endpoint_id, values | {"updated_at": now})
            assert changed is not None
            row = changed
    return public_endpoint(row)


def delete_endpoint(ctx: Context, account_id: int | None, endpoint_id: int) -> dict[str, Any]:
    with ctx.db.write() as conn:
        row = _owned(conn, account_id, endpoint_id)
        db.delete_endpoint(conn, row["account_id"], endpoint_id)
    return public_endpoint(row)


def rotate_secret(ctx: Context, account_id: int | None, endpoint_id: int, grace: timedelta) -> dict[str, Any]:
    """A new secret, shown once; the current one keeps signing too (both signatures are sent)
    for `grace`. A previous secret still in its grace period stops at once."""
    secret = signing.new_secret()
    now = _now()
    with ctx.db.write() as conn:
        row = _owned(conn, account_id, endpoint_id)
        seal = ctx.secret_box.seal(secret, secret_context(row["account_id"]))
        keep_old = grace > timedelta(0)
        values = {
            "secret": seal,
            "previous_secret": row["secret"] if keep_old else None,
            "previous_secret_expires_at": now + grace if keep_old else None,
            "updated_at": now,
        }
        changed = db.update_endpoint(conn, row["account_id"], endpoint_id, values)
    assert changed is not None
    return public_endpoint(changed) | {"secret": secret}


# deliveries -------------------------------------------------------------------------------


def _delivery_not_found(delivery_id: str) -> NotFound:
    return NotFound(f"No delivery {delivery_id!r} for this webhook endpoint.", code="delivery_not_found")


def public_delivery(row: RowMapping) -> dict[str, Any]:
    """A delivery as its log shows it. `status` follows its job: pending until an attempt
    succeeds (`succeeded`) or the attempts are spent or pointless (`failed`, with the code)."""
    status = _JOB_TO_DELIVERY.get(row["job_status"] or "", "failed")
    error = row["job_error"] if status == "failed" and row["job_error"] else row["error"]
    return {
        "id": row["id"],
        "webhook_id": row["endpoint_id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "status": status,
        "attempts": row["attempts"],
        "response_status": row["response_status"],
        "error": None if status == "succeeded" else error,
        "last_attempt_at": row["last_attempt_at"],
        "next_attempt_at": row["job_run_at"] if row["job_status"] == "queued" else None,
        "succeeded_at": row["succeeded_at"],
        "created_at": row["created_at"],
    }


def public_attempt(row: RowMapping) -> dict[str, Any]:
    return {name: row[name] for name in ("attempt", "at", "response_status", "error", "detail", "duration_ms")}


def list_deliveries(ctx: Context, account_id: int | None, endpoint_id: int, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        endpoint = _owned(conn, account_id, endpoint_id)
        rows = db.list_deliveries(conn, endpoint["account_id"], endpoint_id, limit, status)
    return [public_delivery(row) for row in rows]


def get_delivery(ctx: Context, account_id: int | None, endpoint_id: int, delivery_id: str) -> dict[str, Any]:
    """A delivery with each of its attempts."""
    with ctx.db.read() as conn:
        endpoint = _owned(conn, account_id, endpoint_id)
        row = db.get_delivery(conn, endpoint["account_id"], endpoint_id, delivery_id)
        if row is None:
            raise _delivery_not_found(delivery_id)
        attempts = db.attempts_of(conn, endpoint["account_id"], delivery_id)
    return public_delivery(row) | {"attempt_log": [public_attempt(attempt) for attempt in attempts]}


def retry_delivery(ctx: Context, account_id: int | None, endpoint_id: int, delivery_id: str) -> dict[str, Any]:
    """Send a delivery again now, with the same webhook-id, from a fresh set of attempts."""
    now = _now()
    with ctx.db.write() as conn:
        endpoint = _owned(conn, account_id, endpoint_id)
        if not endpoint["enabled"]:
            raise Conflict("This webhook endpoint is disabled: enable it first (PATCH with enabled true).", code="webhook_disabled")
        row = db.get_delivery(conn, endpoint["account_id"], endpoint_id, delivery_id)
        if row is None:
            raise _delivery_not_found(delivery_id)
        job = job_queue.for_subject(conn, job_queue.DELIVER_WEBHOOK, delivery_id)
        if job is None:
            job_queue.enqueue(conn, job_queue.DELIVER_WEBHOOK, delivery_id, endpoint["account_id"], now, MAX_ATTEMPTS)
        elif job["status"] == "running" and job["lease_until"] is not None and job["lease_until"] > now:
            raise Conflict("This delivery is being sent right now; look at it again in a moment.", code="delivery_in_progress")
        else:
            job_queue.requeue(conn, job["id"], now)
        row = db.get_delivery(conn, endpoint["account_id"], endpoint_id, delivery_id)
    assert row is not None
    return public_delivery(row)


def send_ping(ctx: Context, account_id: int | None, endpoint_id: int) -> dict[str, Any]:
    """A `webhook.ping` event to this endpoint alone, whatever event types it wants."""
    now = _now()
    with ctx.db.write() as conn:
        endpoint = _owned(conn, account_id, endpoint_id)
        if not endpoint["enabled"]:
            raise Conflict("This webhook endpoint is disabled: enable it first (PATCH with enabled true).", code="webhook_disabled")
        delivery_id = emit_to(conn, endpoint["account_id"], endpoint_id, PING, {"webhook_id": endpoint_id}, now)
        row = db.get_delivery(conn, endpoint["account_id"], endpoint_id, delivery_id)
    assert row is not None
    return public_delivery(row)
