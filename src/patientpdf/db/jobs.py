"""The job queue's queries: enqueue, claim with a lease, renew, finish only while holding it.

Every state change of a running job names the lease it expects (`lease_owner`, unique per
claim) and that the lease is still live, so a worker that lost its lease (it was paused,
its lease expired and another worker claimed the job, or an operator requeued it) changes
nothing. Times come from the caller (`now`), so tests drive the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, func, or_, select, update
from sqlalchemy import delete as sql_delete

from patientpdf.db import driver_sql
from patientpdf.db.schema import jobs

PROCESS_PDF = "process_pdf"
DELIVER_WEBHOOK = "deliver_webhook"
STATUSES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class Claimed:
    """A job as its worker holds it."""

    id: int
    kind: str
    subject: str | None
    account_id: int | None
    payload: dict[str, Any]
    attempts: int  # including this claim
    max_attempts: int
    lease_owner: str


def enqueue(
    conn: Connection,
    kind: str,
    subject: str | None,
    account_id: int | None,
    now: datetime,
    max_attempts: int,
    payload: dict[str, Any] | None = None,
) -> None:
    """Add a job, due now, inside the caller's transaction (with the row it is about). Every
    upload adds one: on the driver (db.driver_sql)."""
    at = driver_sql.timestamp(conn, now)
    driver_sql.execute(
        conn, _ENQUEUE, (kind, subject, account_id, driver_sql.json_value(conn, payload or {}), max_attempts, at, at)
    )


_ENQUEUE = (
    "INSERT INTO jobs (kind, subject, account_id, payload, status, attempts, max_attempts, run_at, created_at) "
    "VALUES (?, ?, ?, ?, 'queued', 0, ?, ?, ?)"
)


def _due(table: Any, now: datetime) -> Any:
    c = table.c
    return or_(and_(c.status == "queued", c.run_at <= now), and_(c.status == "running", c.lease_until <= now))


def has_due_job(conn: Connection, now: datetime) -> bool:
    """A read, so that idle workers poll without taking SQLite's write lock."""
    return conn.execute(select(jobs.c.id).where(_due(jobs, now)).limit(1)).first() is not None


def claim(conn: Connection, owner: str, now: datetime, lease: timedelta, kinds: Sequence[str]) -> RowMapping | None:
    """Take the most overdue job of these kinds with a lease, in one UPDATE … RETURNING.

    PostgreSQL: the candidate is locked with SKIP LOCKED, so concurrent workers take different
    jobs and never wait for each other. SQLite: writers take turns (BEGIN IMMEDIATE), so the
    candidate cannot change between the SELECT and the UPDATE. The row comes back with
    `attempts` already counting this claim; the caller gives up jobs that ran out of attempts.
    """
    pick = jobs.alias("pick")  # not correlated with the UPDATE's own table
    candidate = select(pick.c.id).where(_due(pick, now), pick.c.kind.in_(kinds)).order_by(pick.c.run_at, pick.c.id).limit(1)
    if conn.dialect.name == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    statement = (
        update(jobs)
        .where(jobs.c.id == candidate.scalar_subquery())
        .values(
            status="running", attempts=jobs.c.attempts + 1, lease_owner=owner, lease_until=now + lease, started_at=now, finished_at=None
        )
        .returning(*jobs.c)
    )
    return conn.execute(statement).mappings().first()


def _held(job_id: int, owner: str, now: datetime) -> Any:
    c = jobs.c
    return and_(c.id == job_id, c.status == "running", c.lease_owner == owner, c.lease_until > now)


def renew(conn: Connection, job_id: int, owner: str, now: datetime, lease: timedelta) -> bool:
    """Extend a live lease; False if it is no longer ours (expired, taken over, requeued)."""
    result = conn.execute(update(jobs).where(_held(job_id, owner, now)).values(lease_until=now + lease))
    return result.rowcount == 1


def finish(conn: Connection, job_id: int, owner: str, now: datetime) -> bool:
    """Mark the job done if we still hold its lease; the caller writes the result in the same
    transaction only when this returns True."""
    result = conn.execute(
        update(jobs).where(_held(job_id, owner, now)).values(status="done", lease_until=None, finished_at=now, error=None, last_error=None)
    )
    return result.rowcount == 1


def retry_later(conn: Connection, job_id: int, owner: str, now: datetime, run_at: datetime, code: str, message: str) -> bool:
    """Give the job back for another attempt at `run_at` (backoff), keeping what went wrong."""
    result = conn.execute(
        update(jobs)
        .where(_held(job_id, owner, now))
        .values(status="queued", run_at=run_at, lease_owner=None, lease_until=None, error=code, last_error=message)
    )
    return result.rowcount == 1


def fail(conn: Connection, job_id: int, owner: str | None, now: datetime, code: str, message: str) -> bool:
    """Fail the job for good, keeping its last error. `owner` None: a job given up at claim
    time (its lease expired once too often), which the claiming transaction holds."""
    where = _held(job_id, owner, now) if owner is not None else jobs.c.id == job_id
    result = conn.execute(
        update(jobs).where(where).values(status="failed", lease_until=None, finished_at=now, error=code, last_error=message)
    )
    return result.rowcount == 1


def requeue(conn: Connection, job_id: int, now: datetime) -> RowMapping | None:
    """Run the job again from scratch (operators' retry, reprocessing). A worker still running
    it loses its lease, so its result is not written."""
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            status="queued", attempts=0, run_at=now, lease_owner=None, lease_until=None, error=None, last_error=None,
            started_at=None, finished_at=None,
        )
    )  # fmt: skip
    return get(conn, job_id)


def get(conn: Connection, job_id: int) -> RowMapping | None:
    """Unscoped by design: jobs are the operators' (CLI), and workers' view of the queue."""
    return conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()


def for_subject(conn: Connection, kind: str, subject: str) -> RowMapping | None:
    return conn.execute(select(jobs).where(jobs.c.kind == kind, jobs.c.subject == subject)).mappings().first()


def for_subjects(conn: Connection, kind: str, subjects: Sequence[str]) -> dict[str, RowMapping]:
    if not subjects:
        return {}
    rows = conn.execute(select(jobs).where(jobs.c.kind == kind, jobs.c.subject.in_(subjects))).mappings().all()
    return {row["subject"]: row for row in rows}


def delete_for_subject(conn: Connection, account_id: int, subject: str) -> None:
    """Every job about this subject (its PDF is being deleted); a worker running one loses its lease."""
    conn.execute(sql_delete(jobs).where(jobs.c.subject == subject, jobs.c.account_id == account_id))


def list_jobs(conn: Connection, status: str | None, kind: str | None, limit: int) -> Sequence[RowMapping]:
    """Unscoped by design: operators see every account's jobs (newest first)."""
    query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(jobs.c.status == status)
    if kind is not None:
        query = query.where(jobs.c.kind == kind)
    return conn.execute(query).mappings().all()


def counts(conn: Connection) -> Sequence[RowMapping]:
    """(kind, status, count, oldest run_at) over every job: the operators' stats."""
    query = select(jobs.c.kind, jobs.c.status, func.count().label("count"), func.min(jobs.c.run_at).label("oldest_run_at"))
    return conn.execute(query.group_by(jobs.c.kind, jobs.c.status).order_by(jobs.c.kind, jobs.c.status)).mappings().all()
