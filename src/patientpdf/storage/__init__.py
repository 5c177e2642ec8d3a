"""Where PDF bytes live. One contract (`BlobStorage`), one backend per URL scheme."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from patientpdf.storage.base import (
    BlobInfo,
    BlobStorage,
    StorageError,
    StorageFull,
    StorageUnavailable,
    UnfinishedUpload,
    object_headers,
)
from patientpdf.storage.local import LocalStorage

__all__ = [
    "BlobInfo",
    "BlobStorage",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "UnfinishedUpload",
    "LocalStorage",
    "object_headers",
    "open_storage",
]


if TYPE_CHECKING:
    from patientpdf.settings import Settings


def open_storage(url: str, settings: "Settings | None" = None) -> BlobStorage:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(unquote(parsed.path))
    if parsed.scheme == "s3":
        from patientpdf.storage.s3 import S3Storage  # boto3 is heavy: loaded only when used

        if not parsed.netloc:
            raise ValueError("an S3 storage URL needs a bucket: s3://bucket[/prefix]")
        return S3Storage.from_settings(parsed.netloc, parsed.path.strip("/"), settings)
    raise ValueError(f"unsupported storage URL scheme {parsed.scheme!r}: use file:///path or s3://bucket/prefix")
