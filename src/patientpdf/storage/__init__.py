"""Where PDF bytes live. One contract (`BlobStorage`), one backend per URL scheme."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from patientpdf.storage.base import BlobInfo, BlobStorage, StorageError, StorageFull, StorageUnavailable
from patientpdf.storage.local import LocalStorage

__all__ = ["BlobInfo", "BlobStorage", "StorageError", "StorageFull", "StorageUnavailable", "LocalStorage", "open_storage"]


def open_storage(url: str) -> BlobStorage:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(unquote(parsed.path))
    raise ValueError(f"unsupported storage URL scheme {parsed.scheme!r}: use file:///path")
