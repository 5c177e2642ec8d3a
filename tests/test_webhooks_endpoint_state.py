"""An endpoint's life on both backends: secret rotation with a grace period (a receiver holding
either secret verifies), 410 disables it, failing for longer than the setting disables it, and
the account sees why (`disabled_reason`, `disabled_at`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conftest import LiveServer, Tenant
from patientpdf.db.schema import webhook_endpoints
from processing_helpers import count
from webhook_helpers import WEBHOOK_SETTINGS, Receivers, deliveries, delivery, receivers_fixture, register, run_deliveries, settled


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    yield from receivers_fixture(tmp_path)


def ping(server: LiveServer, tenant: Tenant, webhook_id: int) -> dict[str, Any]:
    response = server.client.post(f"/webhooks/{webhook_id}/test", headers=tenant.headers)
    assert response.status_code == 202, response.text
    return dict(response.json())


def rotate(server: LiveServer, tenant: Tenant, webhook_id: int, grace_seconds: int) -> dict[str, Any]:
    response = server.client.post(f"/webhooks/{webhook_id}/rotate-secret", headers=tenant.headers, json={"grace_seconds": grace_seconds})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_during_the_grace_period_either_secret_verifies(make_server: Callable[..., LiveServer], receivers: Receivers) -> None:
    server = make_server(**WEBHOOK_SETTINGS)
    tenant = server.tenant()
    webhook = register(server, tenant, "http://127.0.0.1:9/not-yet", ["key.revoked"])
    old = webhook["secret"]
    rotated = rotate(server, tenant, webhook["id"], 3600)
    new = rotated["secret"]
    assert new != old and new.startswith("whsec_") and rotated["previous_secret_expires_at"]
    # one receiver that knows only the old secret, one that knows only the new one
    holds_old, holds_new = receivers.start([old]), receivers.start([new])
    for receiver in (holds_old, holds_new):
        server.client.patch(f"/webhooks/{webhook['id']}", headers=tenant.headers, json={"url": receiver.url})
        ping(server, tenant, webhook["id"])
        run_deliveries(server, lambda: settled(server, tenant, webhook["id"], count(server, "webhook_deliveries")), "the ping is delivered")
    for receiver in (holds_old, holds_new):
        [request] = receiver.arrivals()
        assert request["verified"] == [True] and len(request["webhook_signature"].split(" ")) == 2
        assert receiver.accepted() == [request | {"outcome": "answered", "status": 200}]
    # rotated again without grace: only the newest secret signs, and only its holder verifies
    newest = rotate(server, tenant, webhook["id"], 0)
    assert newest["previous_secret_expires_at"] is None
    both = receivers.start([old, new, newest["secret"]])
    server.client.patch(f"/webhooks/{webhook['id']}", headers=tenant.headers, json={"url": both.url})
    ping(server, tenant, webhook["id"])
    run_deliveries(server, lambda: len(both.arrivals()) == 1, "the ping is delivered")
    [request] = both.arrivals()
    assert request["verified"] == [False, False, True] and " " not in request["webhook_signature"]


def test_a_receiver_answering_410_disables_the_endpoint(make_server: Callable[..., LiveServer], receivers: Receivers) -> None:
    server = make_server(**WEBHOOK_SETTINGS)
    tenant = server.tenant()
    webhook = register(server, tenant, "http://127.0.0.1:9/not-yet", ["key.revoked"])
    receiver = receivers.start([webhook["secret"]], script="410")
    server.client.patch(f"/webhooks/{webhook['id']}", headers=tenant.headers, json={"url": receiver.url})
    ping(server, tenant, webhook["id"])
    run_deliveries(server, lambda: settled(server, tenant, webhook["id"], 1), "the ping is answered")
    [item] = deliveries(server, tenant, webhook["id"])
    assert (item["status"], item["error"], item["response_status"], item["attempts"]) == ("failed", "webhook_gone", 410, 1)
    state = server.client.get(f"/webhooks/{webhook['id']}", headers=tenant.headers).json()
    assert state["enabled"] is False and state["disabled_reason"] == "gone" and state["disabled_at"]
    # a disabled endpoint gets no new deliveries, and refuses pings and replays until enabled again
    spare = server.client.post("/keys", headers=tenant.headers, json={}).json()
    server.client.delete(f"/keys/{spare['id']}", headers=tenant.headers)
    assert len(deliveries(server, tenant, webhook["id"])) == 1
    for path in (f"/webhooks/{webhook['id']}/test", f"/webhooks/{webhook['id']}/deliveries/{item['id']}/retry"):
        refused = server.client.post(path, headers=tenant.headers)
        assert refused.status_code == 409 and refused.json()["code"] == "webhook_disabled", path
    assert server.client.patch(f"/webhooks/{webhook['id']}", headers=tenant.headers, json={"enabled": True}).json()["enabled"] is True
    assert server.client.post(f"/webhooks/{webhook['id']}/deliveries/{item['id']}/retry", headers=tenant.headers).status_code == 202
    run_deliveries(server, lambda: settled(server, tenant, webhook["id"], 1), "the replay is made")
    assert [request["webhook_id"] for request in receiver.arrivals()] == [item["id"], item["id"]]
    assert deliveries(server, tenant, webhook["id"])[0]["status"] == "succeeded"  # the script's second answer is 200


def test_an_endpoint_failing_for_longer_than_the_setting_is_disabled(make_server: Callable[..., LiveServer], receivers: Receivers) -> None:
    """PATIENTPDF_WEBHOOK_DISABLE_AFTER_SECONDS shrunk to half a second: the failing streak
    passes it within the shrunken schedule's first attempts."""
    server = make_server(**WEBHOOK_SETTINGS | {"webhook_disable_after_seconds": 0.5})
    tenant = server.tenant()
    webhook = register(server, tenant, "http://127.0.0.1:9/not-yet", ["key.revoked"])
    receiver = receivers.start([webhook["secret"]], script=",".join(["500"] * 8))
    server.client.patch(f"/webhooks/{webhook['id']}", headers=tenant.headers, json={"url": receiver.url})
    ping(server, tenant, webhook["id"])
    run_deliveries(server, lambda: settled(server, tenant, webhook["id"], 1), "the endpoint is given up on")
    state = server.client.get(f"/webhooks/{webhook['id']}", headers=tenant.headers).json()
    assert state["enabled"] is False and state["disabled_reason"] == "failing"
    assert state["failing_since"] and state["disabled_at"]
    with server.context.db.read() as conn:  # microseconds, where the API shows seconds
        row = conn.execute(select(webhook_endpoints.c.failing_since, webhook_endpoints.c.disabled_at)).one()
    assert (row.disabled_at - row.failing_since).total_seconds() >= 0.5
    [item] = deliveries(server, tenant, webhook["id"])
    log = delivery(server, tenant, webhook["id"], item["id"])["attempt_log"]
    assert item["status"] == "failed" and item["error"] == "webhook_disabled" and item["response_status"] == 500
    assert 2 <= len(log) < 8 and {a["response_status"] for a in log} == {500} and len(receiver.arrivals()) == len(log)
    # enabled again: the failing streak starts over
    enabled = server.client.patch(f"/webhooks/{webhook['id']}", headers=tenant.headers, json={"enabled": True}).json()
    assert enabled["failing_since"] is None and enabled["disabled_reason"] is None
