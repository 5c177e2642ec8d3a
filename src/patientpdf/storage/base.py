"""The storage contract: put, read a byte range, stat, delete, list, ping, and the upkeep of
what a store keeps beside the bytes (download headers, unfinished multipart uploads).

Backends translate their own failures into the three errors below, so callers handle one type.
Keys come from generated PDF ids, never from anything a client sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from patientpdf.content_disposition import inline_disposition

PDF_CONTENT_TYPE = "application/pdf"
PRIVATE_NO_STORE = "private, no-store"


class StorageError(Exception):
    """Any storage failure."""


class StorageFull(StorageError):
    """No space left for the bytes."""


class StorageUnavailable(StorageError):
    """The backend cannot be reached or answered with an error."""


def object_headers(filename: str) -> dict[str, str]:
    """The headers a store that serves the bytes itself (a presigned URL) must answer with.

    They live on the object, so a presigned URL needs no `response-*` parameters and carries
    no file name. All ASCII: S3 metadata travels in HTTP headers, and a byte outside ASCII
    comes back garbled (`é` stored through boto3 reads back from SeaweedFS as `Ã©`);
    `inline_disposition` percent-encodes the exact name in `filename*` (RFC 5987).
    """
    return {"Content-Type": PDF_CONTENT_TYPE, "Content-Disposition": inline_disposition(filename), "Cache-Control": PRIVATE_NO_STORE}


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    # The download headers stored with the blob, for a backend that serves bytes itself;
    # None for one that does not (the API sends them).
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class UnfinishedUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime


class BlobStorage(Protocol):
    def put_file(self, key: str, source: Path, filename: str) -> None:
        """Store the complete file `source` under `key`, durably, then remove `source`.

        `filename` is the PDF's stored name, for the download headers of a backend that
        serves bytes itself (see `object_headers`); it never becomes part of a key.
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

    def presigned_url(self, key: str, ttl_seconds: int) -> str | None:
        """A URL of the store itself that serves the blob for `ttl_seconds`, or None if it has none.

        It names only the blob: the headers it is served with were stored with it."""

    def rewrite_headers(self, key: str, filename: str) -> None:
        """Store `object_headers(filename)` with an existing blob, its bytes unchanged
        (nothing to do for a backend whose `stat` reports no headers)."""

    def unfinished_uploads(self, older_than_seconds: float) -> list[UnfinishedUpload]:
        """Multipart uploads under this storage that started more than `older_than_seconds` ago."""

    def abort_upload(self, upload: UnfinishedUpload) -> None:
        """Abort one; aborting one that is already gone is not an error."""

    def close(self) -> None:
        """Stop any background work (a pending abort is then left to the next start)."""
