"""The real thing: `patientpdf serve` as a process, driven by curl exactly as the upload doc shows."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pikepdf
import pytest

from conftest import SAMPLES
from served import Served, children, curl, listens_on



@pytest.fixture(params=["granian", "uvicorn"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    """serve under each server it can run (PATIENTPDF_SERVER; granian is the default)."""
    from processing_helpers import wait_until

    server = Served(tmp_path / "data", workers=2, extra_env={"PATIENTPDF_SERVER": request.param})
    # /readyz needs one worker; the tests need both listening (granian may start the second later)
    wait_until(lambda: len([pid for pid in children(server.process.pid) if listens_on(pid, server.port)]) == 2, "both workers listen", timeout=30)
    yield server
    server.stop()


def test_api_workers_do_not_outlive_a_killed_serve(served: Served) -> None:
    """SIGKILL to serve alone: its API workers must not go on holding the port with the old code."""
    from processing_helpers import wait_until

    wait_until(lambda: len([pid for pid in children(served.process.pid) if listens_on(pid, served.port)]) == 2, "both workers are up")
    workers = [pid for pid in children(served.process.pid) if listens_on(pid, served.port)]
    served.process.kill()
    served.process.wait()

    def gone(pid: int) -> bool:
        status = Path(f"/proc/{pid}/status")
        return not status.exists() or "zombie" in status.read_text()

    wait_until(lambda: all(gone(pid) for pid in workers), "the API workers stop when serve dies", timeout=15)


def test_upload_with_the_docs_curl_and_download_the_same_bytes(served: Served, tmp_path: Path) -> None:
    pdf = SAMPLES / "valid.pdf"
    body = curl(
        "--request", "POST",
        "--url", f"{served.base_url}/patients/{served.demo['patient_id']}/pdf/",
        "--header", "Content-Type: multipart/form-data",
        "--header", f"X-API-Key: {served.demo['api_key']}",
        "--form", f"file=@{pdf}",
        "--form", "filename=Chart of Jane Q. Sample.pdf",
    )  # fmt: skip
    uploaded = json.loads(body)
    assert {"id", "url", "filename", "created_at", "patient_id"} <= set(uploaded)
    assert uploaded["filename"] == "Chart of Jane Q. Sample.pdf"
    downloaded = tmp_path / "downloaded.pdf"
    curl("--fail", "--output", str(downloaded), uploaded["url"])
    assert downloaded.read_bytes() == pdf.read_bytes()
    # the printed demo command works as printed
    demo_result = json.loads(subprocess.run(served.demo["curl"], shell=True, capture_output=True, text=True, check=True).stdout)
    assert demo_result["filename"] == "demo.pdf"

    # refusals must not leak either: a wrong key, an altered link, a retry with an Idempotency-Key
    wrong_key = "ppk_" + "Leak" * 10
    assert json.loads(curl("--header", f"X-API-Key: {wrong_key}", f"{served.base_url}/patients"))["code"] == "api_key_invalid"
    altered = uploaded["url"].replace("signature=", "signature=Tampered")
    assert json.loads(curl(altered))["code"] == "link_invalid"
    for _ in range(2):
        curl(
            "--header", f"X-API-Key: {served.demo['api_key']}", "--header", "Idempotency-Key: retry-1",
            "--form", f"file=@{pdf}", "--form", "filename=Referral for Jane Q. Sample.pdf",
            f"{served.base_url}/patients/{served.demo['patient_id']}/pdf/",
        )  # fmt: skip

    served.stop()
    logs = served.logs()
    assert '"path": "/patients/1/pdf/"' in logs and '"status": 201' in logs and '"status": 401' in logs
    signature = uploaded["url"].split("signature=")[1]
    secrets = (served.demo["api_key"], wrong_key, wrong_key[:12], signature, "Tampered", "Chart of Jane", "Referral for")
    for secret in (*secrets, "Demo Patient", "demo.pdf", "expires="):
        assert secret not in logs, secret


def test_memory_does_not_grow_with_file_size(tmp_path: Path) -> None:
    """One worker (no supervisor: the serve process is the worker) receives a 120 MB PDF."""
    big = tmp_path / "big.pdf"
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.pages[0].obj["/Padding"] = pdf.make_stream(os.urandom(120 * 1024 * 1024))
    pdf.save(big, compress_streams=False)
    server = Served(tmp_path / "data", workers=1, extra_env={"PATIENTPDF_MAX_UPLOAD_BYTES": str(200 * 1024 * 1024)})
    try:
        status_file = Path(f"/proc/{server.process.pid}/status")
        Path(f"/proc/{server.process.pid}/clear_refs").write_text("5")  # reset the peak (VmHWM)
        baseline = _vm_kib(status_file, "VmRSS")
        body = curl(
            "--request", "POST", "--url", f"{server.base_url}/patients/{server.demo['patient_id']}/pdf/",
            "--header", f"X-API-Key: {server.demo['api_key']}", "--form", f"file=@{big}", "--form", "filename=big.pdf",
        )  # fmt: skip
        uploaded = json.loads(body)
        peak_growth_mib = (_vm_kib(status_file, "VmHWM") - baseline) / 1024
        assert peak_growth_mib < 40, f"peak RSS grew by {peak_growth_mib:.0f} MiB for a 120 MiB upload"
        meta = httpx.get(f"{server.base_url}/pdfs/{uploaded['id']}", headers={"X-API-Key": server.demo["api_key"]}).json()
        assert meta["size"] == big.stat().st_size
        assert meta["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
    finally:
        server.stop()


def _vm_kib(status_file: Path, field: str) -> int:
    for line in status_file.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in {status_file}")


def test_concurrent_uploads_across_workers_all_land(served: Served) -> None:
    from concurrent.futures import ThreadPoolExecutor

    headers = {"X-API-Key": served.demo["api_key"]}
    url = f"{served.base_url}/patients/{served.demo['patient_id']}/pdf/"
    content = (SAMPLES / "valid.pdf").read_bytes()

    def upload(n: int) -> int:
        with httpx.Client() as client:  # one connection each, so both workers take requests
            files = {"file": ("x.pdf", content)}
            return client.post(url, headers=headers, files=files, data={"filename": f"{n}.pdf"}, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(upload, range(48)))
    assert statuses == [201] * 48
    listed = httpx.get(f"{served.base_url}/patients/{served.demo['patient_id']}/pdfs/", headers=headers).json()
    assert sorted(item["filename"] for item in listed) == sorted(f"{n}.pdf" for n in range(48))
    # both workers took uploads (each log line names its process), and they are serve's workers
    workers = children(served.process.pid)
    served.stop()  # an access line is written after its response: now all of them are
    served_by = Counter(
        line["pid"]
        for line in (json.loads(text) for text in served.logs().splitlines() if text.startswith("{"))
        if line.get("path") == f"/patients/{served.demo['patient_id']}/pdf/" and line.get("status") == 201
    )
    assert sum(served_by.values()) == 48
    assert len(served_by) == 2 and set(served_by) <= set(workers), served_by


def test_a_worker_that_dies_is_replaced_and_shutdown_stops_all(served: Served) -> None:
    def serving_workers() -> list[int]:
        # spawn's resource tracker is a child too; workers are the ones with listening sockets
        return [pid for pid in children(served.process.pid) if listens_on(pid, served.port)]

    from processing_helpers import wait_until

    wait_until(lambda: len(serving_workers()) == 2, "both workers are up (/readyz needs only one)", timeout=30)
    before = serving_workers()
    os.kill(before[0], 9)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = serving_workers()
        if len(now) == 2 and before[0] not in now and httpx.get(served.base_url + "/readyz").status_code == 200:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"no replacement worker: {serving_workers()}")
    served.stop()
    assert served.process.returncode == 0
    for pid in now:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()



@pytest.mark.parametrize("served", ["granian"], indirect=True)  # the job worker does not depend on the HTTP server
def test_the_embedded_worker_processes_the_demo_pdfs_and_search_finds_them(served: Served) -> None:
    """`make run` in short: serve's embedded worker extracts the demo PDF and the scanned demo
    page uploaded with the printed curl commands; the extraction and the search find their words."""
    from processing_helpers import wait_until

    headers = {"X-API-Key": served.demo["api_key"]}
    ids = [json.loads(subprocess.run(served.demo[name], shell=True, capture_output=True, text=True, check=True).stdout)["id"] for name in ("curl", "curl_scan")]

    def extraction(pdf_id: str) -> httpx.Response:
        return httpx.get(f"{served.base_url}/pdfs/{pdf_id}/extraction", headers=headers)

    for pdf_id in ids:
        wait_until(lambda: extraction(pdf_id).status_code == 200, "the embedded worker processes the upload")  # noqa: B023
    text_page, scanned = (extraction(pdf_id).json()["pages"][0] for pdf_id in ids)
    assert text_page["source"] == "text" and scanned["source"] == "ocr"
    for page in (text_page, scanned):
        assert "Riverside Family Clinic" in page["text"]
    found = httpx.get(f"{served.base_url}/search", params={"q": '"riverside family clinic"'}, headers=headers).json()["results"]
    assert sorted(result["pdf_id"] for result in found) == sorted(ids)
    assert all(len(result["highlights"]) == 3 for result in found)


def _nice(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[16])



@pytest.mark.parametrize("served", ["granian"], indirect=True)  # the job worker does not depend on the HTTP server
def test_the_extraction_child_runs_at_the_lowest_cpu_priority(served: Served) -> None:
    """OCR must take only the CPU that requests leave (PATIENTPDF_EXTRACT_NICE, default 19); the
    API processes and the job worker, which holds database locks, keep their normal priority."""
    from processing_helpers import wait_until

    pdf_id = json.loads(subprocess.run(served.demo["curl_scan"], shell=True, capture_output=True, text=True, check=True).stdout)["id"]
    headers = {"X-API-Key": served.demo["api_key"]}
    wait_until(lambda: httpx.get(f"{served.base_url}/pdfs/{pdf_id}/extraction", headers=headers).status_code == 200, "processed")
    port = int(served.base_url.rsplit(":", 1)[1])
    listening = [pid for pid in children(served.process.pid) if listens_on(pid, port)]
    others = [pid for pid in children(served.process.pid) if pid not in listening]
    job_workers = [pid for pid in others if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()]
    assert len(job_workers) == 1, job_workers
    extraction_children = children(job_workers[0])
    assert extraction_children, "the extraction child stays up between jobs"
    assert [_nice(pid) for pid in [served.process.pid, *listening, *job_workers]] == [0, 0, 0, 0]
    assert [_nice(pid) for pid in extraction_children] == [19] * len(extraction_children)
