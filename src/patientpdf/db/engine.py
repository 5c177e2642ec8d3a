"""One database layer for SQLite (embedded default) and PostgreSQL.

`Database.read()` and `Database.write()` are the only places a transaction begins and commits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from patientpdf.db import driver_sql
from patientpdf.db.group_commit import GroupCommit
from patientpdf.errors import Unavailable

SQLITE_BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    # Let SQLAlchemy, not the driver, decide where transactions begin (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL in WAL mode: a transaction is on disk when COMMIT returns, so a 201 is never lost.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # On the driver (db.driver_sql): every request's transaction starts here.
    if not conn.get_execution_options().get("writes"):
        driver_sql.execute(conn, "BEGIN DEFERRED")
        return
    # Writers take the lock up front, so two workers never deadlock upgrading a read lock.
    # SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries, which turns a
    # sub-millisecond wait for another worker's commit into tens of milliseconds; retry here
    # in short, jittered steps instead, up to the same overall timeout.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.0002
    driver_sql.execute(conn, "PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                driver_sql.execute(conn, "BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 1.5, 0.005)
    finally:
        driver_sql.execute(conn, f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


class _WriterQueue:
    """Writers of one SQLite file wait their turn in the kernel, not by polling SQLite.

    A thread lock queues this process's writers; an exclusive flock on a file next to the
    database queues the processes. A waiting writer sleeps in the kernel and wakes when the
    writer before it finishes, instead of retrying `BEGIN IMMEDIATE` in a sleep loop.
    Processes that do not take the flock (an old build, the sqlite3 shell) are still kept out
    by SQLite's own lock (see _sqlite_begin).
    """

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._path = f"{database}.writer-lock" if database and database != ":memory:" else None
        self._fd: int | None = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._threads:
            if self._path is None:
                yield
                return
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class Database:
    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        if self.url.drivername in ("postgresql", "postgres"):
            self.url = self.url.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.group_commit = GroupCommit(self.write)
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self._sqlite_writers = _WriterQueue(self.url.database)
            self.engine = create_engine(self.url, pool_size=8, max_overflow=32)
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            # pre-ping: a connection that died while the database was away is replaced, not used.
            self.engine = create_engine(
                self.url,
                pool_size=5,
                max_overflow=10,
                pool_pre_ping=True,
                pool_recycle=1800,
                connect_args={"connect_timeout": 5},
            )

    @contextmanager
    def _transaction(self, writes: bool) -> Iterator[Connection]:
        # SQLite has one writer at a time: writers queue for their turn (see _WriterQueue).
        serialize = self._sqlite_writers.turn() if writes and self.is_sqlite else contextlib.nullcontext()
        try:
            with serialize, self.engine.connect() as conn:
                conn = conn.execution_options(writes=writes)
                with conn.begin():
                    yield conn
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, OperationalError) or exc.connection_invalidated:
                raise Unavailable(
                    "The database is unavailable. Nothing was changed; retry in a few seconds.",
                    code="database_unavailable",
                ) from exc
            raise

    def read(self) -> AbstractContextManager[Connection]:
        return self._transaction(writes=False)

    def write(self) -> AbstractContextManager[Connection]:
        return self._transaction(writes=True)

    def ping(self) -> None:
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.group_commit.close()
        self.engine.dispose()
        if self.is_sqlite:
            self._sqlite_writers.close()
