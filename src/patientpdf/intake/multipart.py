"""Stream a multipart/form-data upload to a spool file: count, hash and refuse at the limit.

python-multipart does the parsing (it finds boundaries in whole chunks); this module decides
what each part is for. Three fields matter: `file` (the PDF's bytes, written straight to an
exclusive spool file), `filename` and the optional `sha256` (short text fields). Anything else
is skipped but counted against the form-overhead allowance, so it cannot be used to send
unbounded data. A body that stalls, or takes too long in total, is refused with 408.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import secrets
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from patientpdf.errors import BadRequest, InsufficientStorage, PayloadTooLarge, RequestTimeout

FORM_OVERHEAD_BYTES = 64 * 1024  # boundaries, part headers and small fields around the PDF
MAX_FIELD_BYTES = 4096  # each text field (filename, sha256)
MAX_PARTS = 16
MAX_PART_HEADER_BYTES = 8192  # the headers of one part, together
MAX_BOUNDARY_BYTES = 70  # RFC 2046, section 5.1.1
TEXT_FIELDS = ("filename", "sha256")
# A large PDF is pushed to disk as it arrives and its pages leave the page cache, all but the
# newest window: the upload's memory footprint stays bounded, the final fsync has little left
# to do, and the next upload writes into pages the kernel already has instead of fresh ones
# (measured on the development VM: 400-660 MB/s into fresh pages, 1,200-2,400 MB/s this way).
WRITEBACK_WINDOW = 8 * 1024 * 1024
_ADVISE = getattr(os, "posix_fadvise", None)
# Past this many bytes of PDF, hashing and writing run on a thread while the event loop
# receives and parses the next chunk (both release the GIL): a large upload uses two cores.
# Smaller files stay on the loop, where a thread hop per chunk would cost more than it saves.
PIPELINE_AFTER_BYTES = 8 * 1024 * 1024
_spool_writers: ThreadPoolExecutor | None = None


def _spool_writer_pool() -> ThreadPoolExecutor:
    global _spool_writers
    if _spool_writers is None:
        _spool_writers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="spool-writer", initializer=_name_os_thread)
    return _spool_writers


def _name_os_thread() -> None:
    """Give the thread its Python name in the kernel too (top -H, ps -T, py-spy, the tests'
    /proc/<pid>/task/*/comm): Python does so itself only from 3.14. Linux only; 15 bytes."""
    with contextlib.suppress(OSError):
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text(threading.current_thread().name[:15])


@dataclass(frozen=True)
class IntakeLimits:
    max_file_bytes: int
    idle_timeout: float = 30.0  # seconds without a byte of the body
    total_timeout: float = 900.0  # seconds for the whole body

    @property
    def max_body_bytes(self) -> int:
        return self.max_file_bytes + FORM_OVERHEAD_BYTES

    def too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"File too large: the PDF exceeds the maximum allowed size of {self.max_file_bytes} bytes "
            f"({self.max_file_bytes / 1024 / 1024:g} MiB). Split or compress it and upload again.",
        )


def multipart_boundary(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data request, or a 400 that says what to send instead."""
    mime, params = parse_options_header(content_type or "")
    if mime != b"multipart/form-data":
        raise BadRequest(
            "The request body must be multipart/form-data with a 'file' part and a 'filename' field "
            "(curl: --form file=@report.pdf --form filename=report.pdf).",
            code="not_multipart",
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest(
            "The Content-Type header has no multipart boundary. Let your HTTP client build the "
            "multipart body and its header instead of setting Content-Type by hand.",
            code="malformed_multipart",
        )
    if len(boundary) > MAX_BOUNDARY_BYTES:
        raise BadRequest(
            f"The multipart boundary is longer than {MAX_BOUNDARY_BYTES} characters (RFC 2046). "
            "Let your HTTP client choose the boundary.",
            code="boundary_too_long",
        )
    return boundary


@dataclass
class ReceivedUpload:
    """The outcome of streaming one request body; owns the spool file until it is stored."""

    spool_path: Path | None = None
    size: int = 0
    sha256: str = ""
    fields: dict[str, str] = field(default_factory=dict)  # the text fields that were sent

    @property
    def filename(self) -> str | None:
        return self.fields.get("filename")

    def discard(self) -> None:
        if self.spool_path is not None:
            self.spool_path.unlink(missing_ok=True)


@dataclass
class SpoolFile:
    """An exclusive, empty spool file, opened before the body arrives.

    Creating a file waits on the filesystem's journal, which every fsync of the stored PDFs
    holds for a moment: measured under load, about 1 ms per upload on the event loop. The
    upload's admission, which already runs on a worker thread, opens the file there."""

    path: Path
    fd: int | None  # None once closed: a closed descriptor's number may already be another file's

    @classmethod
    def open_in(cls, spool_dir: Path) -> SpoolFile:
        try:
            try:
                return cls._open(spool_dir)
            except FileNotFoundError:
                spool_dir.mkdir(parents=True, exist_ok=True)
                return cls._open(spool_dir)
        except OSError as exc:
            raise _no_space_as_507(exc) from exc

    @classmethod
    def _open(cls, spool_dir: Path) -> SpoolFile:
        path = spool_dir / f"upload-{secrets.token_hex(16)}.part"
        return cls(path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600))

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def discard(self) -> None:
        """Close it and remove it, unless it became the upload's stored PDF (renamed away)."""
        with contextlib.suppress(OSError):
            self.close()
        self.path.unlink(missing_ok=True)


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    kind: str = "skip"  # "file", one of TEXT_FIELDS, or "skip"


class _UploadReceiver:
    def __init__(self, boundary: bytes, limits: IntakeLimits, spool_dir: Path, spool: SpoolFile | None = None) -> None:
        self.limits = limits
        self.spool_dir = spool_dir
        self.spool = spool  # opened in advance, taken by the 'file' part (else opened then)
        self.spool_file: SpoolFile | None = None  # the 'file' part's, while open
        self.result = ReceivedUpload()
        self.fd: int | None = None
        self.written = 0  # bytes of PDF in the spool file
        self.advised_up_to = 0  # of which handed to writeback
        self.queued: list[memoryview] = []  # PDF bytes for the next hand-off to a spool writer
        self.in_flight: Future[None] | None = None  # the hand-off being written
        self.hasher = hashlib.sha256()
        self.text = bytearray()
        self.overhead = 0
        self.parts = 0
        self.part = _Part()
        self.finished = False
        try:
            self.parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self.on_part_begin,
                    "on_header_field": self.on_header_field,
                    "on_header_value": self.on_header_value,
                    "on_header_end": self.on_header_end,
                    "on_headers_finished": self.on_headers_finished,
                    "on_part_data": self.on_part_data,
                    "on_part_end": self.on_part_end,
                    "on_end": self.on_end,
                },
                max_header_size=MAX_PART_HEADER_BYTES,
            )
        except FormParserError as exc:
            raise BadRequest(f"The multipart boundary is not usable: {exc}.", code="malformed_multipart") from None

    # parser callbacks ------------------------------------------------------------------

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadRequest(
                f"The form has more than {MAX_PARTS} parts. Send only 'file' and 'filename'.",
                code="too_many_parts",
            )
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[bytes(self.part.header_field).strip().lower()] = bytes(self.part.header_value).strip()
        self.part.header_field.clear()
        self.part.header_value.clear()

    def on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self.part.headers.get(b"content-disposition"))
        name = params.get(b"name") if disposition == b"form-data" else None
        if name == b"file":
            if self.fd is not None or self.result.spool_path is not None:
                raise BadRequest("The form has more than one 'file' part. Send one PDF per request.", code="duplicate_file")
            self._open_spool_file()
            self.part.kind = "file"
        elif name is not None and name.decode("latin-1") in TEXT_FIELDS:
            field_name = name.decode("latin-1")
            if field_name in self.result.fields:
                raise BadRequest(f"The form has more than one '{field_name}' field. Send it once.", code=f"duplicate_{field_name}")
            self.part.kind = field_name
            self.text.clear()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        length = end - start
        kind = self.part.kind
        if kind == "file":
            self.result.size += length
            if self.result.size > self.limits.max_file_bytes:
                raise self.limits.too_large()
            chunk = memoryview(data)[start:end]
            if self.result.size > PIPELINE_AFTER_BYTES:
                self.queued.append(chunk)  # written by consume(), off the loop
            else:
                self._spool((chunk,))
        elif kind in TEXT_FIELDS:
            self.text += data[start:end]
            if len(self.text) > MAX_FIELD_BYTES:
                raise BadRequest(
                    f"The '{kind}' field is longer than {MAX_FIELD_BYTES} bytes. Send a short value.",
                    code=f"{kind}_too_long",
                )
        else:
            self.overhead += length
            if self.overhead > FORM_OVERHEAD_BYTES:
                raise self.limits.too_large()

    def on_part_end(self) -> None:
        if self.part.kind in TEXT_FIELDS:
            try:
                self.result.fields[self.part.kind] = bytes(self.text).decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest(f"The '{self.part.kind}' field is not valid UTF-8 text.", code=f"invalid_{self.part.kind}") from None
        self.part = _Part()

    def on_end(self) -> None:
        self.finished = True

    # spool file ------------------------------------------------------------------------

    def _open_spool_file(self) -> None:
        spool, self.spool = self.spool or SpoolFile.open_in(self.spool_dir), None
        self.spool_file, self.fd, self.result.spool_path = spool, spool.fd, spool.path

    def _spool(self, chunks: tuple[memoryview, ...] | list[memoryview]) -> None:
        """Hash and write PDF bytes, in order; on the loop or on a spool writer thread."""
        assert self.fd is not None
        for chunk in chunks:
            self.hasher.update(chunk)
            self.written += len(chunk)
            while chunk:
                chunk = chunk[os.write(self.fd, chunk) :]
        if _ADVISE is not None and self.written - self.advised_up_to >= 2 * WRITEBACK_WINDOW:
            # Starts writeback of the older pages; those already written back are dropped.
            self.advised_up_to = self.written - WRITEBACK_WINDOW
            _ADVISE(self.fd, 0, self.advised_up_to, os.POSIX_FADV_DONTNEED)

    async def _hand_off_queued(self) -> None:
        """Wait for the previous hand-off (writes stay in order), then start the next one."""
        await self._written()
        chunks, self.queued = self.queued, []
        self.in_flight = _spool_writer_pool().submit(self._spool, chunks)

    async def _written(self) -> None:
        if self.in_flight is not None:
            await asyncio.wrap_future(self.in_flight)
            self.in_flight = None  # only now: until then _abandon must wait for it

    def _close_spool_file(self) -> None:
        if self.spool_file is not None:
            self.fd = None
            self.spool_file.close()

    # driving ---------------------------------------------------------------------------

    async def _timed(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The body's chunks, or 408 when one is late or the whole body is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.total_timeout
        iterator = aiter(chunks)
        while True:
            remaining = deadline - loop.time()
            waiting_on_idle = remaining > self.limits.idle_timeout  # else the total deadline comes first
            try:
                async with asyncio.timeout(min(self.limits.idle_timeout, max(remaining, 0))):
                    chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except TimeoutError:
                why = (
                    f"no data arrived for {self.limits.idle_timeout:g} seconds"
                    if waiting_on_idle
                    else f"the body took longer than {self.limits.total_timeout:g} seconds"
                )
                raise RequestTimeout(
                    f"The upload was too slow: {why}. Nothing was stored; send it again on a faster connection.",
                ) from None
            yield chunk

    async def consume(self, chunks: AsyncIterator[bytes]) -> ReceivedUpload:
        received = 0
        try:
            async for chunk in self._timed(chunks):
                received += len(chunk)
                if received > self.limits.max_body_bytes:
                    raise self.limits.too_large()
                if chunk:
                    self.parser.write(chunk)
                    if self.queued:
                        await self._hand_off_queued()
            await self._written()
            if not self.finished:
                raise BadRequest(
                    "The multipart body ended before its closing boundary: the upload was cut short. Send it again.",
                    code="incomplete_multipart",
                )
            if self.result.spool_path is None:
                raise BadRequest(
                    "The form has no 'file' part. Send the PDF as --form file=@report.pdf.", code="missing_file"
                )
            self.result.sha256 = self.hasher.hexdigest()
            return self.result
        except MultipartParseError as exc:
            self._abandon()
            raise BadRequest(f"The multipart body is malformed: {exc}.", code="malformed_multipart") from None
        except OSError as exc:
            self._abandon()
            raise _no_space_as_507(exc) from exc
        except BaseException:
            self._abandon()
            raise
        finally:
            self._close_spool_file()
            if self.spool is not None:  # the body had no 'file' part
                self.spool.discard()

    def _abandon(self) -> None:
        if self.in_flight is not None:  # let the write finish before its file goes
            with contextlib.suppress(Exception):
                self.in_flight.result()
            self.in_flight = None
        with contextlib.suppress(OSError):
            self._close_spool_file()
        self.result.discard()


def _no_space_as_507(exc: OSError) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorage(
            "The server has no space left to receive this PDF. Nothing was stored; try again later.",
            code="storage_full",
        )
    return exc


async def receive_upload(
    chunks: AsyncIterator[bytes], boundary: bytes, limits: IntakeLimits, spool_dir: Path, spool: SpoolFile | None = None
) -> ReceivedUpload:
    """Stream the body (into `spool` if given); on any error nothing of it is left in `spool_dir`."""
    return await _UploadReceiver(boundary, limits, spool_dir, spool).consume(chunks)
