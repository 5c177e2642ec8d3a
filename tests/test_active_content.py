"""PDF active content: found without decompressing content streams; flagged by default, or refused."""

from __future__ import annotations

import pytest

from conftest import LiveServer, Tenant, sample

ACTIVE = ["javascript", "open_action", "launch", "embedded_files", "xfa", "rich_media"]


@pytest.mark.parametrize("kind", ACTIVE)
def test_active_content_is_flagged_by_default(shared_server: LiveServer, kind: str) -> None:
    tenant = shared_server.tenant()
    response = shared_server.upload(tenant, sample(f"active_{kind}.pdf"))
    assert response.status_code == 201 and response.json()["active_content"] == [kind]
    meta = shared_server.client.get(f"/pdfs/{response.json()['id']}", headers=tenant.headers).json()
    assert meta["active_content"] == [kind]


def test_plain_pdfs_and_a_first_page_destination_are_not_active(server: LiveServer, tenant: Tenant) -> None:
    for name in ("valid.pdf", "active_first_page_destination.pdf", "owner_password.pdf"):
        response = server.upload(tenant, sample(name))
        assert response.status_code == 201 and response.json()["active_content"] == [], name


def test_reject_policy_refuses_and_names_what_was_found(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(active_content="reject")
    tenant = server.tenant()
    for kind in ACTIVE:
        response = server.upload(tenant, sample(f"active_{kind}.pdf"))
        assert response.status_code == 400 and response.json()["code"] == "pdf_active_content"
        assert kind in response.json()["detail"]
    assert server.stored_files() == []
    assert server.upload(tenant, sample("valid.pdf")).status_code == 201
