"""API keys and account isolation: a key never reaches another account's data."""

from __future__ import annotations

import http.client
import json

from conftest import LiveServer, Tenant, sample
from patientpdf.services.accounts import list_keys, revoke_key


def test_missing_and_invalid_keys_are_401_everywhere(server: LiveServer, tenant: Tenant) -> None:
    pdf_id = server.upload(tenant, sample("valid.pdf")).json()["id"]
    endpoints = [
        ("GET", "/patients"),
        ("POST", "/patients"),
        ("GET", f"/patients/{tenant.patient_id}/"),
        ("GET", f"/patients/{tenant.patient_id}/pdfs/"),
        ("GET", f"/pdfs/{pdf_id}"),
        ("GET", f"/pdfs/{pdf_id}/content"),
        ("DELETE", f"/pdfs/{pdf_id}"),
        ("POST", f"/patients/{tenant.patient_id}/pdf/"),
    ]
    wrong = tenant.key[:-1] + ("x" if tenant.key[-1] != "x" else "y")  # never the key itself (1 time in 62)
    for headers, code in (({}, "api_key_missing"), ({"X-API-Key": wrong}, "api_key_invalid")):
        for method, path in endpoints:
            response = server.client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.json()["code"] == code
    assert server.client.get(f"/pdfs/{pdf_id}", headers=tenant.headers).status_code == 200


def test_revoked_key_is_401_at_once(server: LiveServer, tenant: Tenant) -> None:
    assert server.client.get("/patients", headers=tenant.headers).status_code == 200
    revoke_key(server.context, tenant.key_id)
    response = server.client.get("/patients", headers=tenant.headers)
    assert response.status_code == 401 and response.json()["code"] == "api_key_revoked"
    assert server.upload(tenant, sample("valid.pdf")).status_code == 401


def test_key_is_stored_only_as_a_hash_and_records_last_use(server: LiveServer, tenant: Tenant) -> None:
    from sqlalchemy import text

    with server.context.db.read() as conn:
        stored = " ".join(str(v) for row in conn.execute(text("SELECT * FROM api_keys")).all() for v in row)
    assert tenant.key not in stored and tenant.key[:12] in stored
    assert list_keys(server.context, tenant.account_id)[0]["last_used_at"] is None
    server.client.get("/patients", headers=tenant.headers)
    assert list_keys(server.context, tenant.account_id)[0]["last_used_at"] is not None


def test_another_accounts_data_is_out_of_reach(server: LiveServer, tenant: Tenant) -> None:
    other = server.tenant("Other clinic")
    theirs = server.upload(other, sample("valid.pdf")).json()["id"]
    mine = tenant.headers
    # PDFs: as if they did not exist
    for method, path in (("GET", f"/pdfs/{theirs}"), ("GET", f"/pdfs/{theirs}/content"), ("DELETE", f"/pdfs/{theirs}")):
        response = server.client.request(method, path, headers=mine)
        assert response.status_code == 404 and response.json()["code"] == "pdf_not_found"
    # patients: 403, as the upload doc says
    for path in (f"/patients/{other.patient_id}/", f"/patients/{other.patient_id}/pdfs/"):
        response = server.client.get(path, headers=mine)
        assert response.status_code == 403 and response.json()["code"] == "patient_forbidden"
    assert server.upload(tenant, sample("valid.pdf"), patient_id=other.patient_id).status_code == 403
    assert [p["id"] for p in server.client.get("/patients", headers=mine).json()] == [tenant.patient_id]
    # and the other account still has its PDF
    assert server.client.get(f"/pdfs/{theirs}", headers=other.headers).status_code == 200


def raw_get(server: LiveServer, path: str, headers: dict[str, str]) -> tuple[int, dict]:
    """GET with the path sent byte for byte: http.client neither resolves dot segments nor
    re-encodes, as httpx (and browsers) do before a request leaves."""
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_malformed_or_unknown_pdf_ids_are_404(server: LiveServer, tenant: Tenant) -> None:
    # Each id is one path segment once decoded, so it reaches the PDF routes, which answer as for
    # any PDF not in the account: dot segments and backslashes never resolve to a file.
    for raw_id in ("pdf_x", "..", "%2E%2E", ".%2e", "..%5Cetc%5Cpasswd", "pdf_" + "0" * 29, "%00"):
        for route in ("/pdfs/{}", "/pdfs/{}/content"):
            status, body = raw_get(server, route.format(raw_id), tenant.headers)
            assert (status, body["code"]) == (404, "pdf_not_found"), (route.format(raw_id), body)
            assert set(body) == {"detail", "code"}
    # An id with a slash, raw or encoded, is not one segment: no route takes it (the router's 404).
    for path in ("/pdfs/../etc/passwd", "/pdfs/..%2Fetc%2Fpasswd", "/pdfs/../etc/passwd/content"):
        status, body = raw_get(server, path, tenant.headers)
        assert (status, body["code"]) == (404, "not_found"), (path, body)
