"""Conditional downloads (RFC 9110 §13) on both download routes, through real HTTP."""

from __future__ import annotations

import hashlib
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import LiveServer, Tenant, sample

CONTENT = sample("valid.pdf")
ETAG = f'"{hashlib.sha256(CONTENT).hexdigest()}"'


@pytest.fixture(params=["signed link", "API key"])
def download(request: pytest.FixtureRequest, server: LiveServer, tenant: Tenant) -> tuple[str, dict[str, str]]:
    """(URL, headers) of one download route for a freshly uploaded PDF."""
    uploaded = server.upload(tenant, CONTENT)
    assert uploaded.status_code == 201
    if request.param == "signed link":
        return uploaded.json()["url"], {}
    return f"{server.base_url}/pdfs/{uploaded.json()['id']}/content", tenant.headers


def fetch(download: tuple[str, dict[str, str]], method: str = "GET", **headers: str) -> httpx.Response:
    url, base = download
    names = {name.replace("_", "-"): value for name, value in headers.items()}
    return httpx.request(method, url, headers=base | names)


def assert_not_modified(response: httpx.Response) -> None:
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == ETAG
    assert "no-store" in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def assert_whole(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert response.content == CONTENT
    assert "content-range" not in response.headers


@pytest.mark.parametrize(
    "if_none_match",
    [ETAG, f"W/{ETAG}", "*", f'"other", {ETAG}', f'"a", W/{ETAG} , "b"', f'W/"x",{ETAG}'],
    ids=["same", "weak", "any", "list", "list-weak", "list-no-space"],
)
def test_if_none_match_that_matches_is_304(download: tuple[str, dict[str, str]], if_none_match: str) -> None:
    """Weak comparison (§13.1.2): W/ on either side still matches; * matches any current PDF."""
    assert_not_modified(fetch(download, if_none_match=if_none_match))
    assert_not_modified(fetch(download, "HEAD", if_none_match=if_none_match))


@pytest.mark.parametrize(
    "if_none_match", ['"other"', '"a", "b"', f'"{ETAG[1:-1]}x"', ETAG[1:-1], "W/*"], ids=["other", "list", "longer", "unquoted", "weak-any"]
)
def test_if_none_match_that_does_not_match_sends_the_pdf(download: tuple[str, dict[str, str]], if_none_match: str) -> None:
    response = fetch(download, if_none_match=if_none_match)
    assert_whole(response)
    assert response.headers["etag"] == ETAG


def test_not_modified_beats_range(download: tuple[str, dict[str, str]]) -> None:
    """Preconditions come before Range (§13.2.2), even a range that could not be served."""
    assert_not_modified(fetch(download, if_none_match=ETAG, range="bytes=0-9"))
    assert_not_modified(fetch(download, if_none_match=ETAG, range=f"bytes={len(CONTENT)}-"))


def test_304_has_no_body_on_the_wire(download: tuple[str, dict[str, str]]) -> None:
    url, headers = download
    parts = urlsplit(url)
    lines = [f"GET {parts.path}?{parts.query} HTTP/1.1", f"Host: {parts.netloc}", f"If-None-Match: {ETAG}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 304 ")
    assert body == b""
    assert b"content-type: application/pdf" not in head.lower()


def test_if_range_with_the_current_etag_gives_the_range(download: tuple[str, dict[str, str]]) -> None:
    response = fetch(download, range="bytes=0-9", if_range=ETAG)
    assert response.status_code == 206 and response.content == CONTENT[:10]
    assert response.headers["content-range"] == f"bytes 0-9/{len(CONTENT)}"


@pytest.mark.parametrize(
    "if_range",
    ['"stale"', f"W/{ETAG}", "Sat, 01 Jan 2000 00:00:00 GMT", "Fri, 01 Jan 2100 00:00:00 GMT", ETAG[1:-1], "*"],
    ids=["stale", "weak", "old-date", "future-date", "unquoted", "any"],
)
def test_if_range_that_is_stale_weak_or_a_date_gives_the_whole_pdf(download: tuple[str, dict[str, str]], if_range: str) -> None:
    """§13.1.5: strong comparison only; a date never matches (downloads send no Last-Modified)."""
    assert_whole(fetch(download, range="bytes=0-9", if_range=if_range))
    # the Range is ignored whole, so a range past the end is no 416 either
    assert_whole(fetch(download, range=f"bytes={len(CONTENT)}-", if_range=if_range))


def test_if_range_without_range_is_ignored(download: tuple[str, dict[str, str]]) -> None:
    assert_whole(fetch(download, if_range=ETAG))


@pytest.mark.parametrize("if_match", [ETAG, "*", f'"other", {ETAG}'], ids=["same", "any", "list"])
def test_if_match_that_matches_serves(download: tuple[str, dict[str, str]], if_match: str) -> None:
    assert_whole(fetch(download, if_match=if_match))
    response = fetch(download, if_match=if_match, range="bytes=0-9")
    assert response.status_code == 206 and response.content == CONTENT[:10]


@pytest.mark.parametrize("if_match", ['"other"', f"W/{ETAG}", ETAG[1:-1]], ids=["other", "weak", "unquoted"])
def test_if_match_that_fails_is_412(download: tuple[str, dict[str, str]], if_match: str) -> None:
    """Strong comparison (§13.1.1): a weak tag never matches. If-Match is evaluated first."""
    for response in (fetch(download, if_match=if_match), fetch(download, if_match=if_match, if_none_match=ETAG)):
        assert response.status_code == 412
        assert response.json()["code"] == "precondition_failed"
        assert response.headers["etag"] == ETAG
        assert "no-store" in response.headers["cache-control"]


def test_dates_are_ignored_without_last_modified(download: tuple[str, dict[str, str]]) -> None:
    """No Last-Modified is sent, so If-Modified-Since and If-Unmodified-Since are ignored (§13.1.3, §13.1.4)."""
    for response in (
        fetch(download, if_modified_since="Fri, 01 Jan 2100 00:00:00 GMT"),
        fetch(download, if_unmodified_since="Sat, 01 Jan 2000 00:00:00 GMT"),
    ):
        assert_whole(response)
        assert "last-modified" not in response.headers


def test_preconditions_never_bypass_the_link_check(server: LiveServer, download: tuple[str, dict[str, str]]) -> None:
    url, headers = download
    if headers:  # the keyed route without its key
        response = httpx.get(url, headers={"If-None-Match": "*"})
        assert response.status_code == 401
    else:
        response = httpx.get(url.replace("signature=", "signature=x"), headers={"If-None-Match": "*"})
        assert response.status_code == 403 and response.json()["code"] == "link_invalid"
