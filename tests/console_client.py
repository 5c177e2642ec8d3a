"""Signing in to the console over real HTTP, as a browser would, for the console's tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx

from conftest import LiveServer
from patientpdf.services.console_sessions import create_login_link

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def login_token(server: LiveServer, account_id: int, ttl: timedelta = timedelta(minutes=10)) -> str:
    token, _row = create_login_link(server.context, account_id, ttl)
    return token


@dataclass
class Browser:
    """An HTTP client holding one console session's cookie and its CSRF token."""

    client: httpx.Client
    csrf: str

    def post(self, path: str, data: dict[str, str] | None = None, **kw: object) -> httpx.Response:
        headers = SAME_ORIGIN | dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
        return self.client.post(path, data={"csrf_token": self.csrf} | (data or {}), headers=headers, **kw)  # type: ignore[arg-type]

    def close(self) -> None:
        self.client.close()


def csrf_of(page: str) -> str:
    match = _CSRF_META.search(page)
    assert match, "the page carries no CSRF token"
    return match.group(1)


def sign_in(server: LiveServer, account_id: int, **client_options: object) -> Browser:
    client = httpx.Client(base_url=server.base_url, timeout=30, **client_options)  # type: ignore[arg-type]
    token = login_token(server, account_id)
    page = client.get("/console/login", params={"token": token})
    assert page.status_code == 200, page.text
    signed_in = client.post("/console/login", data={"token": token}, headers=SAME_ORIGIN)
    assert signed_in.status_code == 303, signed_in.text
    keys = client.get("/console/keys")
    assert keys.status_code == 200, keys.text
    return Browser(client, csrf_of(keys.text))


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]
