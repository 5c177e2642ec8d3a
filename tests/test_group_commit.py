"""Group commit on SQLite and PostgreSQL: writes queued together commit together, a failing
piece is rolled back alone, and a failed commit fails every piece of its batch."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, insert, select
from sqlalchemy.exc import OperationalError

from patientpdf.db.engine import Database
from patientpdf.db.migrate import upgrade
from patientpdf.db.schema import accounts
from patientpdf.errors import Unavailable

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'g.db'}" if request.param == "sqlite" else str(request.getfixturevalue("postgres").new_schema())
    upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


def add_account(name: str) -> Any:
    def work(conn: Connection) -> str:
        conn.execute(insert(accounts).values(name=name, created_at=NOW))
        if name.startswith("bad"):
            raise ValueError(f"{name} refused")
        return name

    return work


def account_names(db: Database) -> set[str]:
    with db.read() as conn:
        return set(conn.execute(select(accounts.c.name)).scalars())


def test_writes_that_queue_together_share_one_commit_and_fail_alone(database: Database) -> None:
    commits: list[int] = []
    event.listen(database.engine, "commit", lambda _conn: commits.append(1))
    started, release = threading.Event(), threading.Event()

    def blocker(conn: Connection) -> str:
        started.set()
        release.wait(10)  # holds the writer while the others queue behind it
        return add_account("first")(conn)

    names = [f"clinic-{n}" for n in range(12)] + ["bad-1", "bad-2"]
    first = database.group_commit.submit(blocker)
    assert started.wait(10)
    others = {name: database.group_commit.submit(add_account(name)) for name in names}  # queued at once
    release.set()
    assert first.result(10) == "first"
    for name, future in others.items():
        if name.startswith("bad"):
            with pytest.raises(ValueError, match=f"{name} refused"):
                future.result(10)
        else:
            assert future.result(10) == name

    assert len(commits) == 2  # the blocker's batch, then the 14 queued pieces in one transaction
    assert account_names(database) == {"first", *(n for n in names if not n.startswith("bad"))}


def test_a_failed_commit_fails_every_piece_and_stores_nothing(database: Database) -> None:
    database.group_commit.submit(add_account("before")).result(10)
    fail = {"on": True}

    def failing_commit(conn: Any) -> None:
        if fail["on"]:
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(database.engine, "commit", failing_commit)
    futures = [database.group_commit.submit(add_account(f"lost-{n}")) for n in range(6)]
    for future in futures:
        with pytest.raises(Unavailable):
            future.result(10)
    fail["on"] = False
    assert account_names(database) == {"before"}
    database.group_commit.submit(add_account("after")).result(10)  # the writer lives on
    assert account_names(database) == {"before", "after"}


@pytest.mark.parametrize(
    ("cancelled_while", "kept"), [("queued", False), ("committing", True), ("committing_a_failing_batch", False)]
)
def test_a_cancelled_upload_keeps_its_bytes_exactly_when_its_row_commits(make_server, cancelled_while: str, kept: bool) -> None:  # type: ignore[no-untyped-def]
    """Shutdown can cancel a request while its row waits or commits. Queued, the write is dropped;
    committing, it goes on. Either way the bytes stay exactly when the row commits."""
    import asyncio

    from conftest import multipart_body, sample

    from patientpdf.intake.multipart import IntakeLimits, receive_upload
    from patientpdf.services import audit, pdfs

    server = make_server()
    server.require("sqlite+local", "the service layer with a local blob store")
    tenant = server.tenant()
    ctx = server.context
    body, content_type = multipart_body(sample("valid.pdf"), "a.pdf")
    boundary = content_type.split("boundary=")[1].encode()
    gates = {name: (threading.Event(), threading.Event()) for name in ("before", "beside")}

    def holding(name: str, fails: bool = False) -> Any:
        def work(conn: Connection) -> None:
            started, release = gates[name]
            started.set()
            release.wait(10)
            if fails:
                raise OperationalError("COMMIT", {}, Exception("disk I/O error"))  # fails its whole batch

        return work

    async def one_chunk():  # type: ignore[no-untyped-def]
        yield body

    async def cancelled_upload() -> str:
        upload = await receive_upload(one_chunk(), boundary, IntakeLimits(10**6), ctx.settings.spool_dir)
        prepared = pdfs.prepare_pdf(ctx, tenant.account_id, tenant.patient_id, upload, "a.pdf")
        event = audit.AuditEvent(action="pdf.upload", outcome="201", account_id=tenant.account_id)
        committer = ctx.db.group_commit
        committer.submit(holding("before"))  # its own batch: the writer is busy with it
        assert gates["before"][0].wait(10)
        # queued behind it: this one, then the upload, which will share its batch
        beside = committer.submit(holding("beside", fails=cancelled_while == "committing_a_failing_batch"))
        task = asyncio.ensure_future(pdfs.record_pdf(ctx, prepared, event))
        while committer._queue.qsize() < 2:  # noqa: SLF001
            await asyncio.sleep(0.01)
        if cancelled_while == "queued":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task  # by now the cancellation has reached the queued work
        gates["before"][1].set()
        assert await asyncio.to_thread(gates["beside"][0].wait, 10)  # the shared batch is committing
        if cancelled_while != "queued":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        gates["beside"][1].set()
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(beside)
        return prepared.values["storage_key"]

    key = asyncio.run(cancelled_upload())
    deadline = time.monotonic() + 5
    while (ctx.storage.stat(key) is not None) != kept and time.monotonic() < deadline:
        time.sleep(0.02)
    listed = server.client.get(f"/patients/{tenant.patient_id}/pdfs/", headers=tenant.headers).json()
    assert (ctx.storage.stat(key) is not None) is kept
    assert len(listed) == (1 if kept else 0)
