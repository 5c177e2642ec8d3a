"""`patientpdf webhooks`: the accounts' webhook endpoints, for operators."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from patientpdf.cli.common import duration, emit, json_option, jsonable, open_context

T = TypeVar("T")


def _service(call: Callable[[], T]) -> T:
    from patientpdf.errors import ApiError

    try:
        return call()
    except ApiError as exc:
        raise click.ClickException(exc.detail) from None


def _line(row: dict[str, Any]) -> str:
    state = "enabled" if row["enabled"] else f"disabled ({row['disabled_reason']} since {jsonable(row['disabled_at'])})"
    return f"{row['id']}\taccount {row['account_id']}\t{row['url']}\t{','.join(row['events'])}\t{state}"


@click.group()
def webhooks() -> None:
    """Webhook endpoints: register, list, rotate the secret, delete, test."""


@webhooks.command("list")
@click.argument("account_id", type=int, required=False)
@json_option
def webhooks_list(account_id: int | None, as_json: bool) -> None:
    """Every account's endpoints, or one account's: URL, event types, enabled or why not."""
    from patientpdf.webhooks import list_endpoints

    rows = list_endpoints(open_context(), account_id)
    emit(as_json, {"webhooks": rows}, "\n".join(_line(row) for row in rows) or "no webhooks")


@webhooks.command("create")
@click.argument("account_id", type=int)
@click.argument("url")
@click.option("--events", default=None, help="Comma-separated event types [default: all]")
@json_option
def webhooks_create(account_id: int, url: str, events: str | None, as_json: bool) -> None:
    """Register an endpoint; its signing secret is shown this once."""
    from patientpdf.webhooks import EVENT_TYPES, create_endpoint

    chosen = [part.strip() for part in events.split(",") if part.strip()] if events else list(EVENT_TYPES)
    ctx = open_context()
    row = _service(lambda: create_endpoint(ctx, account_id, url, chosen))
    emit(as_json, row, f"{_line(row)}\nsecret: {row['secret']}\nStore it now: it cannot be shown again.")


@webhooks.command("delete")
@click.argument("webhook_id", type=int)
@json_option
def webhooks_delete(webhook_id: int, as_json: bool) -> None:
    """Delete an endpoint with its deliveries."""
    from patientpdf.webhooks import delete_endpoint

    ctx = open_context()
    row = _service(lambda: delete_endpoint(ctx, None, webhook_id))
    emit(as_json, row, f"webhook {row['id']} deleted")


@webhooks.command("rotate")
@click.argument("webhook_id", type=int)
@click.option("--grace", default="24h", show_default=True, help="How long the old secret keeps signing too: 0s, 15m, 12h, 30d")
@json_option
def webhooks_rotate(webhook_id: int, grace: str, as_json: bool) -> None:
    """A new signing secret; the old one signs beside it for the grace period."""
    from patientpdf.webhooks import rotate_secret

    ctx = open_context()
    row = _service(lambda: rotate_secret(ctx, None, webhook_id, duration(grace, "--grace")))
    until = jsonable(row["previous_secret_expires_at"])
    text = f"secret: {row['secret']}\nStore it now: it cannot be shown again.\n" + (
        f"the old secret signs too until {until}" if until else "the old secret no longer signs"
    )
    emit(as_json, row, text)


@webhooks.command("test")
@click.argument("webhook_id", type=int)
@click.option("--wait", "wait", default="30s", show_default=True, help="How long to wait for the first attempt (0s: only queue it)")
@json_option
def webhooks_test(webhook_id: int, wait: str, as_json: bool) -> None:
    """Send a webhook.ping event and show its first attempt (a worker sends it; exit 1 if it failed)."""
    from patientpdf.webhooks import get_delivery, send_ping

    ctx = open_context()
    seconds = duration(wait, "--wait").total_seconds()
    delivery = _service(lambda: send_ping(ctx, None, webhook_id))
    if seconds == 0:
        emit(as_json, delivery, f"ping {delivery['id']} queued")
        return
    deadline = time.monotonic() + seconds
    delivery_id = delivery["id"]
    while delivery["attempts"] == 0:
        if time.monotonic() > deadline:
            raise click.ClickException(f"ping {delivery_id} is queued, but no worker attempted it in {wait}: is a worker running?")
        time.sleep(0.2)
        delivery = _service(lambda: get_delivery(ctx, None, webhook_id, delivery_id))
    answered = f"answered {delivery['response_status']}" if delivery["response_status"] is not None else "no answer"
    if delivery["succeeded_at"] is not None:
        emit(as_json, delivery, f"ping {delivery['id']} delivered: {answered}")
        return
    if as_json:
        emit(as_json, delivery, "")
    raise click.ClickException(f"ping {delivery['id']} failed: {delivery['error']} ({answered}); it is retried on the schedule")
