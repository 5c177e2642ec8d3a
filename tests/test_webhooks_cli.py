"""`patientpdf webhooks list|create|delete|rotate|test` as an operator uses them, with a real
worker process sending the ping to a receiver that verifies it."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import LiveServer
from processing_helpers import CLI, assert_none_left, start_worker, worker_env
from webhook_helpers import WEBHOOK_SETTINGS, Receivers, receivers_fixture


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    yield from receivers_fixture(tmp_path)


def run(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([CLI, "webhooks", *args], env=env, capture_output=True, text=True, timeout=120)
    assert (result.returncode == 0) is ok, (result.stdout, result.stderr)
    return result


def run_json(env: dict[str, str], *args: str) -> dict:
    stdout = run(env, *args, "--json").stdout
    assert stdout.count("\n") == 1, stdout
    return json.loads(stdout)


def test_create_list_test_rotate_and_delete(backend: str, make_server: Callable[..., LiveServer], receivers: Receivers, tmp_path: Path) -> None:
    if backend != "sqlite+local":
        pytest.skip("the commands call the same services as the API, tested on both backends: sqlite+local only")
    server = make_server(**WEBHOOK_SETTINGS)
    tenant = server.tenant()
    env = worker_env(server, worker_poll_seconds=0.05, **WEBHOOK_SETTINGS)
    refused = run(env, "create", str(tenant.account_id), "https://169.254.169.254/", ok=False)
    assert "public addresses" in refused.stderr
    unknown = run(env, "create", str(tenant.account_id), "https://1.1.1.1/", "--events", "pdf.read", ok=False)
    assert "pdf.read" in unknown.stderr
    created = run_json(env, "create", str(tenant.account_id), "http://127.0.0.1:9/not-yet", "--events", "key.revoked,pdf.deleted")
    assert created["events"] == ["pdf.deleted", "key.revoked"] and created["secret"].startswith("whsec_")
    receiver = receivers.start([created["secret"]])
    server.client.patch(f"/webhooks/{created['id']}", headers=tenant.headers, json={"url": receiver.url})
    listed = run_json(env, "list", str(tenant.account_id))["webhooks"]
    assert [(item["id"], item["url"]) for item in listed] == [(created["id"], receiver.url)] and "secret" not in listed[0]
    assert str(created["id"]) in run(env, "list").stdout and "enabled" in run(env, "list").stdout
    # no worker yet: queued only, or given up on after the wait
    assert run_json(env, "test", str(created["id"]), "--wait", "0s")["status"] == "pending"
    assert "no worker attempted it" in run(env, "test", str(created["id"]), "--wait", "1s", ok=False).stderr
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        delivered = run_json(env, "test", str(created["id"]))
        assert delivered["status"] == "succeeded" and delivered["response_status"] == 200 and delivered["attempts"] == 1
        assert "delivered: answered 200" in run(env, "test", str(created["id"])).stdout
        failing = run_json(env, "create", str(tenant.account_id), "http://127.0.0.1:9/not-yet")
        server.client.patch(f"/webhooks/{failing['id']}", headers=tenant.headers, json={"url": receivers.start([], script=",".join(["500"] * 8)).url})
        failed = run(env, "test", str(failing["id"]), ok=False)
        assert "failed: http_status (answered 500); it is retried on the schedule" in failed.stderr
        run(env, "delete", str(failing["id"]))
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    pings = [request for request in receiver.arrivals() if json.loads(request["body"])["type"] == "webhook.ping"]
    assert pings and all(request["verified"] == [True] for request in pings)
    assert json.loads(pings[0]["body"])["data"] == {"webhook_id": created["id"]}
    rotated = run_json(env, "rotate", str(created["id"]), "--grace", "0s")
    assert rotated["secret"] != created["secret"] and rotated["previous_secret_expires_at"] is None
    assert "signs too until" in run(env, "rotate", str(created["id"])).stdout  # default grace: 24h
    assert run_json(env, "delete", str(created["id"]))["id"] == created["id"]
    assert run_json(env, "list")["webhooks"] == []
    assert "No webhook endpoint" in run(env, "delete", str(created["id"]), ok=False).stderr
    assert_none_left(server.data_dir)
