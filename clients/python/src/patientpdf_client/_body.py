"""The upload's multipart body, streamed from disk one chunk at a time (memory stays flat
whatever the file's size), with its exact Content-Length so the server can refuse an
oversized upload before it is sent."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

CHUNK = 1024 * 1024

Progress = Callable[[int, int], None]
"""Called with (bytes sent, total bytes) as the file goes out; starts again from 0 on a retry."""


class UploadCancelled(Exception):
    """The caller's cancel event was set while the file was being sent."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def repr_digest(sha256_hex: str) -> str:
    """RFC 9530 Repr-Digest of the whole file."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"


class UploadBody:
    """One file as a multipart/form-data body: the `filename` field, then the `file` part."""

    def __init__(self, source: str | os.PathLike[str] | bytes, filename: str | None) -> None:
        if isinstance(source, bytes):
            self.data: bytes | None = source
            self.path: Path | None = None
            self.size = len(source)
            default_name = "upload.pdf"
        else:
            self.data = None
            self.path = Path(source)
            self.size = self.path.stat().st_size
            default_name = self.path.name
        self.filename = filename or default_name
        self.boundary = secrets.token_hex(16)
        name = self.filename.encode("utf-8", "surrogateescape")
        self.head = (
            f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"filename\"\r\n\r\n".encode()
            + name
            + f"\r\n--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload.pdf\"\r\n"
            "Content-Type: application/pdf\r\n\r\n".encode()
        )
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def content_length(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def sha256(self) -> str:
        if self.data is not None:
            return hashlib.sha256(self.data).hexdigest()
        assert self.path is not None
        return sha256_file(self.path)

    def chunks(self, progress: Progress | None, cancel: threading.Event | None) -> Iterator[bytes]:
        yield self.head
        sent = 0
        if progress:
            progress(0, self.size)
        for chunk in self._file_chunks():
            if cancel is not None and cancel.is_set():
                raise UploadCancelled("upload cancelled")
            yield chunk
            sent += len(chunk)
            if progress:
                progress(sent, self.size)
        yield self.tail

    async def achunks(self, progress: Progress | None, cancel: threading.Event | None) -> AsyncIterator[bytes]:
        import asyncio

        yield self.head
        sent = 0
        if progress:
            progress(0, self.size)
        if self.data is not None:
            for start in range(0, self.size, CHUNK):
                yield self.data[start : start + CHUNK]
                sent = min(self.size, start + CHUNK)
                if progress:
                    progress(sent, self.size)
        else:
            assert self.path is not None
            file = open(self.path, "rb")
            remaining = self.size
            try:
                while remaining and (chunk := await asyncio.to_thread(file.read, min(CHUNK, remaining))):
                    remaining -= len(chunk)
                    if cancel is not None and cancel.is_set():
                        raise UploadCancelled("upload cancelled")
                    yield chunk
                    sent += len(chunk)
                    if progress:
                        progress(sent, self.size)
            finally:
                file.close()
        yield self.tail

    def _file_chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            view = memoryview(self.data)
            for start in range(0, self.size, CHUNK):
                yield bytes(view[start : start + CHUNK])
            return
        assert self.path is not None
        remaining = self.size  # the Content-Length already sent: a file that grew meanwhile is cut there
        with open(self.path, "rb") as file:
            while remaining and (chunk := file.read(min(CHUNK, remaining))):
                remaining -= len(chunk)
                yield chunk
