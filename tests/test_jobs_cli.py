"""`patientpdf jobs list|stats|retry` and `patientpdf worker --processes N` as operators use them."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import LiveServer
from processing_helpers import CLI, assert_none_left, drain, sql, start_worker, text_pdf, wait_until, worker_env


def run(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert (result.returncode == 0) is ok, result.stderr
    return result


def run_json(env: dict[str, str], *args: str) -> dict:
    stdout = run(env, *args, "--json").stdout
    assert stdout.count("\n") == 1, stdout
    return json.loads(stdout)


def test_list_stats_retry_and_a_pool_of_worker_processes(backend: str, make_server: Callable[..., LiveServer], tmp_path: Path) -> None:
    if backend != "sqlite+local":
        pytest.skip("the queue itself is tested on both databases (test_job_queue, test_worker_kill): sqlite+local only")
    server = make_server(extract_max_pages=1)
    tenant = server.tenant()
    env = worker_env(server, log_level="WARNING")
    long_id = server.upload(tenant, text_pdf([[("First page", 72, 700)], [("Second page", 72, 700)]])).json()["id"]
    short_id = server.upload(tenant, text_pdf([[("Only page", 72, 700)]])).json()["id"]
    stats = run_json(env, "jobs", "stats")
    assert (stats["queued"], stats["running"], stats["done"], stats["failed"]) == (2, 0, 0, 0)
    assert stats["kinds"] == {"process_pdf": {"queued": 2, "running": 0, "done": 0, "failed": 0}}
    assert stats["oldest_queued_seconds"] >= 0

    drain(server)  # with extract_max_pages=1, the two-page PDF fails for good
    [failed] = run_json(env, "jobs", "list", "--status", "failed")["jobs"]
    assert (failed["subject"], failed["kind"], failed["error"], failed["attempts"]) == (long_id, "process_pdf", "too_many_pages", 1)
    assert failed["last_error"] and failed["finished_at"].endswith("Z")
    listed = run(env, "jobs", "list").stdout
    assert long_id in listed and short_id in listed and "too_many_pages" in listed

    retried = run_json(env, "jobs", "retry", str(failed["id"]))
    assert (retried["status"], retried["attempts"], retried["error"]) == ("queued", 0, None)
    assert "no job with id 99999" in run(env, "jobs", "retry", "99999", "--json", ok=False).stderr

    # A pool of two worker processes (default limits) processes it; SIGTERM stops the pool and its workers.
    pool = start_worker(env | {"PATIENTPDF_WORKER_POLL_SECONDS": "0.05"}, tmp_path / "pool.log", CLI, "worker", "--processes", "2")
    try:
        wait_until(lambda: sql(server, "SELECT DISTINCT status FROM jobs") == [{"status": "done"}], "the pool processes the retried job")
    finally:
        pool.send_signal(signal.SIGTERM)
        assert pool.wait(timeout=90) == 0
    assert_none_left(server.data_dir)
    assert server.client.get(f"/pdfs/{long_id}/extraction", headers=tenant.headers).json()["page_count"] == 2
    stats = run_json(env, "jobs", "stats")
    assert (stats["queued"], stats["done"], stats["failed"], stats["oldest_queued_seconds"]) == (0, 2, 0, None)
    assert run(env, "jobs", "stats").stdout.startswith("0 queued, 0 running, 2 done, 0 failed")
