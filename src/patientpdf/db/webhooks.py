"""The webhooks' queries: endpoints, events, deliveries, attempts.

Queries on an account's data take the account id and filter by it; the worker's and the
operators' unscoped reads say so in their names.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, delete, insert, select, update

from patientpdf.db import driver_sql
from patientpdf.db.jobs import DELIVER_WEBHOOK
from patientpdf.db.schema import jobs, webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events

# endpoints --------------------------------------------------------------------------------


def insert_endpoint(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(insert(webhook_endpoints).values(**values)).inserted_primary_key[0])  # type: ignore[index]


def get_endpoint(conn: Connection, account_id: int, endpoint_id: int) -> RowMapping | None:
    c = webhook_endpoints.c
    return conn.execute(select(webhook_endpoints).where(c.id == endpoint_id, c.account_id == account_id)).mappings().first()


def get_endpoint_for_operator(conn: Connection, endpoint_id: int) -> RowMapping | None:
    """Unscoped: the operator's CLI names endpoints of any account."""
    return conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)).mappings().first()


def list_endpoints(conn: Connection, account_id: int) -> Sequence[RowMapping]:
    c = webhook_endpoints.c
    return conn.execute(select(webhook_endpoints).where(c.account_id == account_id).order_by(c.id)).mappings().all()


def list_endpoints_for_operator(conn: Connection) -> Sequence[RowMapping]:
    """Unscoped: the operator's CLI lists every account's endpoints."""
    return conn.execute(select(webhook_endpoints).order_by(webhook_endpoints.c.id)).mappings().all()


def count_endpoints(conn: Connection, account_id: int) -> int:
    return len(conn.execute(select(webhook_endpoints.c.id).where(webhook_endpoints.c.account_id == account_id)).all())


def enabled_endpoints(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    """The fan-out's read (id and events), inside the transaction of the change an event
    reports. Every upload asks: on the driver (db.driver_sql)."""
    found = driver_sql.execute(conn, _ENABLED_ENDPOINTS, (account_id, True)).fetchall()
    return [{"id": endpoint_id, "events": driver_sql.read_json(events)} for endpoint_id, events in found]


_ENABLED_ENDPOINTS = "SELECT id, events FROM webhook_endpoints WHERE account_id = ? AND enabled = ? ORDER BY id"


def update_endpoint(conn: Connection, account_id: int, endpoint_id: int, values: dict[str, Any]) -> RowMapping | None:
    c = webhook_endpoints.c
    conn.execute(update(webhook_endpoints).where(c.id == endpoint_id, c.account_id == account_id).values(**values))
    return get_endpoint(conn, account_id, endpoint_id)


def delete_endpoint(conn: Connection, account_id: int, endpoint_id: int) -> None:
    """The endpoint with its deliveries, their attempts and their jobs (a worker sending one
    now loses its lease, so nothing more is written about it)."""
    deliveries = select(webhook_deliveries.c.id).where(
        webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.account_id == account_id
    )
    conn.execute(delete(jobs).where(jobs.c.kind == DELIVER_WEBHOOK, jobs.c.subject.in_(deliveries)))
    conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(deliveries)))
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.id.in_(deliveries)))
    c = webhook_endpoints.c
    conn.execute(delete(webhook_endpoints).where(c.id == endpoint_id, c.account_id == account_id))


def note_failure(conn: Connection, endpoint_id: int, now: datetime) -> RowMapping:
    """Start the endpoint's failing streak if this is its first failure since a success; the endpoint after."""
    c = webhook_endpoints.c
    conn.execute(update(webhook_endpoints).where(c.id == endpoint_id, c.failing_since.is_(None)).values(failing_since=now))
    return conn.execute(select(webhook_endpoints).where(c.id == endpoint_id)).mappings().one()


def note_success(conn: Connection, endpoint_id: int) -> None:
    c = webhook_endpoints.c
    conn.execute(update(webhook_endpoints).where(c.id == endpoint_id, c.failing_since.is_not(None)).values(failing_since=None))


def disable_endpoint(conn: Connection, endpoint_id: int, now: datetime, reason: str) -> None:
    """Disable an enabled endpoint, saying why (the worker's write: the delivery named the endpoint)."""
    c = webhook_endpoints.c
    conn.execute(
        update(webhook_endpoints)
        .where(c.id == endpoint_id, c.enabled.is_(True))
        .values(enabled=False, disabled_at=now, disabled_reason=reason, updated_at=now)
    )


# events and deliveries --------------------------------------------------------------------


def insert_event(conn: Connection, event_id: str, account_id: int, event_type: str, body: str, now: datetime) -> None:
    conn.execute(insert(webhook_events).values(id=event_id, account_id=account_id, type=event_type, body=body, created_at=now))


def insert_delivery(conn: Connection, delivery_id: str, account_id: int, endpoint_id: int, event_id: str, now: datetime) -> None:
    conn.execute(
        insert(webhook_deliveries).values(
            id=delivery_id, account_id=account_id, endpoint_id=endpoint_id, event_id=event_id, attempts=0, created_at=now
        )
    )


def delivery_for_worker(conn: Connection, delivery_id: str) -> RowMapping | None:
    """Unscoped: the worker's read of what to send, with its endpoint and event."""
    d, e, v = webhook_deliveries.c, webhook_endpoints.c, webhook_events.c
    query = (
        select(
            d.id, d.account_id, d.endpoint_id, d.event_id, e.url, e.secret, e.previous_secret, e.previous_secret_expires_at,
            e.enabled, v.type.label("event_type"), v.body,
        )  # fmt: skip
        .join(webhook_endpoints, e.id == d.endpoint_id)
        .join(webhook_events, v.id == d.event_id)
        .where(d.id == delivery_id)
    )
    return conn.execute(query).mappings().first()


def record_attempt(conn: Connection, delivery_id: str, values: dict[str, Any]) -> int | None:
    """Log one attempt and keep its summary on the delivery; the attempt's number (counting
    every attempt the delivery ever had, replays included), or None if the delivery is gone."""
    d = webhook_deliveries.c
    summary: dict[str, Any] = {"attempts": d.attempts + 1, "last_attempt_at": values["at"]}
    summary |= {"response_status": values["response_status"], "error": values["error"]}
    if values["error"] is None:
        summary["succeeded_at"] = values["at"]
    if conn.execute(update(webhook_deliveries).where(d.id == delivery_id).values(**summary)).rowcount != 1:
        return None
    row = conn.execute(select(d.attempts, d.account_id).where(d.id == delivery_id)).one()
    conn.execute(insert(webhook_attempts).values(delivery_id=delivery_id, account_id=row.account_id, attempt=row.attempts, **values))
    return int(row.attempts)


def _delivery_columns() -> list[Any]:
    d, v, j = webhook_deliveries.c, webhook_events.c, jobs.c
    return [
        d.id, d.endpoint_id, d.event_id, v.type.label("event_type"), d.attempts, d.last_attempt_at, d.response_status, d.error,
        d.succeeded_at, d.created_at, j.status.label("job_status"), j.run_at.label("job_run_at"), j.error.label("job_error"),
    ]  # fmt: skip


def _deliveries_query() -> Any:
    d, v, j = webhook_deliveries.c, webhook_events.c, jobs.c
    return (
        select(*_delivery_columns())
        .join(webhook_events, v.id == d.event_id)
        .outerjoin(jobs, and_(j.kind == DELIVER_WEBHOOK, j.subject == d.id))
    )


def list_deliveries(conn: Connection, account_id: int, endpoint_id: int, limit: int, status: str | None) -> Sequence[RowMapping]:
    """Newest first; `status`: the job's (queued or running for pending, done, failed)."""
    d, j = webhook_deliveries.c, jobs.c
    query = _deliveries_query().where(d.account_id == account_id, d.endpoint_id == endpoint_id)
    if status == "pending":
        query = query.where(j.status.in_(("queued", "running")))
    elif status is not None:
        query = query.where(j.status == status)
    return conn.execute(query.order_by(d.created_at.desc(), d.id.desc()).limit(limit)).mappings().all()


def get_delivery(conn: Connection, account_id: int, endpoint_id: int, delivery_id: str) -> RowMapping | None:
    d = webhook_deliveries.c
    query = _deliveries_query().where(d.account_id == account_id, d.endpoint_id == endpoint_id, d.id == delivery_id)
    return conn.execute(query).mappings().first()


def attempts_of(conn: Connection, account_id: int, delivery_id: str) -> Sequence[RowMapping]:
    a = webhook_attempts.c
    query = select(webhook_attempts).where(a.account_id == account_id, a.delivery_id == delivery_id).order_by(a.id)
    return conn.execute(query).mappings().all()
