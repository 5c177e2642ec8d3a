"""One worker: claim a due job with a lease, keep the lease while working, finish under it.

    claim (UPDATE … RETURNING; SKIP LOCKED on PostgreSQL)      -> status running, attempts + 1
    run the handler outside any transaction, renewing the lease on a thread
    one write transaction: mark done only if the lease is still ours and live, then the
    handler's result write; if the lease was lost, nothing is written
    on failure: back to queued at now + backoff (exponential, jittered), or failed for good
    after max_attempts (or at once for a permanent failure), keeping the error

A worker killed mid-job leaves its lease to expire; the next claim takes the job and counts
the attempt. A worker paused past its lease (SIGSTOP, a long GC, a VM migration) finds on
resuming that its renewal and its finish change nothing, because another worker's claim has
replaced `lease_owner`.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from patientpdf.context import Context
from patientpdf.db import jobs as queue
from patientpdf.errors import ApiError
from patientpdf.services.clock import now_utc

log = logging.getLogger(__name__)

ResultWrite = Callable[[Connection], None]
MAX_ERROR_CHARS = 1000


class PermanentFailure(Exception):
    """A handler's verdict that trying again cannot help: the job fails at once."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class RetryLater(Exception):
    """A handler's verdict that this attempt failed in an expected way (a receiver answered
    500): retried like any failure, with its own stable code and no traceback in the log."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Handler:
    # The work, outside any transaction; returns the write of its result.
    run: Callable[[Context, queue.Claimed], ResultWrite]
    # Runs in the transaction that fails the job for good (e.g. drop an older result).
    on_failed: Callable[[Connection, queue.Claimed], None] | None = None
    # Seconds before the next attempt after attempt number `attempts` failed; default: backoff().
    retry_delay: Callable[[Context, int], float] | None = None


class LeaseLost(Exception):
    pass


def worker_name() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


def backoff(attempts: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next attempt: base·2^(attempts−1), capped, then jittered into its
    upper half so that jobs that failed together do not all come back together."""
    delay = min(cap, base * 2.0 ** max(0, attempts - 1))
    return delay / 2 + rng() * delay / 2


class Worker:
    def __init__(
        self,
        ctx: Context,
        handlers: Mapping[str, Handler],
        name: str | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.handlers = dict(handlers)
        self.name = name or worker_name()
        self.clock = clock
        self.lease = timedelta(seconds=settings.job_lease_seconds)
        self.poll_seconds = settings.worker_poll_seconds
        self.retry_base = settings.job_retry_base_seconds
        self.retry_max = settings.job_retry_max_seconds

    def run(self, stop: threading.Event) -> None:
        """Work until `stop` is set; the job in hand is finished first."""
        log.info("worker %s started (kinds: %s)", self.name, ", ".join(sorted(self.handlers)))
        while not stop.is_set():
            try:
                worked = self.run_one()
            except ApiError as exc:  # the database is away: wait and try again
                log.warning("worker %s: %s", self.name, exc.code)
                worked = False
            except Exception:  # a job in hand keeps its lease until it expires, then is retried
                log.exception("worker %s: unexpected error", self.name)
                worked = False
            if not worked:
                stop.wait(self.poll_seconds)
        log.info("worker %s stopped", self.name)

    def run_one(self) -> bool:
        """Claim one due job and run it; False if there was none."""
        with self.ctx.db.read() as conn:
            if not queue.has_due_job(conn, self.clock()):
                return False
        job = self.claim()
        if job is None:
            return False
        self.execute(job)
        return True

    def claim(self) -> queue.Claimed | None:
        owner = f"{self.name}/{secrets.token_hex(4)}"  # unique per claim: the lease's fencing token
        with self.ctx.db.write() as conn:
            while True:
                now = self.clock()
                row = queue.claim(conn, owner, now, self.lease, list(self.handlers))
                if row is None:
                    return None
                job = queue.Claimed(
                    id=row["id"], kind=row["kind"], subject=row["subject"], account_id=row["account_id"], payload=row["payload"],
                    attempts=row["attempts"], max_attempts=row["max_attempts"], lease_owner=owner,
                )  # fmt: skip
                if job.attempts <= job.max_attempts:
                    return job
                # Its lease expired once too often: the job kills or loses its workers. Give up on it.
                message = f"attempt {job.max_attempts} of {job.max_attempts} did not finish: its worker stopped (killed, out of memory) or lost its lease"
                queue.fail(conn, job.id, None, now, "worker_lost", message)
                self._on_failed(conn, job)
                log.error("job %d (%s) failed: worker_lost", job.id, job.kind)

    def execute(self, job: queue.Claimed) -> None:
        handler = self.handlers[job.kind]
        started = time.monotonic()
        log.info("job %d (%s) attempt %d of %d by %s", job.id, job.kind, job.attempts, job.max_attempts, job.lease_owner)
        renewer = _LeaseRenewer(self, job)
        renewer.start()
        try:
            write = handler.run(self.ctx, job)
        except PermanentFailure as exc:
            renewer.stop()
            self._give_up(job, exc.code, exc.detail)
            return
        except Exception as exc:
            renewer.stop()
            self._failed_attempt(job, exc)
            return
        renewer.stop()
        try:
            self._finish(job, write)
        except LeaseLost:
            log.warning("job %d (%s): the lease %s was lost before the finish; its result was not written", job.id, job.kind, job.lease_owner)
            return
        except Exception as exc:
            self._failed_attempt(job, exc)
            return
        log.info("job %d (%s) done in %.2f s", job.id, job.kind, time.monotonic() - started)

    def _finish(self, job: queue.Claimed, write: ResultWrite) -> None:
        with self.ctx.db.write() as conn:
            if not queue.finish(conn, job.id, job.lease_owner, self.clock()):
                raise LeaseLost()
            write(conn)

    def _failed_attempt(self, job: queue.Claimed, exc: Exception) -> None:
        code = exc.code if isinstance(exc, (ApiError, RetryLater)) else "internal_error"
        message = (exc.detail if isinstance(exc, RetryLater) else f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
        if job.attempts >= job.max_attempts:
            self._give_up(job, code, message)
            return
        retry_delay = self.handlers[job.kind].retry_delay
        delay = retry_delay(self.ctx, job.attempts) if retry_delay else backoff(job.attempts, self.retry_base, self.retry_max)
        trace = None if isinstance(exc, RetryLater) else exc
        log.warning("job %d (%s) attempt %d failed (%s); retrying in %.1f s", job.id, job.kind, job.attempts, code, delay, exc_info=trace)
        now = self.clock()
        with self.ctx.db.write() as conn:
            if not queue.retry_later(conn, job.id, job.lease_owner, now, now + timedelta(seconds=delay), code, message):
                log.warning("job %d (%s): the lease was lost before the retry was recorded", job.id, job.kind)

    def _give_up(self, job: queue.Claimed, code: str, message: str) -> None:
        with self.ctx.db.write() as conn:
            if not queue.fail(conn, job.id, job.lease_owner, self.clock(), code, message[:MAX_ERROR_CHARS]):
                log.warning("job %d (%s): the lease was lost before the failure was recorded", job.id, job.kind)
                return
            self._on_failed(conn, job)
        log.error("job %d (%s) failed: %s", job.id, job.kind, code)

    def _on_failed(self, conn: Connection, job: queue.Claimed) -> None:
        handler = self.handlers.get(job.kind)
        if handler is not None and handler.on_failed is not None:
            handler.on_failed(conn, job)


class _LeaseRenewer:
    """Renews the job's lease every third of its length while the handler works."""

    def __init__(self, worker: Worker, job: queue.Claimed) -> None:
        self._worker, self._job = worker, job
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{job.id}", daemon=True)
        self.lost = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        worker, job = self._worker, self._job
        interval = worker.lease.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                with worker.ctx.db.write() as conn:
                    held = queue.renew(conn, job.id, job.lease_owner, worker.clock(), worker.lease)
            except ApiError as exc:
                log.warning("job %d: could not renew its lease (%s); trying again", job.id, exc.code)
                continue
            if not held:
                log.warning("job %d (%s): lease %s lost (expired, taken over or requeued)", job.id, job.kind, job.lease_owner)
                self.lost.set()
                return
