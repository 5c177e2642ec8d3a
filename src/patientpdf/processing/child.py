"""The sandboxed child: `python -m patientpdf.processing.child MAX_MEMORY_BYTES`.

It limits its own address space, then serves requests read from stdin, one JSON line each,
and answers with JSON lines on the stdout it was given (C libraries' output goes to stderr):

  <- {"ready": {engines}}                                  once, at start
  -> {"path": "...", "limits": {...}, "first": 0}          one per document (first: the page to start at)
  <- {"open": page_count} | {"error": code, "detail": ...}
  <- {"start": n, "width", "height"}  then  {"page": {...page json...}, "note": str | null}   for each page n (1-based)
  <- {"end": true, "maxrss": bytes}

On MemoryError it says so and exits: the parent starts a fresh child for the next page.
A watchdog thread exits the child if its parent goes away or a page runs far past its limit,
so an orphan never spins on.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

# A page with more words than this is hostile or broken; the rest of its words are dropped.
MAX_WORDS_PER_PAGE = 50_000
MAX_TEXT_PER_PAGE = 1_000_000


class Watchdog(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="extraction-watchdog", daemon=True)
        self.parent = os.getppid()
        self.deadline: float | None = None

    def run(self) -> None:
        while True:
            time.sleep(0.25)
            if os.getppid() != self.parent:
                os._exit(70)
            deadline = self.deadline
            if deadline is not None and time.monotonic() > deadline:
                os._exit(71)


def _send(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":"), ensure_ascii=False))
    out.write("\n")
    out.flush()


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def serve(out: IO[str], watchdog: Watchdog) -> None:
    from .engine import PageReader, engine_versions, open_document, read_page, unread_page
    from .model import MEMORY_LIMIT, ExtractionFailed, ExtractionLimits

    _send(out, {"ready": engine_versions()})
    for line in sys.stdin:
        request = json.loads(line)
        limits = ExtractionLimits.from_json(request["limits"])
        first = int(request.get("first", 0))
        page_number = 0
        try:
            watchdog.deadline = time.monotonic() + 2 * limits.page_timeout_seconds + 10
            try:
                doc = open_document(Path(request["path"]), limits)
            except ExtractionFailed as exc:
                _send(out, {"error": exc.code, "detail": exc.detail})
                continue
            reader = PageReader(doc, limits)
            try:
                count = len(doc)
                _send(out, {"open": count})
                for index in range(first, count):
                    page_number = index + 1
                    width, height = reader.size(index)
                    _send(out, {"start": page_number, "width": round(width, 1), "height": round(height, 1)})
                    watchdog.deadline = time.monotonic() + 2 * limits.page_timeout_seconds + 10
                    try:
                        page, note = read_page(reader, index)
                    except MemoryError:
                        raise
                    except Exception as exc:  # an engine bug costs this page, not the document
                        page = unread_page(reader, index)
                        note = f"page {page_number}: the extraction engine failed ({type(exc).__name__})"
                    wire = page.to_wire()
                    if len(page.words) > MAX_WORDS_PER_PAGE or len(page.text) > MAX_TEXT_PER_PAGE:
                        note = f"page {page_number}: more than {MAX_WORDS_PER_PAGE} words; the rest were dropped"
                        wire = replace(
                            page,
                            text=page.text[:MAX_TEXT_PER_PAGE],
                            words=page.words[:MAX_WORDS_PER_PAGE],
                            boxes=page.boxes[: 4 * MAX_WORDS_PER_PAGE],
                            confidences=None if page.confidences is None else page.confidences[:MAX_WORDS_PER_PAGE],
                        ).to_wire()
                    _send(out, {"page": wire, "note": note})
            finally:
                reader.close()
            _send(out, {"end": True, "maxrss": _maxrss(), "rss": _rss()})
        except MemoryError:
            _send(out, {"error": MEMORY_LIMIT, "detail": "out of memory", "page": page_number})
            out.flush()
            os._exit(3)
        finally:
            watchdog.deadline = None


def main(argv: list[str]) -> int:
    max_memory, nice = int(argv[1]), int(argv[2]) if len(argv) > 2 else 0
    # Rendering and OCR take only the CPU that requests leave; the worker that holds database
    # locks keeps its normal priority (a lock holder at nice 19 would stall the uploads).
    if nice > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # The protocol owns the original stdout; anything PDFium or Tesseract print goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    watchdog = Watchdog()
    watchdog.start()
    serve(out, watchdog)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
