"""Protocol hygiene on every route: no caching of PHI, no sniffing, no Referer leaks, no
wildcard CORS, and a 405 that names the allowed methods (RFC 9110 §15.5.6)."""

from __future__ import annotations

from typing import Any

import functools
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import fastapi.routing
import httpx
import pytest
from starlette.routing import Mount

from conftest import LiveServer, Tenant, sample
from patientpdf.app import create_app
from patientpdf.settings import Settings

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
# Public, static and free of patient data: the only responses that may be cached.
PUBLIC_DOCS = ("/docs", "/redoc", "/openapi.json", "/static/docs/")


@functools.cache
def route_table() -> dict[str, frozenset[str]]:
    """Every path template the app serves and the methods it answers there, as FastAPI
    itself enumerates them for its OpenAPI document (the hidden aliases and HEAD too)."""
    with_context = getattr(fastapi.routing, "iter_route_contexts", None)  # FastAPI >= 0.137 nests included routers
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=Path(data_dir)))
        try:
            routes = list(with_context(app.routes)) if with_context else list(app.routes)
        finally:
            app.state.context.close()
    table: dict[str, set[str]] = {}

    def add(routes: list[Any], prefix: str) -> None:
        for route in routes:
            mount = getattr(route, "original_route", route)
            if isinstance(mount, Mount) and mount.name == "docs-static":
                table[prefix + route.path + "/swagger-ui.css"] = {"GET", "HEAD"}  # StaticFiles, at one real file of the mount
            elif isinstance(mount, Mount) and isinstance(getattr(mount.app, "routes", None), list):
                sub = mount.app.routes  # a sub-application (the console): its own routes
                add(list(with_context(sub)) if with_context else list(sub), prefix + mount.path)
            elif isinstance(mount, Mount):
                continue  # other static files (the console's): a file server, not a route
            else:
                table.setdefault(prefix + route.path, set()).update(route.methods)

    add(routes, "")
    return {path: frozenset(methods) for path, methods in table.items()}


def concrete(template: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template)


@pytest.fixture
def ids(server: LiveServer, tenant: Tenant) -> dict[str, str]:
    pdf = server.upload(tenant, sample("valid.pdf"))
    assert pdf.status_code == 201
    return {"patient_id": str(tenant.patient_id), "pdf_id": pdf.json()["id"], "key_id": str(tenant.key_id), "page": "1",
            "webhook_id": "1", "delivery_id": "msg_" + "0" * 29}


def test_the_route_table_is_the_whole_api() -> None:
    """The enumeration the 405 test relies on must not go quiet (FastAPI changed it in 0.137)."""
    table = route_table()
    assert table["/patients/{patient_id}/pdf/"] == {"POST"}
    assert table["/pdfs/{pdf_id}"] == {"GET", "DELETE"}
    assert table["/pdfs/{pdf_id}/content"] == {"GET", "HEAD"}
    assert table["/keys"] == {"GET", "POST"}
    assert len(table) >= 19


def test_every_405_names_the_allowed_methods_as_json(server: LiveServer, ids: dict[str, str], tenant: Tenant) -> None:
    checked = 0
    for template, allowed in route_table().items():
        path = concrete(template, ids)
        for method in METHODS:
            if method in allowed:
                continue
            response = server.client.request(method, path, headers=tenant.headers)
            where = f"{method} {path}"
            assert response.status_code == 405, where
            assert set(re.split(r"\s*,\s*", response.headers.get("allow", ""))) == allowed, where
            if method != "HEAD" and path.startswith("/console/"):
                # the console is a browser's: its errors are pages, with the same status and Allow
                assert response.headers["content-type"].startswith("text/html"), where
            elif method != "HEAD":
                assert response.headers["content-type"] == "application/json", where
                assert response.json()["code"] == "method_not_allowed", where
                assert set(response.json()) == {"detail", "code"}, where
            checked += 1
    assert checked > 100


def test_the_upload_path_names_post(server: LiveServer, tenant: Tenant) -> None:
    """The defect as reported: GET/PUT/PATCH/DELETE on the upload path had an empty Allow."""
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        for path in (f"/patients/{tenant.patient_id}/pdf/", f"/patients/{tenant.patient_id}/pdf"):
            response = server.client.request(method, path, headers=tenant.headers)
            assert response.status_code == 405 and response.headers["allow"] == "POST", (method, path)


def _authenticated_requests(server: LiveServer, tenant: Tenant, ids: dict[str, str]) -> Iterator[tuple[str, str, httpx.Response]]:
    """One request for every route and method that takes a key, and the errors around them."""
    client, key = server.client, tenant.headers
    spare_pdf = server.upload(tenant, sample("valid.pdf"))
    yield "POST", "/patients/{patient_id}/pdf/", spare_pdf
    p, d = ids["patient_id"], ids["pdf_id"]
    files, form = {"file": ("x.pdf", sample("valid.pdf"))}, {"filename": "x.pdf"}
    yield "POST", "/patients/{patient_id}/pdf", client.post(f"/patients/{p}/pdf", headers=key, files=files, data=form)
    yield "GET", "/pdfs/{pdf_id}", client.get(f"/pdfs/{d}", headers=key)
    yield "GET", "/pdfs/{pdf_id}/content", client.get(f"/pdfs/{d}/content", headers=key)
    yield "GET", "/pdfs/{pdf_id}/content", client.get(f"/pdfs/{d}/content", headers=key | {"Range": "bytes=0-9"})
    yield "HEAD", "/pdfs/{pdf_id}/content", client.head(f"/pdfs/{d}/content", headers=key)
    url = client.get(f"/pdfs/{d}", headers=key).json()["url"]
    yield "GET", "/files/{pdf_id}", httpx.get(url)
    yield "HEAD", "/files/{pdf_id}", httpx.head(url)
    yield "GET", "/patients/{patient_id}/pdfs/", client.get(f"/patients/{p}/pdfs/", headers=key)
    yield "GET", "/patients/{patient_id}/pdfs", client.get(f"/patients/{p}/pdfs", headers=key)
    yield "POST", "/patients", client.post("/patients", headers=key, json={"name": "Jane Roe"})
    yield "GET", "/patients", client.get("/patients", headers=key)
    yield "GET", "/patients/{patient_id}/", client.get(f"/patients/{p}/", headers=key)
    yield "GET", "/patients/{patient_id}", client.get(f"/patients/{p}", headers=key)
    yield "GET", "/keys", client.get("/keys", headers=key)
    spare_key = client.post("/keys", headers=key, json={"name": "spare"})
    yield "POST", "/keys", spare_key
    yield "POST", "/keys/{key_id}/rotate", client.post(f"/keys/{spare_key.json()['id']}/rotate", headers=key, json={})
    yield "DELETE", "/keys/{key_id}", client.delete(f"/keys/{spare_key.json()['id']}", headers=key)
    yield "GET", "/pdfs/{pdf_id}/extraction", client.get(f"/pdfs/{d}/extraction", headers=key)
    yield "POST", "/pdfs/{pdf_id}/reprocess", client.post(f"/pdfs/{d}/reprocess", headers=key)
    yield "GET", "/search", client.get("/search", headers=key, params={"q": "riverside"})
    yield "DELETE", "/pdfs/{pdf_id}", client.delete(f"/pdfs/{spare_pdf.json()['id']}", headers=key)
    # webhooks: the list, a refused registration (no public HTTPS here) and an unknown endpoint
    yield "GET", "/webhooks", client.get("/webhooks", headers=key)
    yield "POST", "/webhooks", client.post("/webhooks", headers=key, json={"url": "http://127.0.0.1:9/", "events": ["pdf.uploaded"]})
    w, m = ids["webhook_id"], ids["delivery_id"]
    yield "GET", "/webhooks/{webhook_id}", client.get(f"/webhooks/{w}", headers=key)
    yield "PATCH", "/webhooks/{webhook_id}", client.patch(f"/webhooks/{w}", headers=key, json={"enabled": False})
    yield "DELETE", "/webhooks/{webhook_id}", client.delete(f"/webhooks/{w}", headers=key)
    yield "POST", "/webhooks/{webhook_id}/rotate-secret", client.post(f"/webhooks/{w}/rotate-secret", headers=key, json={})
    yield "POST", "/webhooks/{webhook_id}/test", client.post(f"/webhooks/{w}/test", headers=key)
    yield "GET", "/webhooks/{webhook_id}/deliveries", client.get(f"/webhooks/{w}/deliveries", headers=key)
    yield "GET", "/webhooks/{webhook_id}/deliveries/{delivery_id}", client.get(f"/webhooks/{w}/deliveries/{m}", headers=key)
    yield "POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", client.post(f"/webhooks/{w}/deliveries/{m}/retry", headers=key)
    # errors: the framework's and ours
    yield "error", "401", client.get("/patients")
    yield "error", "401 upload", client.post(f"/patients/{p}/pdf/", headers={"X-API-Key": "ppk_wrong"})
    yield "error", "404", client.get("/pdfs/pdf_00000000000000000000000000000", headers=key)
    yield "error", "404 route", client.get("/no/such/route", headers=key)
    yield "error", "405", client.put("/patients", headers=key)
    yield "error", "422", client.post("/patients", headers=key, json={"name": 5})
    yield "error", "400", client.post(f"/patients/{p}/pdf/", headers=key, content=b"x")
    yield "error", "403 link", httpx.get(url.replace("signature=", "signature=x"))
    yield "error", "416", client.get(f"/pdfs/{d}/content", headers=key | {"Range": "bytes=999999-"})
    yield "public", "/healthz", client.get("/healthz")
    yield "public", "/readyz", client.get("/readyz")


def test_no_response_with_patient_data_can_be_cached_or_sniffed(server: LiveServer, tenant: Tenant, ids: dict[str, str]) -> None:
    covered: set[tuple[str, str]] = set()
    for method, template, response in _authenticated_requests(server, tenant, ids):
        where = f"{method} {template} -> {response.status_code}"
        assert response.status_code < 500, where
        cache_control = {token.strip() for token in response.headers.get("cache-control", "").split(",")}
        assert "no-store" in cache_control, where
        assert response.headers.get("x-content-type-options") == "nosniff", where
        assert response.headers.get("referrer-policy") == "no-referrer", where
        covered.add((method, template))
    # every route that is not public documentation was exercised above
    for template, methods in route_table().items():
        # the console's pages (a session, not a key) are covered by tests/test_console_security.py
        if not template.startswith((*PUBLIC_DOCS, "/console")) and template not in ("/healthz", "/readyz"):
            for method in methods:
                assert (method, template) in covered, f"{method} {template} has no case here"


def test_downloads_send_no_referrer(server: LiveServer, tenant: Tenant, ids: dict[str, str]) -> None:
    url = server.client.get(f"/pdfs/{ids['pdf_id']}", headers=tenant.headers).json()["url"]
    for response in (httpx.get(url), server.client.get(f"/pdfs/{ids['pdf_id']}/content", headers=tenant.headers)):
        assert response.status_code == 200 and response.headers["referrer-policy"] == "no-referrer"
        assert "no-store" in response.headers["cache-control"]


def test_public_docs_stay_cacheable(server: LiveServer) -> None:
    response = server.client.get("/static/docs/swagger-ui.css")
    assert response.status_code == 200 and "no-store" not in response.headers.get("cache-control", "")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_no_wildcard_cors_anywhere(server: LiveServer, tenant: Tenant, ids: dict[str, str]) -> None:
    origin = {"Origin": "https://evil.example"}
    preflight = origin | {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    for template in route_table():
        path = concrete(template, ids)
        for response in (
            server.client.get(path, headers=origin | tenant.headers),
            server.client.options(path, headers=preflight),
        ):
            assert "access-control-allow-origin" not in response.headers, path
            assert "access-control-allow-credentials" not in response.headers, path


def test_a_crash_is_not_cacheable_either(server: LiveServer, tenant: Tenant) -> None:
    """A 500 leaves from outside every middleware (Starlette's ServerErrorMiddleware)."""
    from sqlalchemy import text

    server.require("sqlite+local", "the failing insert is an SQLite trigger")
    with server.context.db.write() as conn:
        conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON pdfs BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    response = server.upload(tenant, sample("valid.pdf"))
    assert response.status_code == 500 and response.json()["code"] == "internal_error"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
