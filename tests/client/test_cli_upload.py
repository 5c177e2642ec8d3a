"""`ppdf upload` against `patientpdf serve`: a real folder, a network that drops, a client killed
with SIGKILL, a server that says 429 or 503. Every file ends up stored exactly once."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from client.conftest import PPDF, Site, make_folder
from client.cut_proxy import Cut, CutProxy
from patientpdf_client import Client, RetryEvent, RetryPolicy


def lines(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The per-file JSON lines and the summary line."""
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert "summary" in records[-1], stdout[-2000:]
    return records[:-1], records[-1]


def stored_shas(site_or_client: Site | Client, patient_id: int) -> Counter[str]:
    """How many times the server holds each file's bytes for the patient."""
    if isinstance(site_or_client, Site):
        with site_or_client.client() as client:
            return stored_shas(client, patient_id)
    return Counter(pdf["sha256"] for pdf in site_or_client.list_pdfs(patient_id, page_size=1000))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_folder_of_200_with_bad_files_and_copies(live_site: Callable[..., Site], tmp_path: Path) -> None:
    site = live_site(max_upload_bytes=1024 * 1024)
    folder = make_folder(tmp_path / "faxes", unique=185, bad=5, copies=10)
    patient = site.new_patient()
    result = site.ppdf("upload", str(folder.root), "--patient", str(patient), "--jobs", "4")  # stdout is a pipe: JSON lines
    files, summary = lines(result.stdout)
    assert result.returncode == 1, result.stderr  # some refused, none failed
    assert summary["summary"] == {
        "files": 200, "stored": 185, "duplicate": 10, "skipped": 0, "refused": 5,
        "refused_codes": summary["summary"]["refused_codes"], "failed": 0, "failed_codes": {},
    }  # fmt: skip
    assert sum(summary["summary"]["refused_codes"].values()) == 5
    assert set(summary["summary"]["refused_codes"]) <= {"not_a_pdf", "pdf_truncated", "empty_file", "invalid_pdf"}
    assert {f["path"] for f in files if f["status"] == "refused"} == {str(p) for p in folder.bad}
    assert all(f["request_id"] for f in files if f["status"] == "refused")
    assert all(f["attempts"] == 1 and f["retries"] == [] for f in files if f["status"] == "refused")  # a refusal is not retried
    assert "notes.txt" not in result.stdout
    stored = stored_shas(site, patient)
    expected = Counter(sha(p) for p in folder.valid + folder.copies)
    assert stored == expected  # each file once; a copy is its own record that names the first
    duplicates = [f for f in files if f["status"] == "duplicate"]
    assert all(f["duplicate_of"] for f in duplicates) and len(duplicates) == 10

    again = site.ppdf("upload", str(folder.root), "--patient", str(patient), "--skip-existing", "--json")
    files, summary = lines(again.stdout)
    assert again.returncode == 1
    assert (summary["summary"]["skipped"], summary["summary"]["stored"], summary["summary"]["refused"]) == (195, 0, 5)
    assert {f["reason"] for f in files if f["status"] == "skipped"} == {"exists"}
    assert stored_shas(site, patient) == expected  # nothing sent twice


def test_connections_cut_mid_upload_and_before_the_answer(site: Site, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "faxes", unique=16, padding=150_000)
    patient = site.new_patient()
    # Kept-alive connections carry many uploads: each cut makes the client open the next connection.
    plan = {0: Cut(after_request_bytes=40_000), 1: Cut(at_response=True), 2: Cut(after_request_bytes=120_000)}
    plan |= {3: Cut(at_response=True), 4: Cut(after_request_bytes=1_000), 5: Cut(at_response=True)}
    proxy = CutProxy(site.port, plan)
    try:
        result = site.ppdf("upload", str(folder.root), "--patient", str(patient), "--jobs", "2", "--json", env=site.env(PATIENTPDF_URL=proxy.url))
    finally:
        proxy.close()
    files, summary = lines(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary["summary"]["stored"] == 16 and summary["summary"]["failed"] == 0
    assert proxy.cuts == len(plan)
    assert sum(len(f["retries"]) for f in files) >= len(plan)
    assert {r["code"] for f in files for r in f["retries"]} <= {"connection_lost", "idempotency_key_in_progress"}
    assert any(f["replayed"] for f in files)  # an answer lost after the commit came back from the server's memory
    assert stored_shas(site, patient) == Counter(sha(p) for p in folder.valid)


def test_killed_with_sigkill_then_resume_stores_each_file_once(site: Site, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "faxes", unique=60, padding=250_000)
    patient = site.new_patient()
    state = tmp_path / "state.jsonl"
    args = [PPDF, "upload", str(folder.root), "--patient", str(patient), "--jobs", "3", "--json", "--resume", str(state)]
    process = subprocess.Popen(args, env=site.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def progress() -> tuple[int, int]:
        records = [json.loads(line) for line in state.read_text().splitlines() if line.endswith("}")] if state.exists() else []
        finished = {r["path"] for r in records if r["status"] != "started"}
        started = {r["path"] for r in records if r["status"] == "started"}
        return len(finished), len(started - finished)

    deadline = time.monotonic() + 120
    while not (progress()[0] >= 20 and progress()[1] >= 1):
        assert process.poll() is None and time.monotonic() < deadline, "the upload ended before it could be killed"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished, in_flight = progress()
    assert 20 <= finished < 60 and in_flight >= 1  # killed halfway, with uploads under way

    resumed = subprocess.run(args, env=site.env(), capture_output=True, text=True, timeout=300)
    files, summary = lines(resumed.stdout)
    assert resumed.returncode == 0, resumed.stderr
    assert summary["summary"]["skipped"] == finished
    assert summary["summary"]["stored"] == 60 - finished and summary["summary"]["duplicate"] == 0
    assert stored_shas(site, patient) == Counter(sha(p) for p in folder.valid)  # 60 files, each exactly once


def test_ctrl_c_stops_at_the_next_chunk_then_resume_finishes(site: Site, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "faxes", unique=30, padding=250_000)
    patient = site.new_patient()
    state = tmp_path / "state.jsonl"
    args = [PPDF, "upload", str(folder.root), "--patient", str(patient), "--jobs", "2", "--json", "--resume", str(state)]
    process = subprocess.Popen(args, env=site.env(), stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (state.exists() and sum('"status":"stored"' in line for line in state.read_text().splitlines()) >= 5):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=60)
    files, summary = lines(stdout)
    assert process.returncode == 130 and summary["exit_code"] == 130
    assert 5 <= summary["summary"]["stored"] < 30 and summary["summary"]["failed"] == 30 - summary["summary"]["stored"]
    assert set(summary["summary"]["failed_codes"]) <= {"interrupted", "not_attempted"}
    resumed = site.ppdf(*args[1:])
    _, after = lines(resumed.stdout)
    assert resumed.returncode == 0 and after["summary"]["skipped"] == summary["summary"]["stored"]
    assert stored_shas(site, patient) == Counter(sha(p) for p in folder.valid)


@pytest.mark.parametrize("backend", ["sqlite+local"])  # the API's own limit: the backends play no part
def test_rate_limited_uploads_wait_for_retry_after(live_site: Callable[..., Site], tmp_path: Path) -> None:
    site = live_site(key_rate_limit="4/second")
    patient = site.new_patient()
    folder = make_folder(tmp_path / "faxes", unique=24)
    result = site.ppdf("upload", str(folder.root), "--patient", str(patient), "--jobs", "4", "--json")
    files, summary = lines(result.stdout)
    assert result.returncode == 0, result.stderr
    assert summary["summary"]["stored"] == 24
    waits = [r for f in files for r in f["retries"] if r["status"] == 429]
    assert waits and all(r["code"] == "rate_limited" and r["wait"] >= 1 for r in waits)  # Retry-After: 1, honoured
    assert stored_shas(site, patient) == Counter(sha(p) for p in folder.valid)


def test_503_while_the_database_is_down_then_every_file_once(proxied: Any, tmp_path: Path) -> None:
    server, db_proxy, _ = proxied
    tenant = server.tenant()
    folder = make_folder(tmp_path / "faxes", unique=6)
    refused = threading.Event()
    events: list[RetryEvent] = []

    def on_retry(event: RetryEvent) -> None:
        events.append(event)
        if event.status == 503:
            refused.set()

    results: list[Any] = []
    db_proxy.down()
    with Client(server.base_url, tenant.key, retry=RetryPolicy(max_attempts=20, backoff=0.2)) as client:
        worker = threading.Thread(target=lambda: results.extend(client.upload_pdf(tenant.patient_id, p, on_retry=on_retry) for p in folder.valid))
        worker.start()
        assert refused.wait(60)
        db_proxy.up()
        worker.join(120)
        assert not worker.is_alive()
        assert [r["filename"] for r in results] == [p.name for p in folder.valid]
        assert {(e.status, e.code) for e in events if e.status} <= {(503, "database_unavailable"), (409, "idempotency_key_in_progress")}
        assert any(e.wait >= 5 for e in events if e.status == 503)  # the server's Retry-After, not the 0.2 s backoff
        assert stored_shas(client, tenant.patient_id) == Counter(sha(p) for p in folder.valid)

