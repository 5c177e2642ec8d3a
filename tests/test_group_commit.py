"""Group commit on SQLite and PostgreSQL: writes queued together commit together, a failing
piece is rolled back alone, and a failed commit fails every piece of its batch."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, insert, select

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
    with ThreadPoolExecutor(len(names) + 1) as pool:
        first = pool.submit(database.group_commit.run, blocker)
        assert started.wait(10)
        others = {name: pool.submit(database.group_commit.run, add_account(name)) for name in names}
        while database.group_commit._queue.qsize() < len(names):  # noqa: SLF001
            threading.Event().wait(0.01)
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
    database.group_commit.run(add_account("before"))
    fail = {"on": True}

    def failing_commit(conn: Any) -> None:
        if fail["on"]:
            from sqlalchemy.exc import OperationalError

            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(database.engine, "commit", failing_commit)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(database.group_commit.run, add_account(f"lost-{n}")) for n in range(6)]
        for future in futures:
            with pytest.raises(Unavailable):
                future.result(10)
    fail["on"] = False
    assert account_names(database) == {"before"}
    database.group_commit.run(add_account("after"))  # the writer lives on
    assert account_names(database) == {"before", "after"}
