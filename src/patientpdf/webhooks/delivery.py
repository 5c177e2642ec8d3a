"""One delivery attempt, as a `deliver_webhook` job runs it.

    read the delivery, its endpoint and its event
    check the URL again and resolve it (targets.py); a refusal is a failed attempt
    sign the event's body with every live secret (signing.py), send it pinned (sender.py)
    2xx: return the write of the success, which the worker applies in the transaction that
         finishes the job under its lease
    else: log the attempt (its own transaction: it happened, whoever holds the lease now),
         note the endpoint's failing streak, disable it on 410 or after failing for
         PATIENTPDF_WEBHOOK_DISABLE_AFTER_SECONDS, and fail the attempt: retried on the
         Standard Webhooks schedule, or given up

The `webhook-id` is the delivery's id on every attempt, so a receiver that got an attempt
whose answer never came back (timeout, killed worker) can drop the repeat.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, RowMapping

from patientpdf.context import Context
from patientpdf.db import webhooks as db
from patientpdf.security.secret_box import SealedSecretUnreadable
from patientpdf.settings import Settings
from patientpdf.webhooks import sender, signing, targets
from patientpdf.webhooks.events import RETRY_SCHEDULE_SECONDS

log = logging.getLogger(__name__)

ResultWrite = Callable[[Connection], None]
JITTER = 0.1  # each wait is the schedule's ±10 %


class DeliveryFailed(Exception):
    """This attempt failed; the next one comes on the schedule."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class DeliveryAbandoned(DeliveryFailed):
    """No further attempt can help: the endpoint is gone (410), disabled, or its secret unreadable."""


def retry_delay(settings: Settings, attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the attempt after attempt number `attempts` (1-based) failed."""
    wait = RETRY_SCHEDULE_SECONDS[min(max(attempts, 1), len(RETRY_SCHEDULE_SECONDS)) - 1] * settings.webhook_retry_scale
    return wait * (1 - JITTER + 2 * JITTER * rng())


def secret_context(account_id: int) -> str:
    """What a sealed secret is bound to: its account."""
    return f"webhook:{account_id}"


def live_secrets(ctx: Context, endpoint: RowMapping, now: datetime) -> list[str]:
    """The current secret, then the previous one while its grace period lasts."""
    context = secret_context(endpoint["account_id"])
    found = [ctx.secret_box.open(endpoint["secret"], context)]
    expires = endpoint["previous_secret_expires_at"]
    if endpoint["previous_secret"] is not None and expires is not None and expires > now:
        found.append(ctx.secret_box.open(endpoint["previous_secret"], context))
    return found


def deliver(ctx: Context, delivery_id: str, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> ResultWrite:
    settings = ctx.settings
    with ctx.db.read() as conn:
        row = db.delivery_for_worker(conn, delivery_id)
    if row is None:
        return lambda _conn: None  # its endpoint was deleted since: nothing to send
    if not row["enabled"]:
        raise DeliveryAbandoned("webhook_disabled", "the endpoint is disabled; enable it, then retry the delivery")
    try:
        secrets_in_use = live_secrets(ctx, row, clock())
    except SealedSecretUnreadable as exc:
        log.error("webhook %d: its secret cannot be unsealed (%s); rotate its secret", row["endpoint_id"], exc)
        raise DeliveryAbandoned("webhook_secret_unreadable", "the endpoint's secret was sealed under another server secret: rotate it") from None
    body = row["body"].encode()
    started = time.monotonic()
    try:
        url = targets.parse_url(row["url"], targets.AllowedHosts.parse(settings.webhook_allowed_hosts))
        addresses = targets.vet(url)
    except targets.UrlRefused as refused:
        outcome = sender.Outcome(None, refused.code, refused.detail, int((time.monotonic() - started) * 1000))
    else:
        headers = signing.headers(secrets_in_use, delivery_id, int(time.time()), body)
        outcome = sender.post(url, addresses, body, headers, settings.webhook_timeout_seconds, settings.webhook_max_response_bytes)
    at = clock()
    attempt = _attempt_values(outcome, at)
    if outcome.ok:
        endpoint_id = row["endpoint_id"]

        def succeeded(conn: Connection) -> None:
            db.record_attempt(conn, delivery_id, attempt)
            db.note_success(conn, endpoint_id)

        log.info("webhook delivery %s: %s (%d ms)", delivery_id, outcome.status, outcome.duration_ms)
        return succeeded
    disabled = _record_failure(ctx, row, attempt, at)
    log.warning("webhook delivery %s failed: %s (%s)", delivery_id, outcome.error, outcome.detail)
    if disabled == "gone":
        raise DeliveryAbandoned("webhook_gone", "the receiver answered 410 Gone: the endpoint is disabled")
    if disabled == "failing":
        raise DeliveryAbandoned("webhook_disabled", f"the endpoint has failed for {settings.webhook_disable_after_seconds:g} s: it is disabled")
    assert outcome.error is not None
    raise DeliveryFailed(outcome.error, outcome.detail or outcome.error)


def _attempt_values(outcome: sender.Outcome, at: datetime) -> dict[str, Any]:
    return {"at": at, "response_status": outcome.status, "error": outcome.error, "detail": outcome.detail, "duration_ms": outcome.duration_ms}


def _record_failure(ctx: Context, row: RowMapping, attempt: dict[str, Any], now: datetime) -> str | None:
    """Log the failed attempt and note it on the endpoint; the reason it was disabled now, if it was."""
    limit = timedelta(seconds=ctx.settings.webhook_disable_after_seconds)
    with ctx.db.write() as conn:
        if db.record_attempt(conn, row["id"], attempt) is None:
            return None  # deleted meanwhile
        endpoint = db.note_failure(conn, row["endpoint_id"], now)
        reason = None
        if attempt["response_status"] == 410:
            reason = "gone"
        elif endpoint["failing_since"] is not None and now - endpoint["failing_since"] >= limit:
            reason = "failing"
        if reason is not None and endpoint["enabled"]:
            db.disable_endpoint(conn, row["endpoint_id"], now, reason)
            log.warning("webhook %d disabled: %s", row["endpoint_id"], reason)
    return reason
