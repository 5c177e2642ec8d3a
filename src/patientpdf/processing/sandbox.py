"""The parent side of the sandbox: a child process per Extractor, killed when a page overruns.

A page that hangs the renderer, exhausts the child's address space or crashes PDFium costs
that page (source "none", said in the note) and a fresh child for the pages after it. The
document fails with ExtractionFailed only when no page at all could be extracted.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import (
    ENGINE_CRASHED,
    ERROR_CODES,
    ENGINE_UNAVAILABLE,
    MEMORY_LIMIT,
    TIMEOUT,
    DocumentExtraction,
    ExtractionFailed,
    ExtractionLimits,
    PageExtraction,
)
from .wire import PageData

# After this many pages failed (timeout, memory, crash) the document stops: a hostile file
# must not buy a fresh child process for every one of its pages.
MAX_PAGE_FAILURES = 3
# Starting Python and importing the engines; generous because the machine may be busy.
STARTUP_SECONDS = 60.0
# A long-lived child is replaced after this many documents or when it holds this much memory.
MAX_DOCUMENTS_PER_CHILD = 200
MAX_IDLE_RSS_BYTES = 200 << 20


# The largest line a child may send: a page is capped at 50,000 words in the child, a few MB.
MAX_MESSAGE_BYTES = 64 << 20


class _Timeout(Exception):
    pass


class _PageLost(Exception):
    """The child reported a page it could not finish and is gone."""


class _Garbled(Exception):
    """The child sent something that is not our protocol: treated as a crash of that page."""


class _Child:
    """One `python -m patientpdf.processing.child` process and the JSON lines it writes."""

    def __init__(self, max_memory_bytes: int, nice: int = 0) -> None:
        env = dict(os.environ)
        env["OMP_THREAD_LIMIT"] = "1"
        self.max_memory_bytes, self.nice = max_memory_bytes, nice
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "patientpdf.processing.child", str(max_memory_bytes), str(nice)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # engines' warnings may quote the document: not for logs
            env=env,
            close_fds=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._fd = self.proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._buffer = bytearray()
        self.peak_vm = 0
        self._next_sample = 0.0
        self.documents = 0
        self.rss = 0
        self.maxrss = 0  # peak RSS, known once the child has exited
        self.engines: dict[str, str] = {}

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None when the child has exited. _Timeout when the deadline passes."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                try:
                    message = json.loads(line)
                except ValueError:
                    raise _Garbled from None
                if not isinstance(message, dict):
                    raise _Garbled
                return message
            if len(self._buffer) > MAX_MESSAGE_BYTES:
                raise _Garbled
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout
            ready = self._selector.select(min(remaining, 0.1))
            now = time.monotonic()
            if now >= self._next_sample:
                self._next_sample = now + 0.05
                self._sample_memory()
            if ready:
                try:
                    chunk = os.read(self._fd, 1 << 20)
                except BlockingIOError:
                    continue
                if not chunk:
                    return None
                self._buffer += chunk

    def _sample_memory(self) -> None:
        try:
            with open(f"/proc/{self.proc.pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmSize:"):
                        self.peak_vm = max(self.peak_vm, int(line.split()[1]) * 1024)
                        break
        except (OSError, ValueError, IndexError):
            pass

    def death(self) -> tuple[str, str]:
        """Why the child is gone, once it is (a code of ExtractionFailed and a detail).

        Out of address space, PDFium and Tesseract abort rather than raise: a child that died
        near its limit (address space sampled while it ran, or its peak RSS) ran out of memory."""
        rc = self._reap()
        if self.peak_vm >= 0.75 * self.max_memory_bytes or self.maxrss >= 0.4 * self.max_memory_bytes:
            return MEMORY_LIMIT, f"the page needed more than the memory limit of {self.max_memory_bytes >> 20} MiB"
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            return ENGINE_CRASHED, f"the extraction engine crashed ({name})"
        return ENGINE_CRASHED, f"the extraction engine exited unexpectedly (status {rc})"

    def _reap(self) -> int:
        if self.proc.returncode is None:
            try:
                _, status, usage = os.wait4(self.proc.pid, 0)
            except ChildProcessError:
                return self.proc.wait()
            self.maxrss = usage.ru_maxrss * 1024
            self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        self._reap()
        self._close()

    def close(self) -> None:
        """Let an idle child go: it exits when its stdin closes."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        self._selector.close()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


@dataclass
class _Run:
    """The state of one document's extraction across the children it needs."""

    limits: ExtractionLimits
    deadline: float
    page_count: int | None = None
    engines: dict[str, str] = field(default_factory=dict)
    pages: list[PageExtraction] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # codes of failed pages

    @property
    def next_index(self) -> int:
        return len(self.pages)


class Extractor:
    """Extracts documents in a child process it keeps between documents. Not thread-safe:
    one per thread (extract_document keeps one per thread for you)."""

    def __init__(self) -> None:
        self._child: _Child | None = None
        self.last_child_maxrss = 0  # peak RSS of the child during the last document, bytes

    @property
    def child_pid(self) -> int | None:
        """The child process's id while one is running (for monitoring)."""
        return None if self._child is None else self._child.proc.pid

    def close(self) -> None:
        if self._child is not None:
            self._child.close()
            self._child = None

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_child(self, run: _Run) -> _Child:
        child = self._child
        if child is not None and (
            child.max_memory_bytes != run.limits.max_memory_bytes
            or child.nice != run.limits.nice
            or child.proc.poll() is not None
            or child.documents >= MAX_DOCUMENTS_PER_CHILD
            or child.rss > MAX_IDLE_RSS_BYTES
        ):
            child.kill()
            child = self._child = None
        if child is None:
            try:
                child = _Child(run.limits.max_memory_bytes, run.limits.nice)
            except OSError as exc:
                raise ExtractionFailed(ENGINE_UNAVAILABLE, f"cannot start the extraction process: {exc.strerror}") from None
            try:
                ready = child.read(min(run.deadline, time.monotonic() + STARTUP_SECONDS))
            except _Timeout:
                child.kill()
                raise ExtractionFailed(ENGINE_UNAVAILABLE, "the extraction process did not start in time") from None
            if ready is None or "ready" not in ready:
                code, detail = child.death()
                child.kill()
                raise ExtractionFailed(ENGINE_UNAVAILABLE, f"the extraction process did not start: {detail}")
            child.engines = {str(k): str(v) for k, v in ready["ready"].items()}
            self._child = child
        return child

    def extract(self, path: Path, limits: ExtractionLimits) -> DocumentExtraction:
        if not path.is_file():
            # not the PDF's fault (storage, a race with a delete): the caller may try again
            raise FileNotFoundError(f"no file to extract at {path}")
        run = _Run(limits, time.monotonic() + limits.total_timeout_seconds)
        self.last_child_maxrss = 0
        while True:
            if run.page_count is not None and run.next_index >= run.page_count:
                break
            if time.monotonic() >= run.deadline:
                self._stop_for_time(run)
                break
            if len(run.failures) >= MAX_PAGE_FAILURES:
                assert run.page_count is not None
                run.notes.append(
                    f"stopped after {len(run.failures)} pages failed: pages {run.next_index + 1}-{run.page_count} not extracted"
                )
                break
            try:
                if self._run_child(path, run):
                    break
            except ExtractionFailed as exc:
                if exc.code != ENGINE_UNAVAILABLE or not run.pages:
                    raise
                # no fresh child after a failed page: keep the pages already done
                run.notes.append(f"stopped: {exc.detail}")
                break
        return self._result(run)

    def _run_child(self, path: Path, run: _Run) -> bool:
        """Feed pages from one child until the document ends (True) or a page fails (False)."""
        child = self._ensure_child(run)
        run.engines = dict(child.engines)
        limits = run.limits
        child.send({"path": str(path), "limits": limits.to_json(), "first": run.next_index})
        current: int | None = None  # the 1-based page being worked on
        frame = (0.0, 0.0, 0)  # its width, height and rotation (unknown: 0), for the placeholder if it fails
        try:
            while True:
                started = time.monotonic()
                message = child.read(min(run.deadline, started + limits.page_timeout_seconds))
                if message is None:
                    code, detail = child.death()
                    child.kill()
                    self._child = None
                    self._page_failed(run, _at(run, current), frame, code, detail)
                    return False
                try:
                    done, current, frame = self._take(message, run, child, current, frame)
                except (KeyError, TypeError, ValueError, AttributeError):
                    raise _Garbled from None
                if done:
                    return True
        except _PageLost:
            return False
        except _Garbled:
            child.kill()
            self._child = None
            self._page_failed(run, _at(run, current), frame, ENGINE_CRASHED, "the extraction process sent a malformed answer")
            return False
        except _Timeout:
            child.kill()
            self._child = None
            if time.monotonic() >= run.deadline:
                self._stop_for_time(run)
                if not any(p.source != "none" for p in run.pages):
                    raise ExtractionFailed(TIMEOUT, f"no page finished within the total time limit of {limits.total_timeout_seconds:g} s") from None
                return True
            if run.page_count is None:
                raise ExtractionFailed(TIMEOUT, f"the PDF did not open within {limits.page_timeout_seconds:g} s") from None
            self._page_failed(run, _at(run, current), frame, TIMEOUT, f"took longer than the page time limit of {limits.page_timeout_seconds:g} s")
            return False

    def _take(
        self, message: dict[str, Any], run: _Run, child: _Child, current: int | None, frame: tuple[float, float, int]
    ) -> tuple[bool, int | None, tuple[float, float, int]]:
        """Apply one message of the child to the run: (the document is done, the page being read, its size)."""
        limits = run.limits
        if "error" in message:
            code = str(message["error"])
            if code not in ERROR_CODES:
                raise _Garbled
            if current is None or message.get("page") in (None, 0):
                if code == MEMORY_LIMIT:  # the child exits after a MemoryError
                    child.kill()
                    self._child = None
                raise ExtractionFailed(code, str(message["detail"]))
            child.kill()
            self._child = None
            self._page_failed(run, current, frame, code, f"the page needed more than the memory limit of {limits.max_memory_bytes >> 20} MiB")
            raise _PageLost
        if "open" in message:
            count = int(message["open"])
            if not 1 <= count <= limits.max_pages:
                raise _Garbled
            run.page_count = count
        elif "start" in message:
            current = int(message["start"])
            if current != run.next_index + 1:
                raise _Garbled
            frame = (float(message.get("width", 0.0)), float(message.get("height", 0.0)), 0)
        elif "page" in message:
            page = PageData.from_wire(message["page"]).extraction()
            if page.page != run.next_index + 1:
                raise _Garbled
            run.pages.append(page)
            if message.get("note"):
                run.notes.append(str(message["note"]))
            current = None
        elif "end" in message:
            child.documents += 1
            child.rss = int(message.get("rss", 0))
            self.last_child_maxrss = max(self.last_child_maxrss, int(message.get("maxrss", 0)))
            return True, current, frame
        return False, current, frame

    def _page_failed(self, run: _Run, current: int | None, frame: tuple[float, float, int], code: str, detail: str) -> None:
        if current is None or run.page_count is None:
            raise ExtractionFailed(code, detail)  # the document itself, before any page
        # Keep the numbering dense: a placeholder for the lost page.
        while run.next_index < current - 1:  # pragma: no cover - pages arrive in order
            run.pages.append(PageExtraction(run.next_index + 1, 0.0, 0.0, 0, "none", "", ()))
        run.pages.append(PageExtraction(current, frame[0], frame[1], frame[2], "none", "", ()))
        run.notes.append(f"page {current}: {detail}")
        run.failures.append(code)

    @staticmethod
    def _stop_for_time(run: _Run) -> None:
        if run.page_count is not None and run.next_index < run.page_count:
            run.notes.append(
                f"stopped by the total time limit of {run.limits.total_timeout_seconds:g} s: "
                f"pages {run.next_index + 1}-{run.page_count} not extracted"
            )

    def _result(self, run: _Run) -> DocumentExtraction:
        if run.page_count is None:
            raise ExtractionFailed(TIMEOUT, "the PDF did not open within the total time limit")
        if not any(p.source != "none" for p in run.pages):
            first = run.failures[0] if run.failures else TIMEOUT
            raise ExtractionFailed(first, "; ".join(run.notes) or "no page could be extracted")
        note = "; ".join(run.notes) or None
        complete = note is None and len(run.pages) == run.page_count
        return DocumentExtraction(run.page_count, tuple(run.pages), run.engines, complete, note)


def _at(run: _Run, current: int | None) -> int | None:
    """The page a failure belongs to: the one being read, or between pages the next one
    (None before the document opened: the document itself failed)."""
    if current is None and run.page_count is not None:
        return run.next_index + 1
    return current


_local = threading.local()
_open: weakref.WeakSet[Extractor] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for extractor in list(_open):
        extractor.close()


def extract_document(path: Path, limits: ExtractionLimits) -> DocumentExtraction:
    """Extract in a sandboxed child process (kept per thread between documents). Raises ExtractionFailed."""
    extractor: Extractor | None = getattr(_local, "extractor", None)
    if extractor is None or getattr(_local, "pid", None) != os.getpid():
        extractor = Extractor()  # a forked process must not share its parent's child
        _open.add(extractor)
        _local.extractor = extractor
        _local.pid = os.getpid()
    return extractor.extract(path, limits)


def release_extractor() -> None:
    """Stop the calling thread's kept child, e.g. when a worker thread ends before its process."""
    extractor: Extractor | None = getattr(_local, "extractor", None)
    if extractor is not None and getattr(_local, "pid", None) == os.getpid():
        extractor.close()
    _local.extractor = None
