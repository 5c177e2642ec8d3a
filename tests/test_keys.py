"""API keys for real life: scopes, expiry, rotation with a grace period, and rate limits."""

from __future__ import annotations

from datetime import timedelta

from conftest import LiveServer, Tenant, sample
from patientpdf.services.accounts import create_key, list_keys, rotate_key
from patientpdf.services.clock import now_utc


def key_with(server: LiveServer, tenant: Tenant, scopes: tuple[str, ...], **kw) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"X-API-Key": create_key(server.context, tenant.account_id, "scoped", scopes, **kw)["key"]}


def test_a_key_used_beyond_its_scope_gets_403(server: LiveServer, tenant: Tenant) -> None:
    pdf_id = server.upload(tenant, sample("valid.pdf")).json()["id"]
    upload_only = key_with(server, tenant, ("upload",))
    read_only = key_with(server, tenant, ("read",))
    files = {"file": ("a.pdf", sample("valid.pdf"), "application/pdf")}
    # an upload-only key (a fax gateway): uploads and registers patients, reads nothing
    assert server.client.post(f"/patients/{tenant.patient_id}/pdf/", headers=upload_only, files=files, data={"filename": "a.pdf"}).status_code == 201
    assert server.client.post("/patients", headers=upload_only, json={"name": "New Patient"}).status_code == 201
    for path in ("/patients", f"/pdfs/{pdf_id}", f"/pdfs/{pdf_id}/content", f"/patients/{tenant.patient_id}/pdfs/"):
        response = server.client.get(path, headers=upload_only)
        assert response.status_code == 403 and response.json()["code"] == "insufficient_scope", path
        assert "'read' scope" in response.json()["detail"]
    # a read-only key: reads, cannot upload or delete
    assert server.client.get(f"/pdfs/{pdf_id}/content", headers=read_only).content == sample("valid.pdf")
    refused = server.client.post(f"/patients/{tenant.patient_id}/pdf/", headers=read_only, files=files, data={"filename": "a.pdf"})
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    assert server.client.delete(f"/pdfs/{pdf_id}", headers=read_only).status_code == 403
    # deleting takes admin
    assert server.client.delete(f"/pdfs/{pdf_id}", headers=key_with(server, tenant, ("admin",))).status_code == 204


def test_an_expired_key_is_401(server: LiveServer, tenant: Tenant) -> None:
    expired = key_with(server, tenant, ("read",), expires_at=now_utc() - timedelta(seconds=1))
    response = server.client.get("/patients", headers=expired)
    assert response.status_code == 401 and response.json()["code"] == "api_key_expired"
    live = key_with(server, tenant, ("read",), expires_at=now_utc() + timedelta(hours=1))
    assert server.client.get("/patients", headers=live).status_code == 200


def test_rotation_issues_a_new_key_and_the_old_one_lives_for_the_grace_period(server: LiveServer, tenant: Tenant) -> None:
    rotated = rotate_key(server.context, tenant.key_id, timedelta(hours=1))
    new = {"X-API-Key": rotated["key"]}
    assert rotated["scopes"] == ["upload", "read", "admin"] and rotated["prefix"] == rotated["key"][:12]
    assert server.client.get("/patients", headers=new).status_code == 200
    assert server.client.get("/patients", headers=tenant.headers).status_code == 200  # within the grace period
    rotate_key(server.context, rotated["id"], timedelta(0))  # no grace: the old key stops at once
    response = server.client.get("/patients", headers=new)
    assert response.status_code == 401 and response.json()["code"] == "api_key_expired"
    listed = {row["id"]: row for row in list_keys(server.context, tenant.account_id)}
    assert listed[tenant.key_id]["expires_at"] is not None and "key" not in listed[tenant.key_id]


def hammer_with_bad_keys(server: LiveServer, count: int, address: str = "127.0.0.1") -> list[int]:
    return [
        server.client.get("/patients", headers={"X-API-Key": f"ppk_wrong{i}", "X-Forwarded-For": address}).status_code
        for i in range(count)
    ]


def test_failed_authentication_is_rate_limited_per_address(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(failed_auth_limit="5/minute")
    tenant = server.tenant()
    # The test server trusts X-Forwarded-For from 127.0.0.1 (uvicorn's default), as behind a proxy.
    assert hammer_with_bad_keys(server, 6, "203.0.113.7") == [401] * 5 + [429]
    blocked = server.client.get("/patients", headers={"X-API-Key": "ppk_wrong", "X-Forwarded-For": "203.0.113.7"})
    assert blocked.status_code == 429 and blocked.json()["code"] == "too_many_failed_authentications"
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    # only failures are refused: a valid key from that address is served (test_failed_auth_lockout)
    assert server.client.get("/patients", headers=tenant.headers | {"X-Forwarded-For": "203.0.113.7"}).status_code == 200
    # another address is not affected
    assert hammer_with_bad_keys(server, 1, "203.0.113.8") == [401]


def test_a_key_can_be_given_a_request_rate(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(key_rate_limit="3/minute")
    tenant = server.tenant()
    statuses = [server.client.get("/patients", headers=tenant.headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    other = server.tenant("Other")
    assert server.client.get("/patients", headers=other.headers).status_code == 200


def test_processes_sharing_redis_count_failures_together(make_server, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    import secrets

    shared = {"failed_auth_limit": "4/minute", "rate_limit_storage": redis_url}
    first, second = make_server(**shared), make_server(**shared)
    address = f"198.51.100.{secrets.randbelow(250) + 1}"
    assert hammer_with_bad_keys(first, 2, address) + hammer_with_bad_keys(second, 3, address) == [401] * 4 + [429]


def test_an_admin_key_manages_the_accounts_keys_over_http(server: LiveServer, tenant: Tenant) -> None:
    from patientpdf.services import audit

    created = server.client.post("/keys", headers=tenant.headers, json={"name": "fax", "scopes": ["upload"], "expires_in_seconds": 3600})
    assert created.status_code == 201
    new = created.json()
    assert new["scopes"] == ["upload"] and new["key"].startswith(new["prefix"]) and new["expires_at"].endswith("Z")
    listed = server.client.get("/keys", headers=tenant.headers).json()
    assert {k["prefix"] for k in listed} == {tenant.key[:12], new["prefix"]} and all("key" not in k for k in listed)
    fax = {"X-API-Key": new["key"]}
    assert server.client.get("/keys", headers=fax).json()["code"] == "insufficient_scope"  # upload-only
    rotated = server.client.post(f"/keys/{new['id']}/rotate", headers=tenant.headers, json={"grace_seconds": 0})
    assert rotated.status_code == 201 and rotated.json()["scopes"] == ["upload"]
    assert server.client.get("/patients", headers=fax).json()["code"] == "api_key_expired"
    revoked = server.client.delete(f"/keys/{rotated.json()['id']}", headers=tenant.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    # another account's key is out of reach, as if it did not exist
    other = server.tenant("Other clinic")
    response = server.client.delete(f"/keys/{other.key_id}", headers=tenant.headers)
    assert response.status_code == 404 and response.json()["code"] == "key_not_found"
    assert server.client.get("/patients", headers=other.headers).status_code == 200
    bad = server.client.post("/keys", headers=tenant.headers, json={"scopes": ["root"]})
    assert bad.status_code == 422
    # each change is audited once, under the acting key, refusals included
    with server.context.db.read() as conn:
        changes = [
            (r["action"], r["outcome"], r["key_prefix"])
            for r in audit.export_rows(conn, tenant.account_id, None)
            if r["action"].startswith("key.")
        ]
    actor = tenant.key[:12]
    assert changes == [
        ("key.create", "ok", None),  # the tenant's own key, by the CLI
        ("key.create", "ok", actor),
        ("key.list", "200", actor),
        ("key.list", "403 insufficient_scope", new["prefix"]),
        ("key.rotate", "ok", actor),
        ("key.create", "ok", actor),
        ("key.revoke", "ok", actor),
        ("key.revoke", "404 key_not_found", actor),
        ("key.create", "422 validation_error", actor),
    ]


def test_key_bodies_take_numbers_not_booleans(server: LiveServer, tenant: Tenant) -> None:
    for body in ({"grace_seconds": False}, {"grace_seconds": True}, {"grace_seconds": "60"}, {"grace_seconds": 1.5}):
        response = server.client.post(f"/keys/{tenant.key_id}/rotate", headers=tenant.headers, json=body)
        assert response.status_code == 422 and response.json()["code"] == "validation_error", body
    response = server.client.post("/keys", headers=tenant.headers, json={"expires_in_seconds": True})
    assert response.status_code == 422 and response.json()["code"] == "validation_error"
    [only] = list_keys(server.context, tenant.account_id)
    assert only["expires_at"] is None and server.client.get("/patients", headers=tenant.headers).status_code == 200
