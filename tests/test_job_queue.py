"""The job queue's guarantees, on SQLite and PostgreSQL, driven by a clock the test holds.

Handlers here are the test's own jobs (a kind `test_job`), run by the real Worker against the
real queue: what is proven is the worker's lease, finish, retry and give-up logic, by the
state each leaves in the database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select

from patientpdf.context import Context
from patientpdf.db import jobs as queue
from patientpdf.db.migrate import upgrade
from patientpdf.db.schema import accounts, jobs, link_salts
from patientpdf.jobs import Handler, PermanentFailure, Worker, backoff
from patientpdf.settings import Settings

KIND = "test_job"
START = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    url = f"sqlite:///{tmp_path / 'q.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres").new_schema()
    upgrade(url)
    settings = Settings(
        data_dir=tmp_path, database_url=url, secret_key="s" * 40, job_lease_seconds=30, job_max_attempts=3,
        job_retry_base_seconds=10, job_retry_max_seconds=25, worker_poll_seconds=0.01,
    )  # fmt: skip
    context = Context.from_settings(settings)
    yield context
    context.close()


def add_jobs(ctx: Context, count: int, now: datetime = START) -> list[int]:
    with ctx.db.write() as conn:
        for n in range(count):
            queue.enqueue(conn, KIND, f"subject-{n}", None, now, ctx.settings.job_max_attempts, {"n": n})
        return [row.id for row in conn.execute(select(jobs.c.id).where(jobs.c.kind == KIND).order_by(jobs.c.id))]


def job(ctx: Context, job_id: int) -> dict[str, Any]:
    with ctx.db.read() as conn:
        row = queue.get(conn, job_id)
    assert row is not None
    return dict(row)


def mark(note: str) -> Any:
    """A result write the test can see: one row in link_salts per write (a table with no rules)."""

    def write(conn: Connection) -> None:
        conn.execute(insert(link_salts).values(salt=note, created_at=START))

    return write


def written(ctx: Context) -> list[str]:
    with ctx.db.read() as conn:
        return [row.salt for row in conn.execute(select(link_salts.c.salt).order_by(link_salts.c.id))]


def test_a_job_is_done_once_and_its_result_written_in_the_finish(ctx: Context) -> None:
    clock = Clock()
    [job_id] = add_jobs(ctx, 1)
    worker = Worker(ctx, {KIND: Handler(run=lambda _ctx, claimed: mark(f"result of {claimed.subject}"))}, "w1", clock)
    assert worker.run_one() is True
    assert worker.run_one() is False  # nothing else is due
    state = job(ctx, job_id)
    assert (state["status"], state["attempts"], state["error"], state["lease_until"]) == ("done", 1, None, None)
    assert state["lease_owner"].startswith("w1/") and state["finished_at"] == START
    assert written(ctx) == ["result of subject-0"]


def test_failures_back_off_exponentially_then_fail_keeping_the_last_error(ctx: Context) -> None:
    clock = Clock()
    [job_id] = add_jobs(ctx, 1)
    calls = []

    def flaky(_ctx: Context, claimed: queue.Claimed) -> Any:
        calls.append(claimed.attempts)
        raise RuntimeError(f"storage hiccup {claimed.attempts}")

    worker = Worker(ctx, {KIND: Handler(run=flaky)}, "w1", clock)
    assert worker.run_one()
    first = job(ctx, job_id)
    assert (first["status"], first["attempts"], first["error"]) == ("queued", 1, "internal_error")
    assert "storage hiccup 1" in first["last_error"] and first["lease_owner"] is None
    delay = (first["run_at"] - START).total_seconds()
    assert 5 <= delay <= 10  # base 10 s, jittered into its upper half
    assert not worker.run_one()  # not due before its backoff
    clock.now = first["run_at"]
    assert worker.run_one()
    second = job(ctx, job_id)
    assert second["status"] == "queued" and 10 <= (second["run_at"] - clock.now).total_seconds() <= 20
    clock.now = second["run_at"]
    assert worker.run_one()
    final = job(ctx, job_id)
    assert (final["status"], final["attempts"], final["error"]) == ("failed", 3, "internal_error")
    assert "storage hiccup 3" in final["last_error"] and final["finished_at"] == clock.now
    assert calls == [1, 2, 3]
    clock.advance(10_000)
    assert not worker.run_one()  # failed stays failed


def test_backoff_is_capped_and_jittered() -> None:
    assert backoff(1, 10, 25, rng=lambda: 0.0) == 5 and backoff(1, 10, 25, rng=lambda: 1.0) == 10
    assert backoff(2, 10, 25, rng=lambda: 1.0) == 20
    assert backoff(30, 10, 25, rng=lambda: 1.0) == 25 and backoff(30, 10, 25, rng=lambda: 0.0) == 12.5


def test_a_permanent_failure_is_not_retried_and_runs_the_failure_hook(ctx: Context) -> None:
    clock = Clock()
    [job_id] = add_jobs(ctx, 1)

    def refuse(_ctx: Context, _claimed: queue.Claimed) -> Any:
        raise PermanentFailure("pdf_encrypted", "it needs a password")

    worker = Worker(ctx, {KIND: Handler(run=refuse, on_failed=lambda conn, _job: mark("cleaned up")(conn))}, "w1", clock)
    assert worker.run_one()
    state = job(ctx, job_id)
    assert (state["status"], state["attempts"], state["error"]) == ("failed", 1, "pdf_encrypted")
    assert written(ctx) == ["cleaned up"]


def test_an_expired_lease_is_claimed_again_and_the_late_worker_writes_nothing(ctx: Context) -> None:
    """Worker 1 works past its lease (its renewals did not happen: it was paused); worker 2
    claims the job. Worker 1's finish, while worker 2 holds the job and after worker 2 has
    finished it, is refused and its result dropped."""
    clock = Clock()
    [job_id] = add_jobs(ctx, 1)
    second = Worker(ctx, {KIND: Handler(run=lambda _ctx, _job: mark("written by w2"))}, "w2", clock)
    taken_over: list[queue.Claimed] = []

    def paused_past_its_lease(_ctx: Context, claimed: queue.Claimed) -> Any:
        assert job(ctx, job_id)["lease_owner"] == claimed.lease_owner
        clock.advance(31)  # lease is 30 s
        taken = second.claim()  # the job is claimable again
        assert taken is not None
        taken_over.append(taken)
        return mark("written by w1")

    first = Worker(ctx, {KIND: Handler(run=paused_past_its_lease)}, "w1", clock)
    assert first.run_one()
    state = job(ctx, job_id)
    assert state["status"] == "running" and state["lease_owner"] == taken_over[0].lease_owner and state["attempts"] == 2
    assert written(ctx) == []  # w1's finish was refused while w2 holds the job
    second.execute(taken_over[0])
    state = job(ctx, job_id)
    assert state["status"] == "done" and state["lease_owner"].startswith("w2/")
    assert written(ctx) == ["written by w2"]


def test_a_lease_past_its_time_cannot_finish_even_if_nobody_took_over(ctx: Context) -> None:
    clock = Clock()
    [job_id] = add_jobs(ctx, 1)
    with ctx.db.write() as conn:
        claimed = queue.claim(conn, "w1/a", clock(), timedelta(seconds=30), [KIND])
    assert claimed is not None and claimed["attempts"] == 1
    with ctx.db.write() as conn:
        assert queue.renew(conn, job_id, "w1/a", clock.now + timedelta(seconds=29), timedelta(seconds=30))
        assert not queue.renew(conn, job_id, "w1/b", clock.now, timedelta(seconds=30))  # another claim's token
        assert not queue.finish(conn, job_id, "w1/a", clock.now + timedelta(seconds=60))  # renewed until 59 s
        assert queue.finish(conn, job_id, "w1/a", clock.now + timedelta(seconds=58))
    assert job(ctx, job_id)["status"] == "done"


def test_a_job_whose_workers_keep_dying_fails_as_worker_lost(ctx: Context) -> None:
    clock = Clock()
    [job_id] = add_jobs(ctx, 1)
    for attempt in range(1, 4):  # three claims whose workers never come back
        with ctx.db.write() as conn:
            row = queue.claim(conn, f"dead/{attempt}", clock(), timedelta(seconds=30), [KIND])
        assert row is not None and row["attempts"] == attempt
        clock.advance(31)
    worker = Worker(ctx, {KIND: Handler(run=lambda _ctx, _job: mark("never"), on_failed=lambda conn, _job: mark("gave up")(conn))}, "w", clock)
    assert not worker.run_one()
    state = job(ctx, job_id)
    assert (state["status"], state["error"], state["attempts"]) == ("failed", "worker_lost", 4)
    assert written(ctx) == ["gave up"]


def test_requeue_takes_the_lease_away_from_a_running_worker(ctx: Context) -> None:
    clock = Clock()
    [job_id] = add_jobs(ctx, 1)

    def requeued_meanwhile(_ctx: Context, _claimed: queue.Claimed) -> Any:
        with ctx.db.write() as conn:
            queue.requeue(conn, job_id, clock())  # an operator's retry, or POST /pdfs/{id}/reprocess
        return mark("stale")

    Worker(ctx, {KIND: Handler(run=requeued_meanwhile)}, "w1", clock).run_one()
    state = job(ctx, job_id)
    assert (state["status"], state["attempts"], state["lease_owner"]) == ("queued", 0, None)
    assert written(ctx) == []


def test_concurrent_workers_take_each_job_exactly_once(ctx: Context) -> None:
    job_ids = add_jobs(ctx, 40)
    handled: list[int] = []
    lock = threading.Lock()

    def record(_ctx: Context, claimed: queue.Claimed) -> Any:
        with lock:
            handled.append(claimed.id)
        return mark(f"job {claimed.id}")

    def drain(name: str) -> None:
        worker = Worker(ctx, {KIND: Handler(run=record)}, name, Clock())
        misses = 0
        while misses < 3:  # due jobs may be taken by the others between look and claim
            misses = 0 if worker.run_one() else misses + 1

    threads = [threading.Thread(target=drain, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(handled) == job_ids
    assert sorted(written(ctx)) == sorted(f"job {job_id}" for job_id in job_ids)
    with ctx.db.read() as conn:
        assert {row.status for row in conn.execute(select(jobs.c.status))} == {"done"}


def test_only_the_workers_kinds_are_claimed(ctx: Context) -> None:
    add_jobs(ctx, 1)
    with ctx.db.write() as conn:
        conn.execute(insert(accounts).values(name="x", created_at=START))
    other = Worker(ctx, {"another_kind": Handler(run=lambda _ctx, _job: mark("no"))}, "w", Clock())
    assert not other.run_one()
