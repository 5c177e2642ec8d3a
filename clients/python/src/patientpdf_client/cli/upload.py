"""`ppdf upload`: many files, `--jobs` at a time, each sent once whatever happens to the network
or to this process."""

from __future__ import annotations

import os
import threading
import uuid
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patientpdf_client._body import UploadCancelled, sha256_file
from patientpdf_client._retry import RetryEvent
from patientpdf_client.cli.display import Display, FileResult, Summary
from patientpdf_client.cli.state import DONE, StateFile
from patientpdf_client.client import Client
from patientpdf_client.errors import AuthenticationError, PatientPdfError

# Refusals that hold for every file of the run: stop instead of refusing 3,000 files one by one.
STOP_CODES = frozenset({"insufficient_scope", "patient_forbidden", "patient_not_found"})
# 4xx that a retry later may pass: counted as failed, not refused (they were retried already).
TRANSIENT_4XX = frozenset({408, 409, 429})

OK, REFUSED, USAGE, FAILED, REJECTED, INTERRUPTED = 0, 1, 2, 3, 4, 130


def discover(paths: list[str]) -> list[Path]:
    """The files named, and every *.pdf under the folders named (recursively, hidden ones left
    out), each once, in a stable order. A path that does not exist raises FileNotFoundError."""
    found: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            found.append(real)

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.lower().endswith(".pdf") and not name.startswith("."):
                        add(Path(folder) / name)
        elif path.is_file():
            add(path)
        else:
            raise FileNotFoundError(raw)
    return found


@dataclass
class UploadRun:
    client: Client
    patient_id: int
    display: Display
    jobs: int = 4
    state: StateFile | None = None
    skip_existing: bool = False

    def __post_init__(self) -> None:
        self.cancel = threading.Event()
        self.stopped: PatientPdfError | None = None
        self.known: dict[str, str] = {}  # sha256 -> a PDF of the patient with those bytes
        self._known_lock = threading.Lock()
        self._same_bytes: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def run(self, files: list[Path]) -> tuple[Summary, int]:
        summary = Summary()
        if self.skip_existing:
            self.known = {pdf["sha256"]: pdf["id"] for pdf in self.client.list_pdfs(self.patient_id, page_size=1000)}
        sizes = {path: path.stat().st_size for path in files}
        self.display.start(len(files), sum(sizes.values()))
        pending = iter(files)
        interrupted = False
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="ppdf-upload") as pool:
            running: set[Future[FileResult]] = set()
            try:
                while True:
                    while len(running) < self.jobs and not self.cancel.is_set():
                        path = next(pending, None)
                        if path is None:
                            break
                        running.add(pool.submit(self.one, path, sizes[path]))
                    if not running:
                        break
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        summary.add(future.result())
            except KeyboardInterrupt:
                interrupted = True
                self.cancel.set()  # the bodies being sent stop at their next chunk
                for future in running:
                    summary.add(future.result())
        for path in pending:  # never started: stopped by a refusal of the whole run, or Ctrl-C
            result = FileResult(str(path), "failed", size=sizes[path], code="not_attempted", detail="the run stopped before this file")
            self.display.file_done(None, result)
            summary.add(result)
        if interrupted:
            code = INTERRUPTED
        elif self.stopped is not None:
            self.display.message(f"stopped: {self.stopped}")
            code = REJECTED
        elif summary.failed:
            code = FAILED
        elif summary.refused:
            code = REFUSED
        else:
            code = OK
        self.display.finish(summary, code)
        return summary, code

    def one(self, path: Path, size: int) -> FileResult:
        handle = self.display.file_started(str(path), size)
        result = FileResult(str(path), "failed", size=size)
        try:
            if self.cancel.is_set():
                result.code, result.detail = "not_attempted", "the run stopped before this file"
            else:
                self._send(path, result, handle)
        except OSError as exc:  # the file went away or cannot be read: nothing was sent
            result.code, result.detail = "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}"
        self.display.file_done(handle, result)
        return result

    def _send(self, path: Path, result: FileResult, handle: Any) -> None:
        sha256 = result.sha256 = sha256_file(path)
        earlier = self.state.lookup(str(path), sha256, self.patient_id) if self.state else None
        if earlier is not None and earlier["status"] in DONE:
            result.status, result.reason, result.pdf_id = "skipped", "already_uploaded", earlier.get("pdf_id")
            return
        # Copies of the same bytes in one run go one after the other, so --skip-existing sees the first.
        with self._same_bytes[sha256]:
            if self.skip_existing:
                with self._known_lock:
                    existing = self.known.get(sha256)
                if existing is not None:
                    result.status, result.reason, result.pdf_id = "skipped", "exists", existing
                    return
            key = earlier["idempotency_key"] if earlier else str(uuid.uuid4())
            record = {"path": str(path), "sha256": sha256, "size": result.size, "patient_id": self.patient_id, "idempotency_key": key}
            if self.state:
                self.state.append({**record, "status": "started"})

            def retried(event: RetryEvent) -> None:
                result.retries.append({"status": event.status, "code": event.code, "wait": round(event.wait, 2)})

            try:
                uploaded = self.client.upload_pdf(
                    self.patient_id, path, filename=path.name, idempotency_key=key, sha256=sha256,
                    progress=lambda sent, total: self.display.file_progress(handle, sent, total),
                    on_retry=retried, cancel=self.cancel,
                )  # fmt: skip
            except UploadCancelled:
                result.code, result.detail = "interrupted", "the run was interrupted while this file was sent"
            except PatientPdfError as exc:
                refused = exc.status is not None and 400 <= exc.status < 500 and exc.status not in TRANSIENT_4XX
                result.status = "refused" if refused else "failed"
                result.code, result.detail, result.request_id = exc.code, exc.detail, exc.request_id
                if isinstance(exc, AuthenticationError) or exc.code in STOP_CODES:
                    self.stopped = exc
                    self.cancel.set()
            else:
                result.status = "duplicate" if uploaded.get("duplicate_of") else "stored"
                result.pdf_id, result.duplicate_of = uploaded["id"], uploaded.get("duplicate_of")
                result.replayed = bool(uploaded.get("replayed"))
                with self._known_lock:
                    self.known.setdefault(sha256, uploaded["id"])
            result.attempts = len(result.retries) + 1
            if self.state and result.code != "interrupted":
                self.state.append({**record, "status": result.status, "pdf_id": result.pdf_id, "code": result.code})
