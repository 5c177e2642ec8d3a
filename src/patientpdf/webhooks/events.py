"""Events, written in the transaction of the change they report, and fanned out to deliveries.

`emit` runs inside the caller's write transaction (the upload's group commit, the job's
lease-checked finish, the delete, the key's revocation): the event, one delivery per enabled
endpoint that wants its type, and one `deliver_webhook` job per delivery commit or roll back
with the change itself. No endpoint wants it: nothing is written.

Payloads are thin, as Standard Webhooks recommends: ids, the SHA-256, statuses and times,
never a file name or a patient's name (the receiver fetches what it needs with its key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from patientpdf.db import jobs as job_queue
from patientpdf.db import webhooks as db
from patientpdf.security.ids import new_id

PDF_UPLOADED = "pdf.uploaded"
PDF_PROCESSED = "pdf.processed"
PDF_PROCESSING_FAILED = "pdf.processing_failed"
PDF_DELETED = "pdf.deleted"
KEY_REVOKED = "key.revoked"
EVENT_TYPES = (PDF_UPLOADED, PDF_PROCESSED, PDF_PROCESSING_FAILED, PDF_DELETED, KEY_REVOKED)
PING = "webhook.ping"  # `patientpdf webhooks test`: to one endpoint, whatever its event types

# Standard Webhooks' schedule: the first attempt at once, then these waits after each failure.
RETRY_SCHEDULE_SECONDS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_SECONDS) + 1


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _time(moment: datetime | None) -> str | None:
    return timestamp(moment) if moment is not None else None


def pdf_data(pdf: Mapping[Any, Any]) -> dict[str, Any]:
    """What every pdf.* event says about its PDF (from its row)."""
    return {
        "pdf_id": pdf["id"],
        "patient_id": pdf["patient_id"],
        "sha256": pdf["sha256"],
        "size": pdf["size"],
        "pages": pdf["page_count"],
        "created_at": _time(pdf["created_at"]),
    }


def processed_data(pdf: Mapping[Any, Any], extraction: Mapping[Any, Any]) -> dict[str, Any]:
    return pdf_data(pdf) | {
        "status": "done",
        "pages_ocr": extraction["pages_ocr"],
        "complete": extraction["complete"],
        "processed_at": _time(extraction["finished_at"]),
    }


def processing_failed_data(pdf: Mapping[Any, Any], error: str | None, finished_at: datetime | None) -> dict[str, Any]:
    return pdf_data(pdf) | {"status": "failed", "error": error, "failed_at": _time(finished_at)}


def deleted_data(pdf: Mapping[Any, Any], deleted_at: datetime) -> dict[str, Any]:
    return pdf_data(pdf) | {"deleted_at": _time(deleted_at)}


def key_revoked_data(key: Mapping[Any, Any]) -> dict[str, Any]:
    return {"key_id": key["id"], "key_prefix": key["prefix"], "revoked_at": _time(key["revoked_at"])}


def body(event_type: str, data: dict[str, Any], now: datetime) -> str:
    return json.dumps({"type": event_type, "timestamp": timestamp(now), "data": data}, separators=(",", ":"))


def emit(conn: Connection, account_id: int, event_type: str, data: dict[str, Any], now: datetime) -> str | None:
    """Record the event for the endpoints that want it, in the caller's transaction; its id, or
    None if no endpoint wants it."""
    wanted = [row["id"] for row in db.enabled_endpoints(conn, account_id) if event_type in row["events"]]
    if not wanted:
        return None
    return _record(conn, account_id, event_type, data, now, wanted)[0]


def emit_to(conn: Connection, account_id: int, endpoint_id: int, event_type: str, data: dict[str, Any], now: datetime) -> str:
    """An event for one endpoint (the ping); the id of its delivery."""
    return _record(conn, account_id, event_type, data, now, [endpoint_id])[1][0]


def _record(
    conn: Connection, account_id: int, event_type: str, data: dict[str, Any], now: datetime, endpoints: list[int]
) -> tuple[str, list[str]]:
    event_id = new_id("evt")
    db.insert_event(conn, event_id, account_id, event_type, body(event_type, data, now), now)
    deliveries = []
    for endpoint_id in endpoints:
        delivery_id = new_id("msg")
        db.insert_delivery(conn, delivery_id, account_id, endpoint_id, event_id, now)
        job_queue.enqueue(conn, job_queue.DELIVER_WEBHOOK, delivery_id, account_id, now, MAX_ATTEMPTS)
        deliveries.append(delivery_id)
    return event_id, deliveries
