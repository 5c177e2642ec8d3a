"""The storage contract: put, read a byte range, stat, delete, list, ping.

Backends translate their own failures into the three errors below, so callers handle one type.
Keys come from generated PDF ids, never from anything a client sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    """Any storage failure."""


class StorageFull(StorageError):
    """No space left for the bytes."""


class StorageUnavailable(StorageError):
    """The backend cannot be reached or answered with an error."""


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int


class BlobStorage(Protocol):
    def put_file(self, key: str, source: Path) -> None:
        """Store the complete file `source` under `key`, durably, then remove `source`.

        Either the whole file is stored under `key` or nothing is; `source` is gone either way
        only on success (the caller cleans it up on failure).
        """

    def open_range(self, key: str, start: int, length: int) -> Iterator[bytes]:
        """Yield `length` bytes of the blob from offset `start`, in chunks."""

    def stat(self, key: str) -> BlobInfo | None: ...

    def delete(self, key: str) -> None:
        """Remove the blob; removing a missing blob is not an error."""

    def iter_keys(self) -> Iterator[str]: ...

    def ping(self) -> None:
        """Raise StorageUnavailable unless the backend can store and read now."""

    def presigned_url(self, key: str, ttl_seconds: int, filename: str) -> str | None:
        """A URL of the store itself that serves the blob for `ttl_seconds`, or None if it has none."""
