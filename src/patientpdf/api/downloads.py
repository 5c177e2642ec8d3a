"""Serving a stored PDF: whole or one byte range, streamed from storage, with safe headers."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from sqlalchemy import RowMapping
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from patientpdf.content_disposition import inline_disposition
from patientpdf.context import Context
from patientpdf.errors import RangeNotSatisfiable
from patientpdf.services.pdfs import open_bytes

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) for a single satisfiable range, None to send the whole file."""
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None  # several ranges or another unit: RFC 9110 lets us answer with the whole file
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"The requested range is outside the file, which is {size} bytes long.",
        headers={"Content-Range": f"bytes */{size}"},
    )


async def pdf_response(request: Request, context: Context, row: RowMapping) -> Response:
    size = row["size"]
    etag = f'"{row["sha256"]}"'
    headers = {
        "Content-Disposition": inline_disposition(row["filename"]),
        "ETag": etag,
        "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(row['sha256'])).decode()}:",  # RFC 9530: the whole file
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
    }
    requested = byte_range(request.headers.get("range"), size)
    if_range = request.headers.get("if-range")
    if requested is not None and if_range is not None and if_range != etag:
        requested = None
    status = 200
    start, end = 0, size - 1
    if requested is not None:
        start, end = requested
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/pdf")
    chunks = await run_in_threadpool(open_bytes, context, row, start, end - start + 1)
    return ClosingStreamingResponse(chunks, status_code=status, headers=headers, media_type="application/pdf")


class ClosingStreamingResponse(StreamingResponse):
    """Closes the stored blob however the response ends: sent, cut off by the client, or
    replaced before it started (the audit record could not be written)."""

    def __init__(self, chunks: Iterator[bytes], **kwargs: Any) -> None:
        super().__init__(chunks, **kwargs)
        self._chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
