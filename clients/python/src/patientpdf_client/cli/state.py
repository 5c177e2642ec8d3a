"""The `--resume` state file: one JSON line per event, appended and synced to disk before the
event's effect can matter, so a crash at any point (SIGKILL included) leaves a file that says
what was done.

Before a file is sent, a `started` line records its path, SHA-256 and the Idempotency-Key it
is sent with; after, a line records the outcome. A re-run skips the files that were stored and
sends the others again with the same key, so an upload whose answer was lost in the crash
is answered with its first result (the server keeps keys 24 hours) instead of stored twice.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

DONE = frozenset({"stored", "duplicate", "skipped"})


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str, int], dict[str, Any]] = {}
        if path.exists():
            raw = path.read_bytes()
            for line in raw.splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash mid-write: its event is redone
                if isinstance(record, dict) and {"path", "sha256", "patient_id"} <= record.keys():
                    self._latest[(record["path"], record["sha256"], record["patient_id"])] = record
        self._file = open(path, "ab")
        if self._file.tell() and not path.read_bytes().endswith(b"\n"):
            self._file.write(b"\n")  # end a torn line so the next record stands alone

    def lookup(self, path: str, sha256: str, patient_id: int) -> dict[str, Any] | None:
        """The latest record of this file with these bytes for this patient."""
        return self._latest.get((path, sha256, patient_id))

    def append(self, record: dict[str, Any]) -> None:
        record = {**record, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._latest[(record["path"], record["sha256"], record["patient_id"])] = record

    def close(self) -> None:
        self._file.close()
