"""How `ppdf upload` shows its work: progress bars on a terminal, one human line per file with
--no-progress, or one JSON line per file (--json, or stdout is not a terminal)."""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn, TransferSpeedColumn


@dataclass
class FileResult:
    path: str
    status: str  # stored, duplicate, skipped, refused, failed
    size: int | None = None
    sha256: str | None = None
    pdf_id: str | None = None
    duplicate_of: str | None = None
    replayed: bool = False
    reason: str | None = None  # why skipped: already_uploaded (resume) or exists (skip-existing)
    code: str | None = None
    detail: str | None = None
    request_id: str | None = None
    attempts: int = 0
    retries: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Summary:
    files: int = 0
    stored: int = 0
    duplicate: int = 0
    skipped: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def add(self, result: FileResult) -> None:
        self.files += 1
        if result.status in ("refused", "failed"):
            getattr(self, result.status)[result.code or "unknown"] += 1
        else:
            setattr(self, result.status, getattr(self, result.status) + 1)

    def as_json(self) -> dict[str, Any]:
        return {
            "files": self.files, "stored": self.stored, "duplicate": self.duplicate, "skipped": self.skipped,
            "refused": sum(self.refused.values()), "refused_codes": dict(self.refused),
            "failed": sum(self.failed.values()), "failed_codes": dict(self.failed),
        }  # fmt: skip

    def line(self) -> str:
        def counted(name: str, codes: Counter[str]) -> str:
            total = sum(codes.values())
            return f"{total} {name}" + (" (" + ", ".join(f"{code} {n}" for code, n in codes.most_common()) + ")" if total else "")

        return (
            f"{self.files} files: {self.stored} stored, {self.duplicate} duplicate, {self.skipped} skipped, "
            f"{counted('refused', self.refused)}, {counted('failed', self.failed)}"
        )


def human(result: FileResult) -> str:
    status = f"{result.status:<9}"
    if result.status in ("stored", "duplicate"):
        extra = f"{result.pdf_id}" + (f" (same bytes as {result.duplicate_of})" if result.duplicate_of else "")
        extra += " (answer of an earlier attempt)" if result.replayed else ""
    elif result.status == "skipped":
        extra = f"{result.reason}" + (f" as {result.pdf_id}" if result.pdf_id else "")
    else:
        extra = f"{result.code}: {result.detail}"
    return f"{status} {result.path}  {extra}"


class Display:
    """The JSON lines flavour; the others override what they show."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self._lock = threading.Lock()

    def start(self, files: int, total_bytes: int) -> None:
        pass

    def file_started(self, path: str, size: int) -> Any:
        return None

    def file_progress(self, handle: Any, sent: int, total: int) -> None:
        pass

    def file_done(self, handle: Any, result: FileResult) -> None:
        self.emit(asdict(result))

    def finish(self, summary: Summary, exit_code: int) -> None:
        self.emit({"summary": summary.as_json(), "exit_code": exit_code})

    def message(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def emit(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()


class LineDisplay(Display):
    """One line per file, then the summary: for a terminal with --no-progress."""

    def file_done(self, handle: Any, result: FileResult) -> None:
        with self._lock:
            print(human(result), file=self.out, flush=True)

    def finish(self, summary: Summary, exit_code: int) -> None:
        print(summary.line(), file=self.out, flush=True)


class ProgressDisplay(Display):
    """A bar per file being sent and one for the whole run (bytes and files)."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        super().__init__(out)
        self.console = Console(file=out)
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.files = 0
        self.done_files = 0
        self.done_bytes = 0
        self.in_flight: dict[TaskID, int] = {}
        self.overall: TaskID | None = None

    def _overall_text(self) -> str:
        return f"[bold]overall[/bold] {self.done_files}/{self.files} files"

    def start(self, files: int, total_bytes: int) -> None:
        self.files = files
        self.overall = self.progress.add_task(self._overall_text(), total=total_bytes or 1)
        self.progress.start()

    def file_started(self, path: str, size: int) -> Any:
        name = path if len(path) <= 40 else "…" + path[-39:]
        with self._lock:
            task = self.progress.add_task(name, total=size or 1)
            self.in_flight[task] = 0
        return task

    def _refresh_overall(self) -> None:
        assert self.overall is not None
        self.progress.update(
            self.overall, completed=self.done_bytes + sum(self.in_flight.values()), description=self._overall_text()
        )

    def file_progress(self, handle: Any, sent: int, total: int) -> None:
        task = TaskID(handle)
        with self._lock:
            self.in_flight[task] = sent
            self.progress.update(task, completed=sent)
            self._refresh_overall()

    def file_done(self, handle: Any, result: FileResult) -> None:
        with self._lock:
            if handle is not None:
                task = TaskID(handle)
                self.in_flight.pop(task, None)
                self.progress.remove_task(task)
            self.done_files += 1
            self.done_bytes += result.size or 0
            self._refresh_overall()
            if result.status in ("refused", "failed"):
                self.console.print(human(result), markup=False, highlight=False)

    def finish(self, summary: Summary, exit_code: int) -> None:
        with self._lock:
            self._refresh_overall()
        self.progress.stop()
        self.console.print(summary.line(), markup=False, highlight=False)

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)
