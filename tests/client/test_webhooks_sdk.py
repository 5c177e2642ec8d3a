"""The SDK's webhook calls against a real server: register, read, change, rotate, ping, the
delivery log and a replay, delete. (Delivery itself is tested in tests/test_webhooks_*.py.)"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conftest import LiveServer
from patientpdf_client import BadRequest, Client, NotFound


def test_webhook_endpoints_through_the_sdk(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(webhook_allowed_hosts="127.0.0.1")
    tenant = server.tenant()
    with Client(server.base_url, tenant.key) as client:
        created = client.create_webhook("http://127.0.0.1:9/hook", ["pdf.uploaded", "pdf.processed"])
        assert created["secret"].startswith("whsec_")
        webhook_id = created["id"]
        assert [row["id"] for row in client.list_webhooks()] == [webhook_id]
        assert "secret" not in client.get_webhook(webhook_id)
        assert client.update_webhook(webhook_id, events=["pdf.deleted"])["events"] == ["pdf.deleted"]
        rotated = client.rotate_webhook_secret(webhook_id, grace_seconds=60)
        assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
        ping = client.test_webhook(webhook_id)
        assert [row["id"] for row in client.list_webhook_deliveries(webhook_id)] == [ping["id"]]
        assert client.get_webhook_delivery(webhook_id, ping["id"])["id"] == ping["id"]
        assert client.retry_webhook_delivery(webhook_id, ping["id"])["id"] == ping["id"]
        with pytest.raises(BadRequest) as refused:
            client.create_webhook("http://10.0.0.1/hook", ["pdf.uploaded"])
        assert refused.value.code.startswith("webhook_url_")
        client.delete_webhook(webhook_id)
        with pytest.raises(NotFound):
            client.get_webhook(webhook_id)
