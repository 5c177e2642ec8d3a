"""Serving a stored PDF: whole or one byte range, streamed from storage, with safe headers.

Conditional requests follow RFC 9110 §13.2.2, in its order: If-Match (strong comparison,
412 when no tag matches), If-None-Match (weak comparison, 304 when one matches), then If-Range
(strong comparison; otherwise the Range is ignored and the whole PDF is sent), then Range. No
Last-Modified is sent (the ETag is the SHA-256 of immutable bytes), so If-Modified-Since and
If-Unmodified-Since are ignored, as §13.1.3/§13.1.4 require, and an If-Range date never matches.
"""

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
from patientpdf.errors import PreconditionFailed, RangeNotSatisfiable
from patientpdf.services.pdfs import open_bytes

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")
_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')  # RFC 9110 §8.8.3 (etagc excludes only DQUOTE)
# The cache headers a 304 repeats (§15.4.5); the rest is representation metadata it must not send.
_NOT_MODIFIED_HEADERS = ("ETag", "Cache-Control")


def etag_matches(header: str, opaque: str, *, weak: bool) -> bool:
    """If-Match / If-None-Match: `*`, or any listed entity-tag equal to ours. Strong comparison
    (weak=False) never matches a weak tag; weak comparison ignores W/ (§8.8.3.2)."""
    if header.strip() == "*":
        return True
    return any(tag == opaque and (weak or not is_weak) for is_weak, tag in _ENTITY_TAG.findall(header))


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
    if_match = request.headers.get("if-match")
    if if_match is not None and not etag_matches(if_match, row["sha256"], weak=False):
        raise PreconditionFailed(
            f"If-Match names no current version of this PDF; its ETag is {etag}. Download it again without If-Match.",
            headers={"ETag": etag},
        )
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and etag_matches(if_none_match, row["sha256"], weak=True):
        return Response(status_code=304, headers={name: headers[name] for name in _NOT_MODIFIED_HEADERS})
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:  # a stale or weak tag, or a date: the whole PDF
        range_header = None
    requested = byte_range(range_header, size)
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
