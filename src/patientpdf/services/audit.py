"""The audit trail: who did what to which patient's data, when, from where, with what outcome.

Records are append-only (database triggers refuse UPDATE and DELETE) and hash-chained: each
record's `hash` is an HMAC, keyed with a secret derived from the server secret, over its own
fields and the previous record's hash. Editing or deleting a record breaks the chain at that
record, and without the server secret nobody can recompute a consistent chain around an edit.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, or_, select
from sqlalchemy.exc import SQLAlchemyError

from patientpdf.context import Context
from patientpdf.db import driver_sql
from patientpdf.db.schema import audit_events
from patientpdf.errors import Unavailable
from patientpdf.services.clock import now_utc

GENESIS = "0" * 64
# Any constant: PostgreSQL serialises appends on this advisory lock (SQLite's writer lock does it there).
_APPEND_LOCK = 0x70617564
CHAINED_FIELDS = (
    "seq", "at", "action", "outcome", "account_id", "key_prefix", "client", "request_id", "patient_id", "pdf_id", "subject",
)  # fmt: skip
EXPORT_FIELDS = (*CHAINED_FIELDS, "prev_hash", "hash")
# Every upload appends one, in its group commit: plain SQL on the driver (db.driver_sql).
_INSERTED = (*CHAINED_FIELDS, "prev_hash", "hash")
_INSERT = f"INSERT INTO audit_events ({', '.join(_INSERTED)}) VALUES ({', '.join('?' * len(_INSERTED))})"


@dataclass
class AuditEvent:
    action: str  # e.g. pdf.upload, pdf.read, pdf.download, pdf.link_download, pdf.delete, key.create
    outcome: str  # the HTTP status and error code, e.g. "201", "401 api_key_invalid"
    account_id: int | None = None
    key_prefix: str | None = None
    client: str | None = None
    request_id: str | None = None
    patient_id: int | None = None
    pdf_id: str | None = None
    subject: str | None = None


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(key: bytes, record: dict[str, Any]) -> str:
    fields = [_timestamp(record["at"]) if name == "at" else record[name] for name in CHAINED_FIELDS]
    payload = record["prev_hash"] + json.dumps(fields, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def append(conn: Connection, key: bytes, event: AuditEvent) -> None:
    """Add one record at the head of the chain, inside the caller's write transaction."""
    if conn.dialect.name == "postgresql":
        driver_sql.execute(conn, "SELECT pg_advisory_xact_lock(?)", (_APPEND_LOCK,))
    # Plain SQL: this runs inside the write transaction every upload queues for.
    head = driver_sql.execute(conn, "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    record: dict[str, Any] = asdict(event)
    # Microseconds only: what both databases keep, so the hash survives the round trip.
    record.update(seq=(head[0] + 1) if head else 1, at=now_utc(), prev_hash=head[1] if head else GENESIS)
    record["hash"] = record_hash(key, record)
    at = driver_sql.timestamp(conn, record["at"])
    try:
        driver_sql.execute(conn, _INSERT, tuple(record[name] if name != "at" else at for name in _INSERTED))
    except SQLAlchemyError as exc:
        raise Unavailable(
            "The audit trail cannot be written, so nothing is done. Retry in a few seconds.", code="audit_unavailable"
        ) from exc


@dataclass
class ChainProblem:
    seq: int
    problem: str


def verify(conn: Connection, key: bytes) -> tuple[int, list[ChainProblem]]:
    """(records checked, problems): altered records, and breaks where records went missing."""
    problems: list[ChainProblem] = []
    expected_seq, prev_hash, count = 1, GENESIS, 0
    for row in conn.execute(select(audit_events).order_by(audit_events.c.seq)).mappings():
        count += 1
        record = dict(row)
        if record["seq"] != expected_seq:
            problems.append(ChainProblem(expected_seq, f"records {expected_seq} to {record['seq'] - 1} are missing"))
        elif record["prev_hash"] != prev_hash:
            problems.append(ChainProblem(record["seq"], "does not follow the record before it (a record was removed or replaced)"))
        if not hmac.compare_digest(record_hash(key, record), record["hash"]):
            problems.append(ChainProblem(record["seq"], "was altered: its contents do not match its hash"))
        expected_seq, prev_hash = record["seq"] + 1, record["hash"]
    return count, problems


@dataclass(frozen=True)
class AuditFilter:
    """Which records to read; every field narrows the selection, None leaves it open."""

    account_id: int | None = None
    since: datetime | None = None  # at or after
    until: datetime | None = None  # before
    action: str | None = None
    key_prefix: str | None = None  # records made by this API key or console session, or about it
    pdf_id: str | None = None


def _select(selection: AuditFilter) -> Select[Any]:
    columns = audit_events.c
    query = select(audit_events)
    for column, value in (
        (columns.account_id, selection.account_id),
        (columns.action, selection.action),
        (columns.pdf_id, selection.pdf_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if selection.key_prefix is not None:
        query = query.where(or_(columns.key_prefix == selection.key_prefix, columns.subject == selection.key_prefix))
    if selection.since is not None:
        query = query.where(columns.at >= selection.since)
    if selection.until is not None:
        query = query.where(columns.at < selection.until)
    return query


def _exported(row: RowMapping) -> dict[str, Any]:
    return {name: (_timestamp(row[name]) if name == "at" else row[name]) for name in EXPORT_FIELDS}


def selected_rows(conn: Connection, selection: AuditFilter) -> Iterator[dict[str, Any]]:
    """The selected records, oldest first, as the export writes them."""
    for row in conn.execute(_select(selection).order_by(audit_events.c.seq)).mappings():
        yield _exported(row)


def export_rows(conn: Connection, account_id: int | None, since: datetime | None) -> Iterator[dict[str, Any]]:
    return selected_rows(conn, AuditFilter(account_id=account_id, since=since))


def export(ctx: Context, selection: AuditFilter, fmt: str) -> Iterator[str]:
    """The selected records as CSV or JSONL text, streamed from one read transaction."""
    with ctx.db.read() as conn:
        yield from format_rows(selected_rows(conn, selection), fmt)


def newest_rows(ctx: Context, selection: AuditFilter, limit: int, before_seq: int | None = None) -> list[dict[str, Any]]:
    """One page of the selected records, newest first, older than `before_seq` if given."""
    query = _select(selection).order_by(audit_events.c.seq.desc()).limit(limit)
    if before_seq is not None:
        query = query.where(audit_events.c.seq < before_seq)
    with ctx.db.read() as conn:
        return [_exported(row) | {"at": row["at"]} for row in conn.execute(query).mappings()]


def actions_recorded(ctx: Context, account_id: int) -> list[str]:
    """The actions that appear in the account's records, for a filter's choices."""
    query = select(audit_events.c.action).where(audit_events.c.account_id == account_id).distinct()
    with ctx.db.read() as conn:
        return sorted(conn.execute(query).scalars())


def verify_chain(ctx: Context) -> tuple[int, list[ChainProblem]]:
    with ctx.db.read() as conn:
        return verify(conn, ctx.audit_key)


def format_rows(rows: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps(row) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
