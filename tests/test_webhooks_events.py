"""Every event, end to end on both backends: written in the transaction of its change,
delivered by the real worker over real HTTP to a receiver process that verifies each delivery
with the reference verifier (`standardwebhooks`), thin (no file or patient names)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import LiveServer
from processing_helpers import count, drain, sql, text_pdf
from webhook_helpers import WEBHOOK_SETTINGS, Receivers, deliveries, delivery, receivers_fixture, register, run_deliveries, settled

EVENTS = ["pdf.uploaded", "pdf.processed", "pdf.processing_failed", "pdf.deleted", "key.revoked"]
PATIENT_NAME = "Jane Roe"  # the test tenant's patient
FILENAME = "roe-jane-discharge.pdf"


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    yield from receivers_fixture(tmp_path)


def test_every_event_is_delivered_signed_and_thin(make_server: Callable[..., LiveServer], receivers: Receivers) -> None:
    server = make_server(extract_max_pages=1, **WEBHOOK_SETTINGS)
    tenant = server.tenant()
    webhook = register(server, tenant, "http://127.0.0.1:9/unused", EVENTS)
    receiver = receivers.start([webhook["secret"]])
    assert server.client.patch(f"/webhooks/{webhook['id']}", headers=tenant.headers, json={"url": receiver.url}).status_code == 200
    processed = server.upload(tenant, text_pdf([[("One page", 72, 700)]]), filename=FILENAME).json()
    too_long = server.upload(tenant, text_pdf([[("Page one", 72, 700)], [("Page two", 72, 700)]]), filename=FILENAME).json()
    drain(server)  # processes both (the second fails: too_many_pages) and delivers what is due
    assert server.client.delete(f"/pdfs/{processed['id']}", headers=tenant.headers).status_code == 204
    spare = server.client.post("/keys", headers=tenant.headers, json={"name": "spare"}).json()
    assert server.client.delete(f"/keys/{spare['id']}", headers=tenant.headers).status_code == 200
    assert server.client.delete(f"/keys/{spare['id']}", headers=tenant.headers).status_code == 200  # revoked already: no event
    run_deliveries(server, lambda: settled(server, tenant, webhook["id"], 6), "every delivery is made")

    log = {item["id"]: item for item in deliveries(server, tenant, webhook["id"])}
    assert all(item["status"] == "succeeded" and item["attempts"] == 1 and item["response_status"] == 200 for item in log.values())
    received = receiver.arrivals()
    assert len(received) == 6
    bodies = {}
    for request in received:
        assert request["verified"] == [True], request  # the reference verifier accepts it
        assert request["webhook_id"] in log and request["content_type"] == "application/json"
        assert request["webhook_signature"].startswith("v1,") and " " not in request["webhook_signature"]
        assert PATIENT_NAME not in request["body"] and FILENAME not in request["body"] and "roe" not in request["body"].lower()
        body = json.loads(request["body"])
        assert set(body) == {"type", "timestamp", "data"} and body["timestamp"].endswith("Z")
        assert log[request["webhook_id"]]["event_type"] == body["type"]
        bodies[(body["type"], body["data"].get("pdf_id"))] = body["data"]
    uploaded = bodies[("pdf.uploaded", processed["id"])]
    assert uploaded == {
        "pdf_id": processed["id"], "patient_id": tenant.patient_id, "sha256": processed["sha256"], "size": uploaded["size"],
        "pages": 1, "created_at": uploaded["created_at"],
    }  # fmt: skip
    assert ("pdf.uploaded", too_long["id"]) in bodies
    done = bodies[("pdf.processed", processed["id"])]
    assert done["status"] == "done" and isinstance(done["pages_ocr"], int) and done["complete"] is True and done["processed_at"]
    failed = bodies[("pdf.processing_failed", too_long["id"])]
    assert failed["status"] == "failed" and failed["error"] == "too_many_pages" and failed["sha256"] == too_long["sha256"]
    deleted = bodies[("pdf.deleted", processed["id"])]
    assert deleted["deleted_at"] and deleted["sha256"] == processed["sha256"]
    revoked = bodies[("key.revoked", None)]
    assert revoked == {"key_id": spare["id"], "key_prefix": spare["prefix"], "revoked_at": revoked["revoked_at"]}
    assert "key" not in json.dumps(revoked).replace("key_id", "").replace("key_prefix", "")  # never the key itself
    assert spare["key"] not in json.dumps([request["body"] for request in received])


def test_only_the_event_types_asked_for_are_written_and_sent(make_server: Callable[..., LiveServer], receivers: Receivers) -> None:
    server = make_server(**WEBHOOK_SETTINGS)
    tenant = server.tenant()
    server.upload(tenant, text_pdf([[("Before any endpoint", 72, 700)]]))
    assert count(server, "webhook_events") == 0 and count(server, "webhook_deliveries") == 0  # no endpoint: nothing written
    deleted_only = register(server, tenant, "http://127.0.0.1:9/unused", ["pdf.deleted"])
    disabled = register(server, tenant, "http://127.0.0.1:9/unused", EVENTS)
    server.client.patch(f"/webhooks/{disabled['id']}", headers=tenant.headers, json={"enabled": False})
    other = server.tenant("Other Clinic")
    register(server, other, "http://127.0.0.1:9/unused", EVENTS)
    pdf_id = server.upload(tenant, text_pdf([[("Uploaded", 72, 700)]])).json()["id"]
    assert count(server, "webhook_deliveries") == 0  # pdf.uploaded: wanted by nobody enabled in this account
    server.client.delete(f"/pdfs/{pdf_id}", headers=tenant.headers)
    [row] = sql(server, "SELECT endpoint_id, account_id FROM webhook_deliveries")
    assert row == {"endpoint_id": deleted_only["id"], "account_id": tenant.account_id}
    [job] = sql(server, "SELECT kind, subject, status, max_attempts FROM jobs WHERE kind = 'deliver_webhook'")
    assert job["status"] == "queued" and job["max_attempts"] == 8  # the first attempt and the schedule's seven retries


def _no_event_trigger(server: LiveServer) -> Any:
    database = server.settings.resolved_database_url.removeprefix("sqlite:///")

    class Trigger:
        def __enter__(self) -> None:
            with sqlite3.connect(database) as conn:
                conn.execute("CREATE TRIGGER no_events BEFORE INSERT ON webhook_events BEGIN SELECT RAISE(ABORT, 'no events today'); END")

        def __exit__(self, *_exc: object) -> None:
            with sqlite3.connect(database) as conn:
                conn.execute("DROP TRIGGER no_events")

    return Trigger()


def test_each_event_is_in_the_transaction_of_its_change(make_server: Callable[..., LiveServer]) -> None:
    """If the event cannot be written, the change is not made either: the upload stores nothing,
    the delete deletes nothing, the key stays live, the processing result is not written (and
    its job is retried)."""
    server = make_server(**WEBHOOK_SETTINGS)
    server.require("sqlite+local", "the failing insert is an SQLite trigger")
    tenant = server.tenant()
    register(server, tenant, "http://127.0.0.1:9/unused", EVENTS)
    kept = server.upload(tenant, text_pdf([[("Kept", 72, 700)]])).json()["id"]
    spare = server.client.post("/keys", headers=tenant.headers, json={"name": "spare"}).json()
    before = {"pdfs": count(server, "pdfs"), "blobs": server.blob_keys()}
    close = {"Connection": "close"}  # a 500 closes its connection: no kept-alive one is reused after it
    with _no_event_trigger(server):
        assert server.upload(tenant, text_pdf([[("Refused", 72, 700)]]), headers=close).status_code == 500
        assert {"pdfs": count(server, "pdfs"), "blobs": server.blob_keys()} == before
        assert server.client.delete(f"/pdfs/{kept}", headers=tenant.headers | close).status_code == 500
        assert server.client.get(f"/pdfs/{kept}", headers=tenant.headers).status_code == 200
        assert server.client.delete(f"/keys/{spare['id']}", headers=tenant.headers | close).status_code == 500
        assert server.client.get("/patients", headers={"X-API-Key": spare["key"]}).status_code == 200  # still live
        drain(server)
        [job] = sql(server, "SELECT status, attempts, error FROM jobs WHERE subject = :id", id=kept)
        assert job["status"] == "queued" and job["attempts"] == 1  # its finish rolled back: retried later
        assert count(server, "pdf_extractions") == 0
    assert server.client.delete(f"/keys/{spare['id']}", headers=tenant.headers).status_code == 200
    assert server.client.get("/patients", headers={"X-API-Key": spare["key"]}).status_code == 401
    assert sql(server, "SELECT type FROM webhook_events ORDER BY created_at") == [{"type": "pdf.uploaded"}, {"type": "key.revoked"}]


def test_the_delivery_log_and_a_replay_with_the_same_webhook_id(make_server: Callable[..., LiveServer], receivers: Receivers) -> None:
    server = make_server(**WEBHOOK_SETTINGS)
    tenant = server.tenant()
    webhook = register(server, tenant, "http://127.0.0.1:9/unused", ["key.revoked"])
    receiver = receivers.start([webhook["secret"]])
    server.client.patch(f"/webhooks/{webhook['id']}", headers=tenant.headers, json={"url": receiver.url})
    spare = server.client.post("/keys", headers=tenant.headers, json={}).json()
    server.client.delete(f"/keys/{spare['id']}", headers=tenant.headers)
    [pending] = deliveries(server, tenant, webhook["id"])
    assert pending["status"] == "pending" and pending["attempts"] == 0 and pending["next_attempt_at"] and pending["event_type"] == "key.revoked"
    run_deliveries(server, lambda: settled(server, tenant, webhook["id"], 1), "the delivery is made")
    first = delivery(server, tenant, webhook["id"], pending["id"])
    assert first["status"] == "succeeded" and first["succeeded_at"] and first["next_attempt_at"] is None
    assert [(a["attempt"], a["response_status"], a["error"]) for a in first["attempt_log"]] == [(1, 200, None)]
    replay = server.client.post(f"/webhooks/{webhook['id']}/deliveries/{pending['id']}/retry", headers=tenant.headers)
    assert replay.status_code == 202 and replay.json()["status"] == "pending"
    run_deliveries(server, lambda: settled(server, tenant, webhook["id"], 1), "the replay is made")
    second = delivery(server, tenant, webhook["id"], pending["id"])
    assert [(a["attempt"], a["response_status"]) for a in second["attempt_log"]] == [(1, 200), (2, 200)]
    assert [request["webhook_id"] for request in receiver.arrivals()] == [pending["id"], pending["id"]]
    assert all(request["verified"] == [True] for request in receiver.arrivals())
    assert deliveries(server, tenant, webhook["id"], status="failed") == []
    assert [item["id"] for item in deliveries(server, tenant, webhook["id"], status="succeeded")] == [pending["id"]]
    missing = server.client.post(f"/webhooks/{webhook['id']}/deliveries/msg_nope/retry", headers=tenant.headers)
    assert missing.status_code == 404 and missing.json()["code"] == "delivery_not_found"
