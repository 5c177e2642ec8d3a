"""The list endpoints page with a cursor: `?limit=`, `?cursor=`, the next page in `Link` (RFC 8288),
the bodies still JSON arrays. Pages never repeat or skip an item, even when items arrive meanwhile."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from conftest import LiveServer, Tenant, sample
from patientpdf.services.paging import DEFAULT_LIMIT, MAX_LIMIT


def walk(server: LiveServer, tenant: Tenant, url: str) -> tuple[list[list[Any]], list[str]]:
    """Every page by following rel="next"; the pages and the links followed."""
    pages, links = [], []
    while True:
        response = server.client.get(url, headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), list)
        pages.append(response.json())
        following = response.links.get("next")
        if following is None:
            return pages, links
        links.append(following["url"])
        url = following["url"]


def test_patients_page_by_id(shared_server: LiveServer) -> None:
    tenant = shared_server.tenant()
    other = shared_server.tenant()  # another account's patients never show up
    made = [tenant.patient_id]
    for n in range(4):
        made.append(shared_server.client.post("/patients", headers=tenant.headers, json={"name": f"P{n}"}).json()["id"])
    pages, links = walk(shared_server, tenant, "/patients?limit=2&url_ttl=60")
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [p["id"] for page in pages for p in page] == made
    assert other.patient_id not in [p["id"] for page in pages for p in page]
    for link in links:  # absolute, and the caller's other parameters kept
        assert link.startswith(shared_server.base_url + "/patients?")
        assert "url_ttl=60" in link and "limit=2" in link
    unpaged = shared_server.client.get("/patients", headers=tenant.headers)
    assert [p["id"] for p in unpaged.json()] == made and "link" not in unpaged.headers


def test_a_patients_pdfs_page_newest_first_and_new_uploads_do_not_shift_pages(shared_server: LiveServer) -> None:
    tenant = shared_server.tenant()
    uploaded = [shared_server.upload(tenant, sample("valid.pdf"), f"r{n}.pdf").json()["id"] for n in range(5)]
    first = shared_server.client.get(f"/patients/{tenant.patient_id}/pdfs/?limit=2", headers=tenant.headers)
    assert [p["id"] for p in first.json()] == uploaded[::-1][:2]
    newer = shared_server.upload(tenant, sample("valid.pdf"), "newer.pdf").json()["id"]
    pages, _ = walk(shared_server, tenant, first.links["next"]["url"])
    assert [p["id"] for page in pages for p in page] == uploaded[::-1][2:]
    everything = shared_server.client.get(f"/patients/{tenant.patient_id}/pdfs", headers=tenant.headers).json()
    assert [p["id"] for p in everything] == [newer, *uploaded[::-1]]


def test_keys_page(shared_server: LiveServer) -> None:
    tenant = shared_server.tenant()
    made = [tenant.key_id] + [shared_server.client.post("/keys", headers=tenant.headers, json={}).json()["id"] for _ in range(2)]
    pages, _ = walk(shared_server, tenant, "/keys?limit=1")
    assert [len(page) for page in pages] == [1, 1, 1]
    assert [k["id"] for page in pages for k in page] == made


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "bad", ["nope!", cursor("keys:1"), cursor("patients:-1"), cursor("patients:x"), cursor("patients:99999999999"), "%FF"]
)
def test_a_bad_cursor_is_400_bad_cursor(shared_server: LiveServer, bad: str) -> None:
    tenant = shared_server.tenant()
    response = shared_server.client.get("/patients", params={"cursor": bad}, headers=tenant.headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_cursor" and "Link" in response.json()["detail"]


def test_a_pdf_cursor_must_name_a_pdf_id(shared_server: LiveServer) -> None:
    tenant = shared_server.tenant()
    for bad in (cursor("pdfs:../etc"), cursor("patients:1")):
        response = shared_server.client.get(f"/patients/{tenant.patient_id}/pdfs/", params={"cursor": bad}, headers=tenant.headers)
        assert response.status_code == 400 and response.json()["code"] == "bad_cursor"


def test_limit_bounds(shared_server: LiveServer) -> None:
    tenant = shared_server.tenant()
    for limit in (0, MAX_LIMIT + 1, "ten"):
        response = shared_server.client.get("/keys", params={"limit": limit}, headers=tenant.headers)
        assert response.status_code == 422 and response.json()["code"] == "validation_error"
    assert shared_server.client.get("/keys", params={"limit": MAX_LIMIT}, headers=tenant.headers).status_code == 200


def test_the_default_page_is_documented_and_holds_at_most_the_default(shared_server: LiveServer) -> None:
    tenant = shared_server.tenant()
    for n in range(DEFAULT_LIMIT):  # with the tenant's own patient: one more than a page
        shared_server.client.post("/patients", headers=tenant.headers, json={"name": f"P{n}"})
    first = shared_server.client.get("/patients", headers=tenant.headers)
    assert len(first.json()) == DEFAULT_LIMIT and "next" in first.links
    rest = httpx.get(first.links["next"]["url"], headers=tenant.headers)
    assert len(rest.json()) == 1 and "link" not in rest.headers
    spec = shared_server.client.get("/openapi.json").json()
    limit = next(p for p in spec["paths"]["/patients"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["default"] == DEFAULT_LIMIT and limit["schema"]["maximum"] == MAX_LIMIT
