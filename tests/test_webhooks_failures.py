"""Deliveries that survive failures on either side, with real worker processes on both backends.

A receiver that answers 500 three times, one that hangs past the timeout, one killed in the
middle of a delivery, and a worker killed (SIGKILL) in the middle of one: each ends with
exactly one accepted delivery per event (one 2xx the receiver sent), the same webhook-id on
every attempt, and every attempt verified by the reference verifier. Where things stand is
known by state (the receiver's log, its "held" files, the delivery log), never by timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import LiveServer, Tenant
from processing_helpers import assert_none_left, sql, start_worker, text_pdf, wait_until, worker_env
from webhook_helpers import WEBHOOK_SETTINGS, Receiver, Receivers, deliveries, delivery, receivers_fixture, register, settled

LEASE_SECONDS = 3


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    yield from receivers_fixture(tmp_path)


@pytest.fixture
def hooked(make_server: Any) -> LiveServer:
    return make_server(**WEBHOOK_SETTINGS)


@pytest.fixture
def workers(hooked: LiveServer) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert_none_left(hooked.data_dir)


def start(server: LiveServer, tmp_path: Path, workers: list[subprocess.Popen[bytes]], name: str, **settings: Any) -> subprocess.Popen[bytes]:
    env = worker_env(server, job_lease_seconds=LEASE_SECONDS, worker_poll_seconds=0.05, **(WEBHOOK_SETTINGS | settings))
    process = start_worker(env, tmp_path / f"{name}.log")
    workers.append(process)
    return process


def endpoint(server: LiveServer, tenant: Tenant, receivers: Receivers, events: list[str], script: str) -> tuple[dict[str, Any], Receiver]:
    """An endpoint for these events, and its receiver (which verifies with the endpoint's secret)."""
    webhook = register(server, tenant, "http://127.0.0.1:9/not-yet", events)
    receiver = receivers.start([webhook["secret"]], script=script)
    assert server.client.patch(f"/webhooks/{webhook['id']}", headers=tenant.headers, json={"url": receiver.url}).status_code == 200
    return webhook, receiver


def revoke_a_key(server: LiveServer, tenant: Tenant) -> None:
    spare = server.client.post("/keys", headers=tenant.headers, json={}).json()
    assert server.client.delete(f"/keys/{spare['id']}", headers=tenant.headers).status_code == 200


def two_events(server: LiveServer, tenant: Tenant, receivers: Receivers, script: str) -> tuple[dict[str, Any], Receiver]:
    """An endpoint for pdf.uploaded and key.revoked with its receiver, and one event of each."""
    webhook, receiver = endpoint(server, tenant, receivers, ["pdf.uploaded", "key.revoked"], script)
    assert server.upload(tenant, text_pdf([[("Delivered once", 72, 700)]])).status_code == 201
    revoke_a_key(server, tenant)
    return webhook, receiver


def assert_exactly_once(server: LiveServer, tenant: Tenant, webhook_id: int, receivers: list[Receiver], attempts: int) -> None:
    """Every event's delivery succeeded, the receivers accepted each exactly once, and every
    request of a delivery carried its id and verified."""
    log = {item["id"]: item for item in deliveries(server, tenant, webhook_id)}
    assert len(log) == 2 and {item["status"] for item in log.values()} == {"succeeded"}
    requests: dict[str, list[dict[str, Any]]] = {}
    for receiver in receivers:
        for webhook_id_header, found in receiver.by_delivery().items():
            requests.setdefault(webhook_id_header, []).extend(found)
    assert set(requests) == set(log)  # the same webhook-id on every attempt: one id per event
    for found in requests.values():
        assert len(found) == attempts, found
        assert all(request["verified"] == [True] for request in found)
        accepted = [request for request in found if request["status"] is not None and request["status"] < 300]
        assert len(accepted) == 1 and accepted[0] is found[-1], found
        assert len({request["body"] for request in found}) == 1  # the same signed body every time


def test_a_receiver_answering_500_three_times(hooked: LiveServer, receivers: Receivers, workers: list, tmp_path: Path) -> None:
    server, tenant = hooked, hooked.tenant()
    webhook, receiver = two_events(server, tenant, receivers, "500,500,500,200")
    start(server, tmp_path, workers, "worker")
    wait_until(lambda: settled(server, tenant, webhook["id"], 2), "both deliveries succeed")
    assert_exactly_once(server, tenant, webhook["id"], [receiver], attempts=4)
    for item in deliveries(server, tenant, webhook["id"]):
        log = delivery(server, tenant, webhook["id"], item["id"])["attempt_log"]
        assert [(a["attempt"], a["response_status"], a["error"]) for a in log] == [
            (1, 500, "http_status"), (2, 500, "http_status"), (3, 500, "http_status"), (4, 200, None)
        ]  # fmt: skip
        assert item["attempts"] == 4 and item["response_status"] == 200 and item["error"] is None


def test_a_receiver_that_hangs_past_the_timeout(hooked: LiveServer, receivers: Receivers, workers: list, tmp_path: Path) -> None:
    server, tenant = hooked, hooked.tenant()
    webhook, receiver = two_events(server, tenant, receivers, "hang,200")
    start(server, tmp_path, workers, "worker")
    wait_until(lambda: settled(server, tenant, webhook["id"], 2), "both deliveries succeed")
    assert_exactly_once(server, tenant, webhook["id"], [receiver], attempts=2)
    for found in receiver.by_delivery().values():
        assert found[0]["outcome"] == "abandoned"  # the sender gave up and closed the connection
    for item in deliveries(server, tenant, webhook["id"]):
        log = delivery(server, tenant, webhook["id"], item["id"])["attempt_log"]
        assert [(a["response_status"], a["error"]) for a in log] == [(None, "timeout"), (200, None)]


def test_a_receiver_killed_mid_delivery(hooked: LiveServer, receivers: Receivers, workers: list, tmp_path: Path) -> None:
    server, tenant = hooked, hooked.tenant()
    webhook, first = endpoint(server, tenant, receivers, ["key.revoked"], "hold")
    revoke_a_key(server, tenant)
    # a slower schedule (10 ms, 0.6 s, 3.6 s, …): the new receiver is up before the attempts run out
    start(server, tmp_path, workers, "worker", webhook_retry_scale=0.002)
    first.wait_held(0)  # the delivery is in the receiver's hands, unanswered
    first.kill()
    second = receivers.start([webhook["secret"]], port=first.port)
    wait_until(lambda: settled(server, tenant, webhook["id"], 1), "the delivery succeeds")
    [item] = deliveries(server, tenant, webhook["id"])
    assert item["status"] == "succeeded"
    [held] = first.arrivals()
    assert held["webhook_id"] == item["id"] and held["verified"] == [True] and first.accepted() == []
    retried = second.arrivals()
    assert [request["webhook_id"] for request in retried] == [item["id"]] and retried[0]["verified"] == [True]
    assert len(second.accepted()) == 1 and retried[0]["body"] == held["body"]
    log = delivery(server, tenant, webhook["id"], item["id"])["attempt_log"]
    assert log[0]["error"] == "network_error" and log[-1]["response_status"] == 200
    assert {a["error"] for a in log[1:-1]} <= {"connection_failed"}  # attempts made while no receiver listened


def test_a_worker_killed_mid_delivery_does_not_lose_the_event(hooked: LiveServer, receivers: Receivers, workers: list, tmp_path: Path) -> None:
    server, tenant = hooked, hooked.tenant()
    webhook, receiver = endpoint(server, tenant, receivers, ["key.revoked"], "hold,200")
    revoke_a_key(server, tenant)
    first = start(server, tmp_path, workers, "first")
    receiver.wait_held(0)  # the first worker is mid-delivery, waiting for the answer
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    receiver.release(0, "drop")
    [job] = sql(server, "SELECT status, attempts FROM jobs WHERE kind = 'deliver_webhook'")
    assert (job["status"], job["attempts"]) == ("running", 1)  # its lease still names the dead worker
    second = start(server, tmp_path, workers, "second")
    wait_until(lambda: settled(server, tenant, webhook["id"], 1), "the second worker delivers it once the lease expires")
    [item] = deliveries(server, tenant, webhook["id"])
    found = receiver.by_delivery()[item["id"]]
    assert len(found) == 2 and [request["outcome"] for request in found] == ["dropped", "answered"]
    assert all(request["verified"] == [True] for request in found) and len(receiver.accepted()) == 1
    [job] = sql(server, "SELECT status, attempts, lease_owner FROM jobs WHERE kind = 'deliver_webhook'")
    assert job["status"] == "done" and job["attempts"] == 2 and job["lease_owner"].split("/")[0].endswith(f":{second.pid}")
    # the killed worker's attempt left no record; the one that finished did
    log = delivery(server, tenant, webhook["id"], item["id"])["attempt_log"]
    assert [(a["attempt"], a["response_status"]) for a in log] == [(1, 200)]
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0
