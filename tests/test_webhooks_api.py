"""Webhook endpoints over the API, on both backends: register (secret shown once, sealed at
rest), list, read, change, delete; admin scope; another account's endpoints are 404; URLs that
could reach inside (SSRF) refused with stable codes before anything connects anywhere."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from conftest import LiveServer, Tenant
from patientpdf.services.accounts import create_key
from processing_helpers import sql
from webhook_helpers import Listener

EVENTS = ["pdf.uploaded", "pdf.processed", "pdf.processing_failed", "pdf.deleted", "key.revoked"]
PUBLIC_URL = "https://1.1.1.1/hooks/patientpdf"  # a global address: registered, never sent to (no worker runs here)


@pytest.fixture
def listener() -> Iterator[Listener]:
    sock = Listener()
    yield sock
    sock.close()


def test_register_read_change_and_delete_an_endpoint(server: LiveServer, tenant: Tenant) -> None:
    created = server.client.post("/webhooks", headers=tenant.headers, json={"url": PUBLIC_URL, "events": ["pdf.processed", "pdf.uploaded"]})
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"/webhooks/{body['id']}"
    assert body["url"] == PUBLIC_URL and body["events"] == ["pdf.uploaded", "pdf.processed"]  # in the documented order
    assert body["enabled"] is True and body["disabled_reason"] is None and body["disabled_at"] is None
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:], validate=True)) == 32
    # shown once: never in a listing or a read, and not in the database either (sealed)
    listed = server.client.get("/webhooks", headers=tenant.headers).json()
    assert [item["id"] for item in listed] == [body["id"]] and "secret" not in listed[0]
    read = server.client.get(f"/webhooks/{body['id']}", headers=tenant.headers).json()
    assert "secret" not in read and read["url"] == PUBLIC_URL
    [stored] = sql(server, "SELECT secret, previous_secret FROM webhook_endpoints")
    assert secret not in stored["secret"] and secret[6:] not in stored["secret"] and stored["previous_secret"] is None
    # changed: events, URL (checked again), disabled and enabled
    changed = server.client.patch(f"/webhooks/{body['id']}", headers=tenant.headers, json={"events": ["key.revoked"], "url": PUBLIC_URL + "/v2"})
    assert changed.status_code == 200 and changed.json()["events"] == ["key.revoked"] and changed.json()["url"].endswith("/v2")
    disabled = server.client.patch(f"/webhooks/{body['id']}", headers=tenant.headers, json={"enabled": False}).json()
    assert disabled["enabled"] is False and disabled["disabled_reason"] == "disabled" and disabled["disabled_at"]
    enabled = server.client.patch(f"/webhooks/{body['id']}", headers=tenant.headers, json={"enabled": True}).json()
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None and enabled["disabled_at"] is None
    # deleted
    assert server.client.delete(f"/webhooks/{body['id']}", headers=tenant.headers).status_code == 204
    gone = server.client.get(f"/webhooks/{body['id']}", headers=tenant.headers)
    assert gone.status_code == 404 and gone.json()["code"] == "webhook_not_found"
    assert server.client.get("/webhooks", headers=tenant.headers).json() == []


def test_endpoints_need_the_admin_scope_and_belong_to_their_account(server: LiveServer, tenant: Tenant) -> None:
    webhook_id = server.client.post("/webhooks", headers=tenant.headers, json={"url": PUBLIC_URL, "events": EVENTS}).json()["id"]
    reader = {"X-API-Key": create_key(server.context, tenant.account_id, "reader", ("read", "upload"))["key"]}
    for method, path in (("GET", "/webhooks"), ("POST", "/webhooks"), ("GET", f"/webhooks/{webhook_id}/deliveries")):
        response = server.client.request(method, path, headers=reader, json={"url": PUBLIC_URL, "events": EVENTS})
        assert response.status_code == 403 and response.json()["code"] == "insufficient_scope", path
    other = server.tenant("Other Clinic")
    assert server.client.get("/webhooks", headers=other.headers).json() == []
    for method, path in (
        ("GET", f"/webhooks/{webhook_id}"), ("PATCH", f"/webhooks/{webhook_id}"), ("DELETE", f"/webhooks/{webhook_id}"),
        ("POST", f"/webhooks/{webhook_id}/rotate-secret"), ("POST", f"/webhooks/{webhook_id}/test"),
        ("GET", f"/webhooks/{webhook_id}/deliveries"),
    ):  # fmt: skip
        response = server.client.request(method, path, headers=other.headers, json={})
        assert response.status_code == 404 and response.json()["code"] == "webhook_not_found", (method, path)
    assert server.client.get(f"/webhooks/{webhook_id}", headers=tenant.headers).status_code == 200  # untouched


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://example.com/hook", "webhook_url_not_https"),
        ("https://169.254.169.254/latest/meta-data/", "webhook_url_not_public"),  # the cloud metadata service
        ("https://10.1.2.3/hook", "webhook_url_not_public"),
        ("https://100.64.0.7/hook", "webhook_url_not_public"),  # carrier-grade NAT
        ("https://[fd00::1]/hook", "webhook_url_not_public"),
        ("https://[fe80::1]/hook", "webhook_url_not_public"),
        ("https://[64:ff9b::a9fe:a9fe]/hook", "webhook_url_not_public"),  # NAT64 of 169.254.169.254
        ("https://[2002:a9fe:a9fe::1]/hook", "webhook_url_not_public"),  # 6to4 of 169.254.169.254
        ("https://224.0.0.251/hook", "webhook_url_not_public"),  # multicast (Python calls it global)
        ("https://0.0.0.0/hook", "webhook_url_not_public"),
        ("https://[::]/hook", "webhook_url_not_public"),
        ("ftp://example.com/hook", "webhook_url_invalid"),
        ("hooks.example.com/path", "webhook_url_invalid"),
        ("https://user:pass@example.com/hook", "webhook_url_invalid"),
        ("https://" + "a" * 2000 + ".com/", "webhook_url_invalid"),
        ("https://0177.0.0.1/hook", "webhook_url_invalid"),  # dotted octal: refused by the URL parser itself
    ],
)
def test_urls_that_could_reach_inside_are_refused(shared_server: LiveServer, url: str, code: str) -> None:
    server = shared_server
    tenant = server.tenant()
    response = server.client.post("/webhooks", headers=tenant.headers, json={"url": url, "events": EVENTS})
    assert response.status_code == 400 and response.json()["code"] == code, response.text
    assert response.json()["detail"]
    assert server.client.get("/webhooks", headers=tenant.headers).json() == []


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "2130706433", "0x7f000001", "017700000001", "0x7f.1", "127.1", "localhost", "[::1]"],
)
def test_loopback_in_every_spelling_is_refused_and_nothing_connects(shared_server: LiveServer, listener: Listener, host: str) -> None:
    """Integer, hex, octal and short hosts are names the resolver turns into 127.0.0.1; `localhost`
    is a name that resolves to it; all are refused after resolution. The listener on the port
    they name sees no connection."""
    server = shared_server
    tenant = server.tenant()
    url = f"https://{host}:{listener.port}/hook"
    response = server.client.post("/webhooks", headers=tenant.headers, json={"url": url, "events": EVENTS})
    assert response.status_code == 400 and response.json()["code"] == "webhook_url_not_public", response.text
    changed = server.client.post("/webhooks", headers=tenant.headers, json={"url": PUBLIC_URL, "events": EVENTS}).json()
    patched = server.client.patch(f"/webhooks/{changed['id']}", headers=tenant.headers, json={"url": url})
    assert patched.status_code == 400 and patched.json()["code"] == "webhook_url_not_public"
    assert server.client.get(f"/webhooks/{changed['id']}", headers=tenant.headers).json()["url"] == PUBLIC_URL
    assert listener.connections() == 0


def test_event_types_are_checked(server: LiveServer, tenant: Tenant) -> None:
    unknown = server.client.post("/webhooks", headers=tenant.headers, json={"url": PUBLIC_URL, "events": ["pdf.uploaded", "pdf.read"]})
    assert unknown.status_code == 400 and unknown.json()["code"] == "webhook_event_unknown" and "pdf.read" in unknown.json()["detail"]
    empty = server.client.post("/webhooks", headers=tenant.headers, json={"url": PUBLIC_URL, "events": []})
    assert empty.status_code == 400 and empty.json()["code"] == "webhook_events_empty"
    missing = server.client.post("/webhooks", headers=tenant.headers, json={"url": PUBLIC_URL})
    assert missing.status_code == 422 and missing.json()["code"] == "validation_error"


def test_an_allowed_host_may_use_plain_http_and_loopback_and_nothing_else_may(make_server, backend: str) -> None:  # type: ignore[no-untyped-def]
    server = make_server(webhook_allowed_hosts="127.0.0.1, Receiver.Test")
    tenant = server.tenant()
    for url in ("http://127.0.0.1:9/hook", "https://127.0.0.1:9/hook"):
        assert server.client.post("/webhooks", headers=tenant.headers, json={"url": url, "events": EVENTS}).status_code == 201
    for url, code in (("http://localhost:9/hook", "webhook_url_not_https"), ("https://127.0.0.2:9/hook", "webhook_url_not_public")):
        response = server.client.post("/webhooks", headers=tenant.headers, json={"url": url, "events": EVENTS})
        assert response.status_code == 400 and response.json()["code"] == code, url


def test_an_account_has_at_most_twenty_endpoints(server: LiveServer, tenant: Tenant) -> None:
    for n in range(20):
        assert server.client.post("/webhooks", headers=tenant.headers, json={"url": f"{PUBLIC_URL}/{n}", "events": EVENTS}).status_code == 201
    refused = server.client.post("/webhooks", headers=tenant.headers, json={"url": PUBLIC_URL, "events": EVENTS})
    assert refused.status_code == 409 and refused.json()["code"] == "webhook_limit_reached"
