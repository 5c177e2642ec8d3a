"""Who is asking: the session cookie (never an API key), and the checks on every change.

A state-changing request is refused when the browser says it came from another site
(`Sec-Fetch-Site: cross-site` or `same-site`; without that header, an `Origin` that is not
ours), and unless it carries the session's CSRF token, in the `X-CSRF-Token` header (htmx,
the drop zone) or the `csrf_token` form field (plain forms). SameSite=Strict on the cookie is
a third, independent layer.
"""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from patientpdf.context import Context
from patientpdf.errors import BadRequest, Forbidden, PayloadTooLarge, TooManyRequests
from patientpdf.services.accounts import Actor
from patientpdf.services.console_sessions import ConsoleSession, authenticate

COOKIE = "ppdf_console"
SECURE_COOKIE = "__Host-ppdf_console"  # Secure, Path=/, no Domain: a sibling subdomain cannot set or shadow it
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 50


def context_of(request: Request) -> Context:
    context: Context = request.app.state.context  # set once by create_app
    return context


def is_https(request: Request) -> bool:
    # uvicorn has already applied X-Forwarded-Proto from a trusted proxy (FORWARDED_ALLOW_IPS)
    return request.url.scheme == "https"


def cookie_name(request: Request) -> str:
    return SECURE_COOKIE if is_https(request) else COOKIE


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    """HttpOnly and SameSite=Strict always; Secure with the __Host- prefix over HTTPS. No
    Max-Age: the cookie goes when the browser closes, and the server's timeouts end it before."""
    secure = is_https(request)
    response.set_cookie(
        cookie_name(request), token, httponly=True, samesite="strict", secure=secure, path="/" if secure else "/console/"
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    secure = is_https(request)
    response.delete_cookie(cookie_name(request), httponly=True, samesite="strict", secure=secure, path="/" if secure else "/console/")


def client_address(request: Request) -> str | None:
    return request.client.host[:64] if request.client else None


def actor_of(request: Request, session: ConsoleSession | None = None) -> Actor:
    """Who acts, for the audit trail: the session's prefix stands where an API key's would."""
    return Actor(
        key_prefix=session.prefix if session else None,
        client=client_address(request),
        request_id=request.scope.get("state", {}).get("request_id"),
    )


def refuse_other_sites(request: Request) -> None:
    """403 for a request another site made the browser send."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site in ("same-origin", "none"):
            return
        raise Forbidden(
            f"Refused: this request came from another site (Sec-Fetch-Site: {site[:20]}). Use the console's own pages.",
            code="cross_site_request",
        )
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin(request):
        raise Forbidden("Refused: this request came from another origin. Use the console's own pages.", code="cross_site_request")


def own_origin(request: Request) -> str:
    configured = context_of(request).settings.public_base_url
    if configured:
        return configured
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


async def small_form(request: Request) -> dict[str, str]:
    """A urlencoded form of at most 64 KiB, read once per request (the last value of a repeated
    field wins, except where `form_list` is asked)."""
    cached = getattr(request.state, "form_pairs", None)
    if cached is None:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            cached = []
        else:
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_FORM_BYTES:
                    raise PayloadTooLarge(f"This form is larger than {MAX_FORM_BYTES} bytes.", code="form_too_large")
            try:
                cached = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
            except (UnicodeDecodeError, ValueError):
                raise BadRequest("The form could not be read: send it from the console's page.", code="bad_form") from None
        request.state.form_pairs = cached
    return dict(cached)


async def form_list(request: Request, name: str) -> list[str]:
    await small_form(request)
    return [value for key, value in request.state.form_pairs if key == name]


async def _session(request: Request) -> ConsoleSession:
    ctx = context_of(request)
    token = request.cookies.get(cookie_name(request))
    session = await run_in_threadpool(authenticate, ctx, token, actor_of(request))
    # who it is, for the logs, the audit record and the error pages
    request.state.account_id, request.state.key_prefix = session.account_id, session.prefix
    request.state.console_session = session
    return session


async def _changing_session(request: Request) -> ConsoleSession:
    refuse_other_sites(request)
    session = await _session(request)
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        presented = (await small_form(request)).get(CSRF_FIELD)
    if not presented:
        raise Forbidden("Refused: the form's security token is missing. Reload the page and try again.", code="csrf_token_missing")
    if not hmac.compare_digest(presented.encode(), session.csrf_token.encode()):
        raise Forbidden("Refused: the form's security token is wrong or stale. Reload the page and try again.", code="csrf_token_invalid")
    return session


def count_failed_sign_in(request: Request) -> None:
    """A sign-in link that names nothing counts against the address, as a bad API key does;
    past the limit it is 429. A valid link is never refused for other requests' failures."""
    blocked_for = context_of(request).rate_limits.failed_auth_from(client_address(request) or "unknown")
    if blocked_for is not None:
        raise TooManyRequests(
            f"Too many failed sign-ins from your address. Try again in {blocked_for} seconds.",
            code="too_many_failed_authentications",
            retry_after=blocked_for,
        )


SignedIn = Annotated[ConsoleSession, Depends(_session)]
Changing = Annotated[ConsoleSession, Depends(_changing_session)]
