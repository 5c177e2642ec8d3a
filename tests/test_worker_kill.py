"""Workers as real processes, killed and paused in the middle of a job, on both backends.

A worker is known to be mid-job by state (tests/gated_worker.py writes the lease it holds and
waits at a gate), never by timing; outcomes are read from the database. Waits have generous
deadlines only so that a broken build fails instead of hanging.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import LiveServer, Tenant
from processing_helpers import assert_none_left, count, search_rows_of, sql, start_worker, text_pdf, wait_until, worker_env

GATED = str(Path(__file__).with_name("gated_worker.py"))
LEASE_SECONDS = 3
PAGES = [[("Kill test page one", 72, 700)], [("Riverside Family Clinic", 72, 700)]]


@pytest.fixture
def processes(server: LiveServer) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
        process.wait()
    assert_none_left(server.data_dir)  # the killed workers' extraction children too


def job_of(server: LiveServer, pdf_id: str) -> dict:
    [job] = sql(server, "SELECT status, attempts, lease_owner, error FROM jobs WHERE subject = :id", id=pdf_id)
    return job


def start_gated(server: LiveServer, tmp_path: Path, processes: list, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    gate = tmp_path / f"{name}.gate"
    env = worker_env(server, job_lease_seconds=LEASE_SECONDS, worker_poll_seconds=0.05)
    process = start_worker(env, tmp_path / f"{name}.log", sys.executable, GATED, str(gate))
    processes.append(process)
    wait_until(lambda: gate.with_suffix(".claimed").exists(), f"{name} claims the job")
    return process, gate


def start_plain(server: LiveServer, tmp_path: Path, processes: list, name: str) -> subprocess.Popen[bytes]:
    env = worker_env(server, job_lease_seconds=LEASE_SECONDS, worker_poll_seconds=0.05)
    process = start_worker(env, tmp_path / f"{name}.log")
    processes.append(process)
    return process


def assert_written_once_by(server: LiveServer, tenant: Tenant, pdf_id: str, owner_pid: int) -> None:
    job = job_of(server, pdf_id)
    assert job["status"] == "done" and job["lease_owner"].split("/")[0].endswith(f":{owner_pid}")
    [extraction] = sql(server, "SELECT written_by FROM pdf_extractions WHERE pdf_id = :id", id=pdf_id)
    assert extraction["written_by"] == job["lease_owner"]
    assert count(server, "pdf_pages", "pdf_id = :id", id=pdf_id) == 2 and search_rows_of(server, pdf_id) == 2
    document = server.client.get(f"/pdfs/{pdf_id}/extraction", headers=tenant.headers).json()
    assert [page["page"] for page in document["pages"]] == [1, 2] and "Riverside" in document["pages"][1]["text"]


def test_a_worker_killed_mid_job_is_replaced_and_the_result_written_once(
    server: LiveServer, tenant: Tenant, tmp_path: Path, processes: list
) -> None:
    pdf_id = server.upload(tenant, text_pdf(PAGES)).json()["id"]
    first, _gate = start_gated(server, tmp_path, processes, "first")
    job = job_of(server, pdf_id)
    assert (job["status"], job["attempts"]) == ("running", 1)
    assert job["lease_owner"] == (tmp_path / "first.claimed").read_text()
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    second = start_plain(server, tmp_path, processes, "second")
    wait_until(lambda: job_of(server, pdf_id)["status"] == "done", "the second worker finishes the job")
    assert job_of(server, pdf_id)["attempts"] == 2  # the killed attempt counts
    assert_written_once_by(server, tenant, pdf_id, second.pid)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0


@pytest.mark.parametrize("successor_done", [True, False], ids=["successor_finished", "successor_still_working"])
def test_a_worker_paused_past_its_lease_cannot_overwrite_the_worker_that_took_over(
    server: LiveServer, tenant: Tenant, tmp_path: Path, processes: list, successor_done: bool
) -> None:
    """The paused worker resumes after the one that took over has finished, or while it still
    works (then only the lease owner tells them apart): either way its finish is refused."""
    pdf_id = server.upload(tenant, text_pdf(PAGES)).json()["id"]
    paused, gate = start_gated(server, tmp_path, processes, "paused")
    paused_lease = (tmp_path / "paused.claimed").read_text()
    os.kill(paused.pid, signal.SIGSTOP)
    if successor_done:
        second = start_plain(server, tmp_path, processes, "second")
        wait_until(lambda: job_of(server, pdf_id)["status"] == "done", "the second worker takes over once the lease expires")
        assert_written_once_by(server, tenant, pdf_id, second.pid)
    else:
        second, second_gate = start_gated(server, tmp_path, processes, "second")  # claims once the lease expires
    taken_over = job_of(server, pdf_id)["lease_owner"]
    assert taken_over != paused_lease and taken_over.split("/")[0].endswith(f":{second.pid}")
    # The paused worker resumes, does its whole job and tries to finish: refused, nothing written.
    gate.touch()
    os.kill(paused.pid, signal.SIGCONT)
    log = tmp_path / "paused.log"
    wait_until(lambda: "its result was not written" in log.read_text(), "the resumed worker reaches its finish")
    assert paused_lease in log.read_text()
    assert job_of(server, pdf_id)["lease_owner"] == taken_over
    if not successor_done:
        assert job_of(server, pdf_id)["status"] == "running"
        assert count(server, "pdf_pages", "pdf_id = :id", id=pdf_id) == 0 and count(server, "pdf_extractions") == 0
        second_gate.touch()
        wait_until(lambda: job_of(server, pdf_id)["status"] == "done", "the worker that took over finishes")
    assert_written_once_by(server, tenant, pdf_id, second.pid)
    for process in (paused, second):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
