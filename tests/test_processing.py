"""Processing through the API: the upload's job, the extraction (202, then 200 with the words
on their page, in their boxes), the processing state of PDFs and patients, failures,
reprocessing and deletion. Jobs run on the real worker and extraction child (drain)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pikepdf
import pytest

from conftest import LiveServer, Tenant, sample
from made_pdfs import image_page, scan_image
from processing_helpers import PAGE_HEIGHT, count, drain, search_rows_of, sql, text_pdf

CLINIC = [[("Lab report of the morning", 72, 700)], [("Riverside Family Clinic", 100, 500), ("HbA1c 6.1 percent", 100, 480)]]


def contains(box: list[float], x: float, y: float) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def test_an_upload_is_202_until_processed_then_200_with_its_words_on_their_page(server: LiveServer, tenant: Tenant) -> None:
    uploaded = server.upload(tenant, text_pdf(CLINIC)).json()
    pdf_id = uploaded["id"]
    # committed with its job: queued, nothing extracted yet
    [job] = sql(server, "SELECT kind, status, attempts FROM jobs WHERE subject = :id", id=pdf_id)
    assert job == {"kind": "process_pdf", "status": "queued", "attempts": 0}
    pending = server.client.get(f"/pdfs/{pdf_id}/extraction", headers=tenant.headers)
    assert pending.status_code == 202 and pending.headers["retry-after"]
    assert pending.json() == {"pdf_id": pdf_id, "sha256": uploaded["sha256"], "status": "queued"}
    meta = server.client.get(f"/pdfs/{pdf_id}", headers=tenant.headers).json()
    assert meta["processing"] == {"status": "queued", "pages_ocr": None, "error": None, "finished_at": None}

    assert drain(server) == 1
    response = server.client.get(f"/pdfs/{pdf_id}/extraction", headers=tenant.headers)
    assert response.status_code == 200
    document = response.json()
    assert document["status"] == "done" and document["pdf_id"] == pdf_id and document["sha256"] == uploaded["sha256"]
    assert document["page_count"] == 2 and document["complete"] is True
    assert document["engines"]["text"].startswith("pdfium ")
    first, second = document["pages"]
    assert (first["page"], first["width"], first["height"], first["rotation"], first["source"]) == (1, 612.0, 792.0, 0, "text")
    assert "Riverside" not in first["text"] and "Riverside Family Clinic" in second["text"]
    [riverside] = [word for word in second["words"] if word[0] == "Riverside"]
    # drawn at x=100, baseline 500 from the bottom: 292 pt from the top as displayed
    assert contains(riverside[1:5], 102, PAGE_HEIGHT - 500 - 3) and riverside[5] is None
    assert all(len(word) == 6 for word in second["words"])

    meta = server.client.get(f"/pdfs/{pdf_id}", headers=tenant.headers).json()
    assert meta["processing"]["status"] == "done" and meta["processing"]["pages_ocr"] == 0
    assert meta["processing"]["error"] is None and meta["processing"]["finished_at"].endswith("Z")
    [listed] = server.client.get(f"/patients/{tenant.patient_id}/pdfs/", headers=tenant.headers).json()
    assert listed["processing"] == meta["processing"]


def test_the_patient_carries_its_newest_processed_pdf_as_pdf_json_cache(server: LiveServer, tenant: Tenant) -> None:
    older = server.upload(tenant, text_pdf([[("Older letter", 72, 700)]])).json()["id"]
    drain(server)
    newest = server.upload(tenant, text_pdf(CLINIC)).json()["id"]
    cache = server.client.get(f"/patients/{tenant.patient_id}/", headers=tenant.headers).json()["pdf_json_cache"]
    assert cache["pdf_id"] == older  # the newest is not processed yet
    drain(server)
    patient = server.client.get(f"/patients/{tenant.patient_id}/", headers=tenant.headers).json()
    cache = patient["pdf_json_cache"]
    assert cache["pdf_id"] == newest and cache["status"] == "done" and cache["page_count"] == 2
    assert [page["page"] for page in cache["pages"]] == [1, 2]
    assert "Riverside Family Clinic" in cache["pages"][1]["text"]
    assert all("words" not in page for page in cache["pages"])
    full = server.client.get(cache["extraction_url"], headers=tenant.headers).json()
    assert full["pages"][1]["words"][0][0] == "Riverside"
    assert server.client.get("/patients", headers=tenant.headers).json()[0]["pdf_json_cache"] is None


def test_a_scanned_page_is_ocred_and_its_word_found_in_its_box(server: LiveServer, tenant: Tenant) -> None:
    server.require("sqlite+local", "OCR costs seconds; the storage path is covered on both backends by the other tests")
    image, placed = scan_image(["Discharge summary", "Metformin 500 mg twice daily"], dpi=200)
    pdf = pikepdf.Pdf.open(__import__("io").BytesIO(text_pdf([[("Cover sheet of the fax", 72, 700)]])))
    image_page(pdf, image, 200)
    buffer = __import__("io").BytesIO()
    pdf.save(buffer)
    pdf_id = server.upload(tenant, buffer.getvalue()).json()["id"]
    drain(server)
    document = server.client.get(f"/pdfs/{pdf_id}/extraction", headers=tenant.headers).json()
    cover, scan = document["pages"]
    assert cover["source"] == "text" and scan["source"] == "ocr"
    [expected] = [word for word in placed if word.text == "Metformin"]
    [found] = [word for word in scan["words"] if word[0] == "Metformin"]
    assert contains(found[1:5], *expected.centre) and found[5] is not None and 0 <= found[5] <= 100
    meta = server.client.get(f"/pdfs/{pdf_id}", headers=tenant.headers).json()
    assert meta["processing"]["pages_ocr"] == 1


def test_a_pdf_that_cannot_be_extracted_is_failed_with_a_stable_code(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(extract_max_pages=1)
    tenant = server.tenant()
    pdf_id = server.upload(tenant, text_pdf(CLINIC)).json()["id"]
    drain(server)
    response = server.client.get(f"/pdfs/{pdf_id}/extraction", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json() == {"pdf_id": pdf_id, "sha256": response.json()["sha256"], "status": "failed", "error": "too_many_pages"}
    processing = server.client.get(f"/pdfs/{pdf_id}", headers=tenant.headers).json()["processing"]
    assert processing["status"] == "failed" and processing["error"] == "too_many_pages" and processing["finished_at"]
    [job] = sql(server, "SELECT status, attempts, error, last_error FROM jobs WHERE subject = :id", id=pdf_id)
    assert (job["status"], job["attempts"], job["error"]) == ("failed", 1, "too_many_pages")  # not retried
    assert "max" in job["last_error"] or "page" in job["last_error"]


def test_reprocess_queues_again_serves_the_old_result_meanwhile_and_writes_once(server: LiveServer, tenant: Tenant) -> None:
    pdf_id = server.upload(tenant, text_pdf(CLINIC)).json()["id"]
    drain(server)
    first = server.client.get(f"/pdfs/{pdf_id}", headers=tenant.headers).json()["processing"]
    reader = server.client.post("/keys", headers=tenant.headers, json={"name": "reader", "scopes": ["read"]}).json()["key"]
    refused = server.client.post(f"/pdfs/{pdf_id}/reprocess", headers={"X-API-Key": reader})
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    response = server.client.post(f"/pdfs/{pdf_id}/reprocess", headers=tenant.headers)
    assert response.status_code == 202 and response.json() == {"pdf_id": pdf_id, "status": "queued"}
    assert server.client.get(f"/pdfs/{pdf_id}", headers=tenant.headers).json()["processing"]["status"] == "queued"
    still = server.client.get(f"/pdfs/{pdf_id}/extraction", headers=tenant.headers)
    assert still.status_code == 200 and len(still.json()["pages"]) == 2
    assert drain(server) == 1
    again = server.client.get(f"/pdfs/{pdf_id}", headers=tenant.headers).json()["processing"]
    assert again["status"] == "done" and again["finished_at"] >= first["finished_at"]
    assert count(server, "pdf_pages", "pdf_id = :id", id=pdf_id) == 2 and search_rows_of(server, pdf_id) == 2
    assert count(server, "pdf_extractions", "pdf_id = :id", id=pdf_id) == 1
    assert count(server, "jobs", "subject = :id", id=pdf_id) == 1
    missing = server.client.post("/pdfs/pdf_0000000000000000000000000000x/reprocess", headers=tenant.headers)
    assert missing.status_code == 404


@pytest.mark.parametrize("processed", [True, False], ids=["processed", "pending"])
def test_deleting_a_pdf_deletes_its_extraction_search_entries_and_jobs(server: LiveServer, tenant: Tenant, processed: bool) -> None:
    keep = server.upload(tenant, text_pdf(CLINIC)).json()["id"]
    pdf_id = server.upload(tenant, text_pdf(CLINIC)).json()["id"]
    if processed:
        drain(server)
        assert count(server, "pdf_pages", "pdf_id = :id", id=pdf_id) == 2 and search_rows_of(server, pdf_id) == 2
        assert len(server.client.get("/search", params={"q": "riverside"}, headers=tenant.headers).json()["results"]) == 2
    assert server.client.delete(f"/pdfs/{pdf_id}", headers=tenant.headers).status_code == 204
    for table in ("pdf_pages", "pdf_extractions"):
        assert count(server, table, "pdf_id = :id", id=pdf_id) == 0
    assert count(server, "jobs", "subject = :id", id=pdf_id) == 0 and search_rows_of(server, pdf_id) == 0
    assert server.client.get(f"/pdfs/{pdf_id}/extraction", headers=tenant.headers).status_code == 404
    drain(server)
    results = server.client.get("/search", params={"q": "riverside"}, headers=tenant.headers).json()["results"]
    assert {result["pdf_id"] for result in results} == {keep}
    assert count(server, "jobs", "subject = :id", id=keep) == 1


def test_every_committed_pdf_has_its_job_and_a_refused_upload_none(server: LiveServer, tenant: Tenant) -> None:
    for name in ("truncated.pdf", "encrypted.pdf", "text.pdf"):
        assert server.upload(tenant, sample(name)).status_code == 400
    ids = [server.upload(tenant, sample("valid.pdf")).json()["id"] for _ in range(3)]
    jobs = sql(server, "SELECT subject FROM jobs")
    assert sorted(job["subject"] for job in jobs) == sorted(ids)


def test_the_job_is_in_the_pdfs_transaction(make_server: Callable[..., LiveServer]) -> None:
    """If the job cannot be written, neither is the PDF (and its bytes go)."""
    server = make_server()
    server.require("sqlite+local", "the failing insert is an SQLite trigger")
    tenant = server.tenant()
    database = server.settings.resolved_database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TRIGGER no_jobs BEFORE INSERT ON jobs BEGIN SELECT RAISE(ABORT, 'no jobs today'); END")
    response = server.upload(tenant, sample("valid.pdf"))
    assert response.status_code == 500
    assert count(server, "pdfs") == 0 and server.blob_keys() == []
    with sqlite3.connect(database) as conn:
        conn.execute("DROP TRIGGER no_jobs")
    assert server.upload(tenant, sample("valid.pdf")).status_code == 201
    assert count(server, "pdfs") == 1 and count(server, "jobs") == 1


def test_another_accounts_pdf_has_no_extraction_for_you(server: LiveServer, tenant: Tenant) -> None:
    pdf_id = server.upload(tenant, text_pdf(CLINIC)).json()["id"]
    drain(server)
    other = server.tenant("Other Clinic")
    for method, path in (("GET", f"/pdfs/{pdf_id}/extraction"), ("POST", f"/pdfs/{pdf_id}/reprocess")):
        response = server.client.request(method, path, headers=other.headers)
        assert response.status_code == 404 and response.json()["code"] == "pdf_not_found"
    assert count(server, "audit_events", "action = 'pdf.extraction' AND pdf_id = :id", id=pdf_id) == 1


def test_a_pdf_whose_bytes_cannot_be_read_is_retried_then_failed(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(job_max_attempts=2, job_retry_base_seconds=0.001, job_retry_max_seconds=0.001)
    tenant = server.tenant()
    pdf_id = server.upload(tenant, text_pdf(CLINIC)).json()["id"]
    [key] = server.blob_keys()
    server.context.storage.delete(key)  # the storage lost it (storage check would say so)
    while True:
        drain(server)
        [job] = sql(server, "SELECT status, attempts, error FROM jobs WHERE subject = :id", id=pdf_id)
        if job["status"] != "queued":
            break
    assert (job["status"], job["attempts"], job["error"]) == ("failed", 2, "storage_unavailable")
    body = server.client.get(f"/pdfs/{pdf_id}/extraction", headers=tenant.headers).json()
    assert (body["status"], body["error"]) == ("failed", "storage_unavailable")
    assert list((server.data_dir / "work").iterdir()) == []  # no scratch copy left behind
