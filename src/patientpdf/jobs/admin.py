"""What operators do with the queue: list, count, retry (`patientpdf jobs`)."""

from __future__ import annotations

from typing import Any

from patientpdf.context import Context
from patientpdf.db import jobs as queue
from patientpdf.services.clock import now_utc

LIST_FIELDS = (
    "id", "kind", "subject", "account_id", "status", "attempts", "max_attempts", "run_at", "lease_owner", "lease_until",
    "error", "last_error", "created_at", "started_at", "finished_at",
)  # fmt: skip


def list_jobs(ctx: Context, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [{name: row[name] for name in LIST_FIELDS} for row in queue.list_jobs(conn, status, kind, limit)]


def stats(ctx: Context) -> dict[str, Any]:
    """Jobs per status (all kinds), per kind and status, and how overdue the oldest due job is."""
    now = now_utc()
    totals = {status: 0 for status in queue.STATUSES}
    kinds: dict[str, dict[str, int]] = {}
    oldest_due: float | None = None
    with ctx.db.read() as conn:
        rows = queue.counts(conn)
    for row in rows:
        totals[row["status"]] = totals.get(row["status"], 0) + row["count"]
        kinds.setdefault(row["kind"], {status: 0 for status in queue.STATUSES})[row["status"]] = row["count"]
        if row["status"] == "queued" and row["oldest_run_at"] is not None:
            waited = max(0.0, (now - row["oldest_run_at"]).total_seconds())
            oldest_due = waited if oldest_due is None else max(oldest_due, waited)
    return {**totals, "kinds": kinds, "oldest_queued_seconds": oldest_due}


def retry(ctx: Context, job_id: int) -> dict[str, Any]:
    """Run a job again from its first attempt. LookupError: no such job; ValueError: it runs now."""
    with ctx.db.write() as conn:
        row = queue.get(conn, job_id)
        if row is None:
            raise LookupError(f"no job with id {job_id}")
        if row["status"] == "running" and row["lease_until"] is not None and row["lease_until"] > now_utc():
            raise ValueError(f"job {job_id} is running (lease held by {row['lease_owner']} until {row['lease_until']:%Y-%m-%dT%H:%M:%SZ})")
        requeued = queue.requeue(conn, job_id, now_utc())
    assert requeued is not None
    return {name: requeued[name] for name in LIST_FIELDS}
