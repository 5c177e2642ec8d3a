"""Rendering pages, and the headers every console response carries."""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from patientpdf.services.console_sessions import ConsoleSession

templates = Jinja2Templates(directory=str(files("patientpdf.console") / "templates"))

# No inline script or style anywhere: scripts and styles come from /console/static only. The
# PDF viewer is an iframe on our own signed link (/files/…), hence frame-src 'self'.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "frame-src 'self'",
        "child-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),  # sign-in tokens and patient ids stay out of Referer
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """CSP and friends on every console response; pages (patient data) are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(scope.get("root_path", "") + "/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(name, value) for name, value in message.get("headers", []) if name.lower() != b"cache-control" or static]
                headers += SECURITY_HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


templates.env.filters["when"] = when
templates.env.filters["iso"] = iso


def base_path(request: Request) -> str:
    """Where the console is mounted (/console), for links in pages and redirects."""
    return str(request.scope.get("root_path", ""))


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
    session: ConsoleSession | None = None,
) -> HTMLResponse:
    context = {
        "session": session,
        "csrf_token": session.csrf_token if session else "",
        "base": base_path(request),
        **(values or {}),
    }
    return templates.TemplateResponse(request, template, context, status_code=status_code)
