"""The upload's statements run on the driver's cursor (db/driver_sql.py) inside SQLAlchemy's
transaction. What they write must read back through Core exactly as Core would have written
it, on both databases: aware UTC datetimes to the microsecond, JSON, booleans; and the
driver's errors must arrive as SQLAlchemy's, which the callers handle."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from conftest import LiveServer, Tenant
from patientpdf.db import driver_sql
from patientpdf.db import repositories as repo
from patientpdf.db.jobs import enqueue
from patientpdf.db.schema import jobs
from patientpdf.security.ids import new_pdf_id


def _values(tenant: Tenant, at: datetime) -> dict[str, object]:
    pdf_id = new_pdf_id()
    return {
        "id": pdf_id, "account_id": tenant.account_id, "patient_id": tenant.patient_id, "filename": "ä 100%.pdf",
        "storage_key": f"pdfs/{pdf_id[-2:]}/{pdf_id}.pdf", "size": 123, "sha256": "ab" * 32,
        "content_type": "application/pdf", "page_count": 2, "repaired": True, "active_content": ["javascript"],
        "created_at": at,
    }  # fmt: skip


def test_rows_written_on_the_driver_read_back_through_core(server: LiveServer, tenant: Tenant) -> None:
    at = datetime(2026, 11, 30, 9, 1, 2, 345678, tzinfo=timezone(timedelta(hours=2)))  # not UTC: stored as UTC
    values = _values(tenant, at)
    with server.context.db.write() as conn:
        repo.insert_pdf(conn, values)
        enqueue(conn, "test_kind", values["id"], tenant.account_id, at, 3, {"n": 1})  # type: ignore[arg-type]
    with server.context.db.read() as conn:
        row = repo.get_pdf(conn, tenant.account_id, str(values["id"]))
        job = conn.execute(select(jobs).where(jobs.c.subject == values["id"])).mappings().one()
        duplicate = repo.find_duplicate_pdf(conn, tenant.account_id, tenant.patient_id, "ab" * 32)
    assert row is not None and dict(row) == values | {"created_at": at.astimezone(timezone.utc)}
    assert (job["run_at"], job["created_at"], job["payload"], job["status"]) == (at, at, {"n": 1}, "queued")
    assert duplicate == values["id"]
    # Core's own comparison against a driver-written timestamp: the stored text/values order alike
    with server.context.db.read() as conn:
        due = conn.execute(select(jobs.c.id).where(jobs.c.subject == values["id"], jobs.c.run_at <= at)).all()
        not_yet = conn.execute(select(jobs.c.id).where(jobs.c.subject == values["id"], jobs.c.run_at < at)).all()
    assert (len(due), len(not_yet)) == (1, 0)


def test_the_drivers_errors_arrive_as_sqlalchemys(server: LiveServer, tenant: Tenant) -> None:
    values = _values(tenant, datetime.now(timezone.utc))
    with server.context.db.write() as conn:
        repo.insert_pdf(conn, values)
    with pytest.raises(IntegrityError), server.context.db.write() as conn:
        repo.insert_pdf(conn, values)  # the same id again


def test_a_savepoint_rolls_back_its_piece_alone(server: LiveServer, tenant: Tenant) -> None:
    kept, dropped = (_values(tenant, datetime.now(timezone.utc)) for _ in range(2))
    with server.context.db.write() as conn:
        repo.insert_pdf(conn, kept)
        with pytest.raises(IntegrityError), driver_sql.Savepoint(conn):
            repo.insert_pdf(conn, dropped)
            repo.insert_pdf(conn, dropped)
    with server.context.db.read() as conn:
        assert repo.get_pdf(conn, tenant.account_id, str(kept["id"])) is not None
        assert repo.get_pdf(conn, tenant.account_id, str(dropped["id"])) is None
