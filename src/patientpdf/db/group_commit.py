"""Group commit: concurrent requests' writes share one transaction, one lock turn and one sync.

SQLite has one writer at a time and every commit syncs its log to disk, so a write costs a
turn at the lock and an fsync however small it is. Here one thread per process does the
writes handed to it: it takes everything that queued while the previous batch committed, runs
each piece in its own savepoint (a piece that fails is rolled back alone and its caller gets
the error), and commits them together. No caller hears back before the commit that holds its
write is on disk, so "nothing is lost after 201" holds. If the commit fails, every piece of
the batch fails with it and nothing of it is stored.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from patientpdf.db.driver_sql import Savepoint

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BATCH = 64

_Work = tuple[Callable[[Connection], Any], "Future[Any]"]


class GroupCommit:
    def __init__(self, begin_write: Callable[[], AbstractContextManager[Connection]]) -> None:
        # The database's write transaction, passed in so that this module needs nothing of the engine.
        self._begin_write = begin_write
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def submit(self, work: Callable[[Connection], T]) -> Future[T]:
        """Queue `work` for a write transaction shared with other callers; the future is
        resolved once that transaction has committed (or failed)."""
        future: Future[T] = Future()
        self._start()
        self._queue.put((work, future))
        return future

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _start(self) -> None:
        if self._thread is None:
            with self._starting:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="patientpdf-group-commit", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(more)
            # A caller may have given up on work still queued: it is dropped. From here on the
            # futures cannot be cancelled, so every write that runs is reported.
            batch = [work for work in batch if work[1].set_running_or_notify_cancel()]
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[_Work]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self._begin_write() as conn:
                if len(batch) == 1:
                    outcomes.append((True, batch[0][0](conn)))
                else:
                    for work, _future in batch:
                        try:
                            with Savepoint(conn):
                                outcomes.append((True, work(conn)))
                        except OperationalError:
                            raise  # the database itself failed: the whole batch does
                        except Exception as exc:
                            outcomes.append((False, exc))
        except BaseException as exc:  # the transaction failed as a whole: so did every piece
            if len(batch) > 1:
                log.warning("a group commit of %d writes failed (%s)", len(batch), type(exc).__name__)
            outcomes = [(False, exc)] * len(batch)
        for (_work, future), (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
