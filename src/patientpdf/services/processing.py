"""Processing a stored PDF into pages of words with boxes, and reading the result.

Upload -> `enqueue` (in the upload's own transaction) -> a worker (jobs/) runs `process_pdf`:
fetch the bytes to a private file, extract in a child process with limits (processing/),
and hand back the write that replaces the PDF's extraction, pages and search entries. The
worker applies that write in the transaction that finishes the job, only while it still holds
the job's lease, so a result is written once, by the worker that owns the job.

The extraction library (pypdfium2, Tesseract) is imported only here, and only when a job
runs: the API processes never load it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, RowMapping

from patientpdf import storage, webhooks
from patientpdf.context import Context
from patientpdf.db import extractions
from patientpdf.db import jobs as job_queue
from patientpdf.db import repositories as repo
from patientpdf.errors import NotFound, Unavailable
from patientpdf.security.ids import is_pdf_id
from patientpdf.services.clock import now_utc
from patientpdf.services.matching import page_terms
from patientpdf.settings import Settings

if TYPE_CHECKING:
    from patientpdf.processing import DocumentExtraction, ExtractionLimits

log = logging.getLogger(__name__)

ResultWrite = Callable[[Connection], None]
WORK_FILE_PREFIX = "extract-"


class ProcessingFailed(Exception):
    """The PDF cannot be processed, and trying again would not change that."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def enqueue(conn: Connection, settings: Settings, account_id: int, pdf_id: str) -> None:
    """Queue the PDF's processing inside the transaction that records the PDF."""
    job_queue.enqueue(conn, job_queue.PROCESS_PDF, pdf_id, account_id, now_utc(), settings.job_max_attempts)


def extraction_limits(settings: Settings) -> ExtractionLimits:
    from patientpdf.processing import ExtractionLimits

    return ExtractionLimits(
        max_pages=settings.extract_max_pages,
        page_timeout_seconds=settings.extract_page_timeout_seconds,
        total_timeout_seconds=settings.extract_total_timeout_seconds,
        max_memory_bytes=settings.extract_max_memory_mb * 1024 * 1024,
        nice=settings.extract_nice,
        dpi=settings.extract_dpi,
        max_pixels=settings.extract_max_pixels,
    )


def process_pdf(ctx: Context, account_id: int, pdf_id: str, lease_owner: str) -> ResultWrite:
    """Extract the PDF (blocking, bounded) and return the write of its result. Storage or
    database trouble raises as it is (the job is retried); a PDF that cannot be processed
    raises ProcessingFailed (it is not)."""
    from patientpdf.processing import ExtractionFailed, extract_document

    with ctx.db.read() as conn:
        row = repo.get_pdf(conn, account_id, pdf_id)
    if row is None:
        return lambda _conn: None  # deleted since it was queued: nothing to do
    started = time.monotonic()
    with fetched_copy(ctx, row) as path:
        try:
            document = extract_document(path, extraction_limits(ctx.settings))
        except ExtractionFailed as exc:
            raise ProcessingFailed(exc.code, exc.detail) from exc
    log.info("extracted %s: %d pages in %.2f s", pdf_id, len(document.pages), time.monotonic() - started)
    extraction, pages = _rows(row, document, lease_owner)
    terms = [page_terms(page["words"]) for page in pages]

    def write(conn: Connection) -> None:
        extractions.replace(conn, extraction, pages, terms)
        webhooks.emit(conn, account_id, webhooks.PDF_PROCESSED, webhooks.processed_data(row, extraction), now_utc())

    return write


def forget(conn: Connection, account_id: int | None, pdf_id: str | None) -> None:
    """A PDF whose processing failed for good keeps no older extraction (reprocessing), and
    its pdf.processing_failed event is written in the transaction that fails the job."""
    if account_id is None or pdf_id is None:
        return
    extractions.delete(conn, account_id, pdf_id)
    pdf = repo.get_pdf(conn, account_id, pdf_id)
    job = job_queue.for_subject(conn, job_queue.PROCESS_PDF, pdf_id)
    if pdf is not None and job is not None:
        data = webhooks.processing_failed_data(pdf, job["error"], job["finished_at"])
        webhooks.emit(conn, account_id, webhooks.PDF_PROCESSING_FAILED, data, now_utc())


class fetched_copy:
    """The PDF's bytes in a private file under <data dir>/work, checked against its SHA-256
    (for the engines, which need a file: extraction here, page images in services/viewing)."""

    def __init__(self, ctx: Context, row: RowMapping) -> None:
        self._ctx, self._row = ctx, row
        self._path: Path | None = None

    def __enter__(self) -> Path:
        work_dir = work_directory(self._ctx.settings)
        fd, name = tempfile.mkstemp(dir=work_dir, prefix=f"{WORK_FILE_PREFIX}{os.getpid()}-", suffix=".pdf")
        self._path = Path(name)
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in self._ctx.storage.open_range(self._row["storage_key"], 0, self._row["size"]):
                    digest.update(chunk)
                    handle.write(chunk)
        except storage.StorageError as exc:
            self._path.unlink(missing_ok=True)
            raise Unavailable("The PDF's bytes could not be read from the storage; retried later.", code="storage_unavailable") from exc
        except BaseException:
            self._path.unlink(missing_ok=True)
            raise
        if digest.hexdigest() != self._row["sha256"]:
            self._path.unlink(missing_ok=True)
            raise ProcessingFailed("blob_corrupt", "The stored bytes do not match the PDF's SHA-256; run `patientpdf storage check`.")
        return self._path

    def __exit__(self, *_exc: object) -> None:
        if self._path is not None:
            self._path.unlink(missing_ok=True)


def work_directory(settings: Settings) -> Path:
    path = settings.data_dir / "work"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def sweep_work_files(settings: Settings) -> None:
    """Remove files that a killed worker left (their process is gone)."""
    for path in work_directory(settings).glob(f"{WORK_FILE_PREFIX}*"):
        pid = path.name[len(WORK_FILE_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rows(pdf: RowMapping, document: DocumentExtraction, lease_owner: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    owner = {"pdf_id": pdf["id"], "account_id": pdf["account_id"], "patient_id": pdf["patient_id"]}
    pages = [
        owner
        | {
            "page": page.page,
            "width": round(page.width, 1),
            "height": round(page.height, 1),
            "rotation": page.rotation,
            "source": page.source,
            "text": page.text,
            "words": [
                [word.text, round(word.x1, 1), round(word.y1, 1), round(word.x2, 1), round(word.y2, 1),
                 None if word.confidence is None else round(word.confidence, 1)]
                for word in page.words
            ],
        }  # fmt: skip
        for page in document.pages
    ]
    extraction = owner | {
        "page_count": document.page_count,
        "pages_ocr": sum(1 for page in document.pages if page.source == "ocr"),
        "engines": dict(document.engines),
        "complete": document.complete,
        "note": document.note,
        "written_by": lease_owner,
        "finished_at": now_utc(),
    }
    return extraction, pages


# reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Processing:
    """Where a PDF's processing stands: its job, and its extraction once there is one."""

    status: str  # queued, running, done, failed
    error: str | None
    finished_at: Any
    extraction: RowMapping | None


def _processing(job: RowMapping | None, extraction: RowMapping | None) -> Processing:
    if job is None:  # cannot happen for a committed PDF; said plainly if it ever does
        return Processing("failed", "no_job", None, extraction)
    return Processing(job["status"], job["error"] if job["status"] == "failed" else None, job["finished_at"], extraction)


def processing_of(conn: Connection, account_id: int, pdf_ids: Sequence[str]) -> dict[str, Processing]:
    """Each PDF's processing, in the caller's read (PDF lists)."""
    jobs = job_queue.for_subjects(conn, job_queue.PROCESS_PDF, pdf_ids)
    found = extractions.of_pdfs(conn, account_id, pdf_ids)
    return {pdf_id: _processing(jobs.get(pdf_id), found.get(pdf_id)) for pdf_id in pdf_ids}


@dataclass(frozen=True)
class Extraction:
    pdf: RowMapping
    processing: Processing
    pages: Sequence[RowMapping]  # empty until an extraction exists


def _pdf_not_found(pdf_id: str) -> NotFound:
    return NotFound(f"PDF not found: no PDF with id {pdf_id!r} in your account.", code="pdf_not_found")


def extraction_of(ctx: Context, account_id: int, pdf_id: str, with_words: bool = True) -> Extraction:
    """The PDF, its processing and (once extracted) its pages, in one read. While a PDF is
    processed again, its previous extraction is served until the new one replaces it."""
    if not is_pdf_id(pdf_id):
        raise _pdf_not_found(pdf_id)
    with ctx.db.read() as conn:
        pdf = repo.get_pdf(conn, account_id, pdf_id)
        if pdf is None:
            raise _pdf_not_found(pdf_id)
        processing = processing_of(conn, account_id, [pdf_id])[pdf_id]
        pages = extractions.pages(conn, account_id, pdf_id, with_words) if processing.extraction is not None else []
    return Extraction(pdf, processing, pages)


def newest_extraction_of_patient(conn: Connection, account_id: int, patient_id: int) -> Extraction | None:
    """The patient's newest processed PDF with its pages' text (no words), in the caller's read."""
    extraction = extractions.newest_of_patient(conn, account_id, patient_id)
    if extraction is None:
        return None
    pdf = repo.get_pdf(conn, account_id, extraction["pdf_id"])
    if pdf is None:
        return None
    processing = processing_of(conn, account_id, [pdf["id"]])[pdf["id"]]
    return Extraction(pdf, processing, extractions.pages(conn, account_id, pdf["id"], with_words=False))


def reprocess(ctx: Context, account_id: int, pdf_id: str) -> RowMapping:
    """Queue the PDF's processing again (a worker running it now loses its lease)."""
    if not is_pdf_id(pdf_id):
        raise _pdf_not_found(pdf_id)
    with ctx.db.write() as conn:
        pdf = repo.get_pdf(conn, account_id, pdf_id)
        if pdf is None:
            raise _pdf_not_found(pdf_id)
        job = job_queue.for_subject(conn, job_queue.PROCESS_PDF, pdf_id)
        if job is None:
            enqueue(conn, ctx.settings, account_id, pdf_id)
        else:
            job_queue.requeue(conn, job["id"], now_utc())
    return pdf


def delete_with_pdf(conn: Connection, account_id: int, pdf_id: str) -> None:
    """In the transaction that deletes the PDF: its jobs, extraction and search entries.

    The jobs first: on PostgreSQL that waits for a worker's finish in progress (it holds the
    job's row), so the pages it commits are seen and deleted here; a finish that comes later
    finds no job and writes nothing."""
    job_queue.delete_for_subject(conn, account_id, pdf_id)
    extractions.delete(conn, account_id, pdf_id)
