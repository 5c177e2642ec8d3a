"""What Client and AsyncClient share: configuration, request descriptions, response parsing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import httpx

from patientpdf_client import __version__
from patientpdf_client._retry import RetryPolicy
from patientpdf_client.errors import DownloadCorrupted, UnexpectedResponse
from patientpdf_client.operations import route
from patientpdf_client.types import UploadedPdf

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
URL_ENV, KEY_ENV = "PATIENTPDF_URL", "PATIENTPDF_API_KEY"


@dataclass
class Call:
    """One API request, as the retry loop needs to make it again."""

    method: str
    url: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    ok: tuple[int, ...] = (200,)
    retry_safe: bool = True  # may be sent again even if it may have reached the server
    authenticated: bool = True


def call(name: str, *, params: Mapping[str, Any] | None = None, json: Any = None, ok: tuple[int, ...] = (200,), **path: object) -> Call:
    method, url = route(name, **path)
    kept = {key: value for key, value in (params or {}).items() if value is not None}
    # POST /patients and POST /keys carry no idempotency key: sent again only when it cannot have arrived.
    return Call(method, url, kept or None, json, ok=ok, retry_safe=method in ("GET", "HEAD", "DELETE", "PUT"))


class Config:
    def __init__(
        self,
        url: str | None,
        api_key: str | None,
        retry: RetryPolicy | None,
        timeout: float | httpx.Timeout | None,
    ) -> None:
        url = url or os.environ.get(URL_ENV)
        api_key = api_key or os.environ.get(KEY_ENV)
        if not url:
            raise ValueError(f"No server URL: set {URL_ENV}, or pass url= (SDK) or --url (ppdf).")
        if not api_key:
            raise ValueError(f"No API key: set {KEY_ENV}, or pass api_key= (SDK) or --api-key (ppdf).")
        self.base_url = url.rstrip("/")
        self.api_key = api_key
        self.retry = retry or RetryPolicy()
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else (httpx.Timeout(timeout, connect=10.0) if timeout else DEFAULT_TIMEOUT)
        self.user_agent = f"patientpdf-client/{__version__} httpx/{httpx.__version__}"

    def headers(self, call: Call) -> dict[str, str]:
        headers = {"User-Agent": self.user_agent, "Accept": "application/json", **call.headers}
        if call.authenticated:
            headers["X-API-Key"] = self.api_key
        return headers


def describe(config: Config, kind: str) -> str:
    return f"<{kind} {config.base_url}>"  # never the key


def next_page(response: httpx.Response) -> dict[str, str] | None:
    """The query of the Link rel="next" page (RFC 8288), or None on the last page. The SDK asks
    its own base URL for it, so a proxy or a path prefix in front of the server changes nothing."""
    following = response.links.get("next")
    if not following or "url" not in following:
        return None
    return dict(parse_qsl(urlsplit(following["url"]).query))


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise UnexpectedResponse(
            f"HTTP {response.status_code} with a body that is not JSON", status=response.status_code, request_id=response.headers.get("x-request-id")
        ) from None


def uploaded(response: httpx.Response) -> UploadedPdf:
    body = cast(UploadedPdf, json_body(response))
    body["replayed"] = response.headers.get("idempotent-replayed", "").lower() == "true"
    return body


def expected_sha256(response: httpx.Response) -> str | None:
    etag = response.headers.get("etag", "").strip('W/"')
    return etag.lower() if len(etag) == 64 else None


def total_size(response: httpx.Response) -> int | None:
    content_range = response.headers.get("content-range", "")
    if "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("content-length")
    return int(length) if length and length.isdigit() else None


@dataclass
class StreamState:
    """What a resumable download learned from its responses."""

    offset: int
    resumed_from: int = 0
    etag: str | None = None
    sha256: str | None = None
    size: int | None = None


def check_digest(pdf_id: str, actual: str, expected: str | None) -> str:
    if expected is not None and actual != expected:
        raise DownloadCorrupted(f"The bytes received for {pdf_id} have SHA-256 {actual}, the PDF has {expected}. Download it again.")
    return actual


def pdf_id_of_link(url: str) -> str:
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
