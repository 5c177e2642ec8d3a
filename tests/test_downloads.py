"""Serving bytes back: signed links, the keyed download, ranges, headers, delete."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import httpx
import pytest

from conftest import LiveServer, Tenant, sample


@pytest.fixture
def uploaded(server: LiveServer, tenant: Tenant) -> dict:
    response = server.upload(tenant, sample("valid.pdf"), filename="Résumé \"final\".pdf")
    assert response.status_code == 201
    return response.json()


def test_signed_link_opens_without_a_key(server: LiveServer, uploaded: dict) -> None:
    response = httpx.get(uploaded["url"])  # a fresh client: no key, no cookies
    assert response.status_code == 200
    assert response.content == sample("valid.pdf")
    headers = response.headers
    assert headers["content-type"] == "application/pdf"
    assert headers["accept-ranges"] == "bytes"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "private, no-store"
    assert headers["etag"] == f'"{hashlib.sha256(sample("valid.pdf")).hexdigest()}"'
    assert headers["content-disposition"] == (
        "inline; filename=\"R_sum_ _final_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.pdf"
    )
    assert "content-security-policy" not in headers


def test_keyed_download_matches(server: LiveServer, tenant: Tenant, uploaded: dict) -> None:
    response = server.client.get(f"/pdfs/{uploaded['id']}/content", headers=tenant.headers)
    assert response.status_code == 200 and response.content == sample("valid.pdf")


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


def test_altered_link_is_403_invalid(server: LiveServer, uploaded: dict) -> None:
    signature = parse_qs(urlsplit(uploaded["url"]).query)["signature"][0]
    expires = parse_qs(urlsplit(uploaded["url"]).query)["expires"][0]
    tampered = [
        _with_query(uploaded["url"], signature=signature[:-1] + ("A" if signature[-1] != "A" else "B")),
        _with_query(uploaded["url"], expires=str(int(expires) + 3600)),
        _with_query(uploaded["url"], signature=""),
        uploaded["url"].split("?")[0],
    ]
    for url in tampered:
        response = httpx.get(url)
        assert response.status_code == 403, url
        assert response.json()["code"] == "link_invalid"


def test_link_for_another_pdf_id_is_invalid(server: LiveServer, tenant: Tenant, uploaded: dict) -> None:
    other = server.upload(tenant, sample("valid.pdf")).json()
    swapped = uploaded["url"].replace(uploaded["id"], other["id"])
    assert httpx.get(swapped).json()["code"] == "link_invalid"


def test_expired_link_is_403_expired(server: LiveServer, uploaded: dict) -> None:
    expires, signature = server.context.signer.sign(uploaded["id"], ttl_seconds=-1)  # no revocation yet: salt ""
    url = f"{server.base_url}/files/{uploaded['id']}?expires={expires}&signature={signature}"
    response = httpx.get(url)
    assert response.status_code == 403 and response.json()["code"] == "link_expired"


def issued(request: Callable[[], httpx.Response]) -> tuple[httpx.Response, tuple[int, int]]:
    """A response, and the clock read (in whole seconds, as links carry it) around its request."""
    before = int(time.time())
    response = request()
    return response, (before, int(time.time()))


def assert_link_lasts(url: str, ttl: int, window: tuple[int, int]) -> None:
    """The server signs `expires` = now + ttl, with its now inside the request's window."""
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    assert window[0] + ttl <= expires <= window[1] + ttl, (url, ttl, window)


def test_link_lifetime_follows_the_setting(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(url_ttl_seconds=120)
    tenant = server.tenant()
    response, window = issued(lambda: server.upload(tenant, sample("valid.pdf")))
    assert_link_lasts(response.json()["url"], 120, window)


def test_callers_may_ask_for_shorter_links_within_the_maximum(server: LiveServer, tenant: Tenant, uploaded: dict) -> None:
    short, window = issued(lambda: server.upload(tenant, sample("valid.pdf"), params={"url_ttl": "60"}))
    assert_link_lasts(short.json()["url"], 60, window)
    assert httpx.get(short.json()["url"]).status_code == 200
    meta, window = issued(lambda: server.client.get(f"/pdfs/{uploaded['id']}", params={"url_ttl": 5}, headers=tenant.headers))
    assert_link_lasts(meta.json()["url"], 5, window)
    listed, window = issued(
        lambda: server.client.get(f"/patients/{tenant.patient_id}/pdfs/", params={"url_ttl": 30}, headers=tenant.headers)
    )
    assert len(listed.json()) == 2
    for item in listed.json():
        assert_link_lasts(item["url"], 30, window)
    patient, window = issued(lambda: server.client.get(f"/patients/{tenant.patient_id}/", params={"url_ttl": 30}, headers=tenant.headers))
    assert_link_lasts(patient.json()["pdf_file"], 30, window)
    maximum = server.settings.url_ttl_seconds
    for bad in (str(maximum + 1), "0", "-5", "soon"):
        response = server.client.get(f"/pdfs/{uploaded['id']}", params={"url_ttl": bad}, headers=tenant.headers)
        assert response.status_code == 400 and response.json()["code"] == "bad_url_ttl", bad
        assert str(maximum) in response.json()["detail"]


def test_revoke_all_kills_every_outstanding_link_at_once(server: LiveServer, tenant: Tenant, uploaded: dict) -> None:
    """`links revoke-all` runs in another process: here a Context of its own on the server's
    database, as the CLI opens one. The server has just signed a link, so its copy of the salt
    (kept SALT_REFRESH_SECONDS for signing) is fresh and still the old one; it must refuse the
    old link anyway, because a check reads the newest salt every time."""
    from patientpdf.context import Context
    from patientpdf.services.links import SALT_REFRESH_SECONDS, revoke_all

    old = server.client.get(f"/pdfs/{uploaded['id']}", headers=tenant.headers).json()["url"]
    assert httpx.get(old).status_code == 200
    other_process = Context.from_settings(server.settings)
    try:
        revoke_all(other_process)
    finally:
        other_process.close()
    response = httpx.get(old)
    assert response.status_code == 403 and response.json()["code"] == "link_invalid"
    # links signed from now on work again once the server has refreshed its copy of the salt
    deadline = time.monotonic() + 10 * SALT_REFRESH_SECONDS
    while httpx.get(fresh := server.client.get(f"/pdfs/{uploaded['id']}", headers=tenant.headers).json()["url"]).status_code != 200:
        assert time.monotonic() < deadline, "the server kept signing with the revoked salt"
        time.sleep(0.1)
    assert httpx.get(fresh).content == sample("valid.pdf")


def test_public_base_url_is_used_for_links(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(public_base_url="https://pdfs.example.org/")
    url = server.upload(server.tenant(), sample("valid.pdf")).json()["url"]
    assert url.startswith("https://pdfs.example.org/files/pdf_")


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [("bytes=0-9", 0, 9), ("bytes=10-", 10, None), ("bytes=-20", -20, None), ("bytes=5-100000", 5, None)],
)
def test_ranges(uploaded: dict, range_header: str, start: int, end: int | None) -> None:
    content = sample("valid.pdf")
    expected = content[start:] if end is None else content[start : end + 1]
    response = httpx.get(uploaded["url"], headers={"Range": range_header})
    assert response.status_code == 206
    assert response.content == expected
    first = start if start >= 0 else len(content) + start
    assert response.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(content)}"


def test_unsatisfiable_range_is_416(uploaded: dict) -> None:
    size = len(sample("valid.pdf"))
    response = httpx.get(uploaded["url"], headers={"Range": f"bytes={size}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    assert response.json()["code"] == "range_not_satisfiable"


def test_multiple_ranges_and_stale_if_range_get_the_whole_file(uploaded: dict) -> None:
    assert httpx.get(uploaded["url"], headers={"Range": "bytes=0-1,4-5"}).status_code == 200
    assert httpx.get(uploaded["url"], headers={"Range": "bytes=0-1", "If-Range": '"other"'}).status_code == 200


def test_head_gives_headers_only(uploaded: dict) -> None:
    response = httpx.head(uploaded["url"])
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-length"] == str(len(sample("valid.pdf")))


def test_metadata_read_gives_a_fresh_working_url(server: LiveServer, tenant: Tenant, uploaded: dict) -> None:
    meta = server.client.get(f"/pdfs/{uploaded['id']}", headers=tenant.headers).json()
    assert {k: meta[k] for k in ("id", "filename", "created_at", "patient_id")} == {
        k: uploaded[k] for k in ("id", "filename", "created_at", "patient_id")
    }
    assert httpx.get(meta["url"]).content == sample("valid.pdf")


def test_delete_removes_bytes_row_and_links(server: LiveServer, tenant: Tenant, uploaded: dict) -> None:
    assert len(server.blob_keys()) == 1
    response = server.client.delete(f"/pdfs/{uploaded['id']}", headers=tenant.headers)
    assert response.status_code == 204 and response.content == b""
    assert server.stored_files() == []
    assert server.client.get(f"/pdfs/{uploaded['id']}", headers=tenant.headers).status_code == 404
    assert httpx.get(uploaded["url"]).status_code == 404
    assert server.client.delete(f"/pdfs/{uploaded['id']}", headers=tenant.headers).status_code == 404


def test_patient_pdfs_listed_newest_first(server: LiveServer, tenant: Tenant) -> None:
    ids = [server.upload(tenant, sample("valid.pdf"), filename=f"{n}.pdf").json()["id"] for n in range(3)]
    listed = server.client.get(f"/patients/{tenant.patient_id}/pdfs/", headers=tenant.headers).json()
    assert [item["id"] for item in listed] == ids[::-1]
    assert {"size", "sha256", "content_type", "url"} <= set(listed[0])
    without_slash = server.client.get(f"/patients/{tenant.patient_id}/pdfs", headers=tenant.headers).json()
    assert [item["id"] for item in without_slash] == ids[::-1]


def test_presigned_store_urls_carry_no_file_name(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(s3_presign=True)
    tenant = server.tenant()
    name = "Jane_Doe_HIV_results é Ω.pdf"
    uploaded = server.upload(tenant, sample("valid.pdf"), filename=name).json()
    fresh = server.client.get(f"/pdfs/{uploaded['id']}", headers=tenant.headers).json()["url"]
    for url in (uploaded["url"], fresh):
        response = httpx.get(url)
        assert response.status_code == 200 and response.content == sample("valid.pdf")
        if server.backend == "postgres+s3":
            # only the bucket, the id-based key and the signature: no name, no response-* override
            parts = urlsplit(url)
            storage = server.context.storage
            assert f"{parts.scheme}://{parts.netloc}" == server.settings.s3_endpoint_url
            assert unquote(parts.path) == f"/{storage.bucket}/{storage.prefix}/pdfs/{uploaded['id'][-2:]}/{uploaded['id']}.pdf"
            assert set(parse_qs(parts.query)) == {
                "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"
            }  # fmt: skip
            assert "Jane" not in unquote(url) and "response-" not in url.lower()
            # the headers come from the object itself, set at upload
            assert response.headers["content-type"] == "application/pdf"
            assert response.headers["content-disposition"] == (
                "inline; filename=\"Jane_Doe_HIV_results _ _.pdf\"; filename*=UTF-8''Jane_Doe_HIV_results%20%C3%A9%20%CE%A9.pdf"
            )
            assert response.headers["cache-control"] == "private, no-store"
        else:  # local disk has no presigned URLs: the service's own signed link
            assert url.startswith(server.base_url + "/files/")
