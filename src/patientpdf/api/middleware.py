"""Request id, the access log and the headers every response carries, as plain ASGI so
streamed bodies pass through untouched."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("patientpdf.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


# Public, the same for every caller, free of patient data: the only responses a cache may keep.
PUBLIC_DOCS = frozenset({"/docs", "/redoc", "/openapi.json"})
PUBLIC_DOCS_PREFIX = "/static/docs/"
# On every response. no-referrer: a link clicked inside a PDF opened from a signed link must
# not send that link (its signature) to a third party.
ALWAYS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
NO_STORE = {"Cache-Control": "no-store"} | ALWAYS
_ALWAYS_RAW = [(name.lower().encode(), value.encode()) for name, value in ALWAYS.items()]
_ALWAYS_NAMES = frozenset(name for name, _ in _ALWAYS_RAW)


class EdgeMiddleware:
    """The edge of every HTTP request: its id, its access log line, and the headers every
    response carries. One middleware, one wrapper around `send`: the upload's hot path pays
    for each layer on every request.

    Headers: `Cache-Control: no-store` on every response except the public docs, and
    `nosniff` and `Referrer-Policy: no-referrer` on all. One place, so a new route, an error
    of ours or of the framework (404/405/422) or the audit's 503 cannot forget them. A route
    may send a stricter Cache-Control of its own (downloads: `private, no-store`) as long as
    it says no-store."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope["path"]
        cacheable = path in PUBLIC_DOCS or path.startswith(PUBLIC_DOCS_PREFIX)
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = _with_edge_headers(message.get("headers", ()), request_id, cacheable)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": path,  # never the query string: it carries link signatures
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "key_prefix": scope["state"].get("key_prefix"),
                        "client": client[0] if client else None,
                    },
                )


def _with_edge_headers(headers: Iterable[tuple[bytes, bytes]], request_id: str, cacheable: bool) -> list[tuple[bytes, bytes]]:
    out = []
    has_no_store = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in _ALWAYS_NAMES:
            continue  # ours replace the route's
        if lowered == b"cache-control" and not cacheable:
            if b"no-store" not in value.lower():
                continue  # replaced by no-store below
            has_no_store = True
        out.append((name, value))
    out += _ALWAYS_RAW
    if not cacheable and not has_no_store:
        out.append((b"cache-control", b"no-store"))
    out.append((b"x-request-id", request_id.encode()))
    return out


