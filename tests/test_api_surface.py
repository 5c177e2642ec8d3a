"""The API as a whole: one error shape, OpenAPI that documents the upload as the doc does, offline docs, health."""

from __future__ import annotations

import re

from conftest import LiveServer, Tenant


def test_framework_errors_share_the_json_shape(server: LiveServer, tenant: Tenant) -> None:
    cases = [
        server.client.get("/no/such/path"),
        server.client.put("/patients"),
        server.client.get("/patients/not-a-number/", headers=tenant.headers),  # like an unknown patient (test_path_ids)
        server.client.post("/patients", headers=tenant.headers, json={"name": 5}),
    ]
    assert [r.status_code for r in cases] == [404, 405, 404, 422]
    for response in cases:
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == {"detail", "code"}
        assert re.fullmatch(r"[a-z_]+", body["code"])
        assert "Traceback" not in body["detail"] and "/src/" not in body["detail"]


def test_openapi_documents_the_upload(server: LiveServer) -> None:
    spec = server.client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["X-API-Key"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "Your account's API key.",
    }
    operation = spec["paths"]["/patients/{patient_id}/pdf/"]["post"]
    assert operation["summary"] == "Upload Patient PDF"
    assert operation["security"] == [{"X-API-Key": []}]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file", "filename"]
    assert schema["properties"]["file"] == {"type": "string", "format": "binary", "description": "The PDF file to upload"}
    assert schema["properties"]["filename"]["type"] == "string"
    parameter = operation["parameters"][0]
    assert parameter["name"] == "patient_id" and parameter["in"] == "path" and parameter["schema"]["type"] == "integer"
    assert {"201", "400", "401", "403", "404", "413"} <= set(operation["responses"])
    assert operation["responses"]["413"]["description"].startswith("File too large.")
    success = operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    fields = spec["components"]["schemas"][success]["properties"]
    assert list(fields)[:5] == ["id", "url", "filename", "created_at", "patient_id"]  # the doc's fields, first
    assert {"sha256", "duplicate_of", "active_content"} <= set(fields)
    headers = {parameter["name"] for parameter in operation["parameters"] if parameter["in"] == "header"}
    assert {"Idempotency-Key", "Repr-Digest"} <= headers
    assert fields["created_at"]["format"] == "date-time" and fields["patient_id"]["type"] == "integer"
    assert "/patients/{patient_id}/pdf" not in spec["paths"]  # the slash-less alias is not listed twice


def test_interactive_docs_need_no_internet(server: LiveServer) -> None:
    for page in ("/docs", "/redoc"):
        html = server.client.get(page).text
        assert "cdn" not in html.lower() and "googleapis" not in html
        for asset in re.findall(r'(?:src|href)="(/static/docs/[^"]+)"', html):
            assert server.client.get(asset).status_code == 200, asset
    assert "/static/docs/swagger-ui-bundle.js" in server.client.get("/docs").text


def test_health_and_readiness(server: LiveServer) -> None:
    assert server.client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = server.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}


def test_readiness_names_the_backend_that_is_down(server: LiveServer) -> None:
    server.require("sqlite+local", "moves the blobs directory away (see test_backends_down for S3)")
    blobs = server.data_dir / "blobs"
    blobs.rename(server.data_dir / "blobs-away")
    try:
        response = server.client.get("/readyz")
    finally:
        (server.data_dir / "blobs-away").rename(blobs)
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert response.json()["checks"] == {"database": "ok", "storage": "unavailable"}
    assert server.client.get("/readyz").status_code == 200


def test_every_response_carries_a_request_id(server: LiveServer) -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", server.client.get("/healthz").headers["x-request-id"])
    assert server.client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
