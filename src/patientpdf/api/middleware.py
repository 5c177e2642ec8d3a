"""Request id, the access log and the headers every response carries, as plain ASGI so
streamed bodies pass through untouched."""

from __future__ import annotations

import logging
import re
import secrets
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("patientpdf.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client = scope.get("client")
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],  # never the query string: it carries link signatures
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "key_prefix": scope["state"].get("key_prefix"),
                    "client": client[0] if client else None,
                },
            )


# Public, the same for every caller, free of patient data: the only responses a cache may keep.
PUBLIC_DOCS = frozenset({"/docs", "/redoc", "/openapi.json"})
PUBLIC_DOCS_PREFIX = "/static/docs/"
# On every response. no-referrer: a link clicked inside a PDF opened from a signed link must
# not send that link (its signature) to a third party.
ALWAYS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
NO_STORE = {"Cache-Control": "no-store"} | ALWAYS


class SecurityHeadersMiddleware:
    """`Cache-Control: no-store` on every response except the public docs, and `nosniff` and
    `Referrer-Policy: no-referrer` on all. One place, so a new route, an error of ours or of
    the framework (404/405/422) cannot forget them. A route may send a stricter Cache-Control
    of its own (downloads: `private, no-store`) as long as it says no-store."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        cacheable = path in PUBLIC_DOCS or path.startswith(PUBLIC_DOCS_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", []))
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers[name] = value
                if not cacheable and "no-store" not in headers.get("cache-control", "").lower():
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
