"""Idempotency-Key: blind retries store one PDF; the same bytes again say `duplicate_of`; client digests."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
import uuid
from urllib.parse import urlsplit

from conftest import LiveServer, Tenant, multipart_body, sample
from patientpdf.db import repositories as repo


def pdf_count(server: LiveServer, tenant: Tenant) -> int:
    return len(server.client.get(f"/patients/{tenant.patient_id}/pdfs/", headers=tenant.headers).json())


def upload_with_key(server: LiveServer, tenant: Tenant, key: str, content: bytes, filename: str = "a.pdf", **kw):  # type: ignore[no-untyped-def]
    headers = tenant.headers | {"Idempotency-Key": key} | kw.pop("headers", {})
    return server.client.post(
        f"/patients/{kw.pop('patient_id', tenant.patient_id)}/pdf/",
        headers=headers,
        files={"file": ("x.pdf", content, "application/pdf")},
        data={"filename": filename} | kw.pop("data", {}),
    )


def test_retry_with_the_same_key_returns_the_first_response_and_stores_nothing(server: LiveServer, tenant: Tenant) -> None:
    key = str(uuid.uuid4())
    earlier = server.upload(tenant, sample("valid.pdf")).json()["id"]  # so the first response has a duplicate_of
    first = upload_with_key(server, tenant, key, sample("valid.pdf"))
    assert first.json()["duplicate_of"] == earlier
    assert first.status_code == 201
    blobs = server.blob_keys()
    again = upload_with_key(server, tenant, f'"{key}"', sample("valid.pdf"))  # the draft's quoted form is the same key
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    original, replayed = first.json(), again.json()
    assert {k: v for k, v in replayed.items() if k != "url"} == {k: v for k, v in original.items() if k != "url"}
    assert server.client.get(replayed["url"]).content == sample("valid.pdf")
    assert pdf_count(server, tenant) == 2 and server.blob_keys() == blobs


def test_same_key_different_body_is_422(server: LiveServer, tenant: Tenant) -> None:
    key = str(uuid.uuid4())
    assert upload_with_key(server, tenant, key, sample("valid.pdf")).status_code == 201
    for changed in (
        upload_with_key(server, tenant, key, sample("damaged_xref.pdf")),
        upload_with_key(server, tenant, key, sample("valid.pdf"), filename="other.pdf"),
    ):
        assert changed.status_code == 422 and changed.json()["code"] == "idempotency_key_reused"
    assert pdf_count(server, tenant) == 1


def test_keys_belong_to_one_account(server: LiveServer, tenant: Tenant) -> None:
    other = server.tenant("Other clinic")
    key = str(uuid.uuid4())
    assert upload_with_key(server, tenant, key, sample("valid.pdf")).status_code == 201
    theirs = upload_with_key(server, other, key, sample("valid.pdf"))
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers
    assert pdf_count(server, other) == 1


def test_a_failed_request_does_not_burn_its_key(server: LiveServer, tenant: Tenant) -> None:
    key = str(uuid.uuid4())
    refused = upload_with_key(server, tenant, key, sample("truncated.pdf"))
    assert refused.status_code == 400
    accepted = upload_with_key(server, tenant, key, sample("valid.pdf"))
    assert accepted.status_code == 201 and "idempotent-replayed" not in accepted.headers


def test_bad_keys_are_400(server: LiveServer, tenant: Tenant) -> None:
    for bad in ("", "x" * 256, "tab\there"):
        response = upload_with_key(server, tenant, bad, sample("valid.pdf"))
        assert response.status_code == 400 and response.json()["code"] == "bad_idempotency_key", bad
    assert pdf_count(server, tenant) == 0


def claimed(server: LiveServer, tenant: Tenant, key: str) -> bool:
    with server.context.db.read() as conn:
        return repo.get_idempotency_key(conn, tenant.account_id, key) is not None


def test_concurrent_requests_with_one_key_store_one_pdf(server: LiveServer, tenant: Tenant) -> None:
    """The first request holds its key while its body is in flight: the second gets 409."""
    key = str(uuid.uuid4())
    body, content_type = multipart_body(sample("valid.pdf"), "race.pdf")
    split = urlsplit(server.base_url)
    slow = socket.create_connection((split.hostname, split.port))
    head = (
        f"POST /patients/{tenant.patient_id}/pdf/ HTTP/1.1\r\nHost: x\r\nX-API-Key: {tenant.key}\r\n"
        f"Idempotency-Key: {key}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    slow.sendall(head + body[:100])
    try:
        deadline = time.monotonic() + 10
        while not claimed(server, tenant, key):  # the claim is taken before the body is read
            assert time.monotonic() < deadline, "the first request never claimed its key"
            time.sleep(0.02)
        second = upload_with_key(server, tenant, key, sample("valid.pdf"), filename="race.pdf")
        assert second.status_code == 409 and second.json()["code"] == "idempotency_key_in_progress"
        slow.sendall(body[100:])
        assert slow.recv(65536).startswith(b"HTTP/1.1 201")
    finally:
        slow.close()
    third = upload_with_key(server, tenant, key, sample("valid.pdf"), filename="race.pdf")
    assert third.status_code == 201 and third.headers["idempotent-replayed"] == "true"
    assert pdf_count(server, tenant) == 1


def test_racing_identical_requests_never_store_two(server: LiveServer, tenant: Tenant) -> None:
    key = str(uuid.uuid4())
    statuses: list[int] = []

    def send() -> None:
        statuses.append(upload_with_key(server, tenant, key, sample("valid.pdf")).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses) <= {201, 409} and 201 in statuses
    assert pdf_count(server, tenant) == 1


def test_same_bytes_again_without_a_key_say_duplicate_of(server: LiveServer, tenant: Tenant) -> None:
    first = server.upload(tenant, sample("valid.pdf")).json()
    second = server.upload(tenant, sample("valid.pdf")).json()
    assert first["duplicate_of"] is None and second["duplicate_of"] == first["id"] and second["id"] != first["id"]
    other_patient = server.client.post("/patients", headers=tenant.headers, json={"name": "John Doe"}).json()["id"]
    elsewhere = server.upload(tenant, sample("valid.pdf"), patient_id=other_patient).json()
    assert elsewhere["duplicate_of"] is None  # duplicates are per patient


def test_client_digests_are_checked(server: LiveServer, tenant: Tenant) -> None:
    content = sample("valid.pdf")
    digest = hashlib.sha256(content).digest()
    good_header = {"Repr-Digest": f"sha-256=:{base64.b64encode(digest).decode()}:"}
    assert server.upload(tenant, content, headers=good_header).status_code == 201
    assert server.client.post(
        f"/patients/{tenant.patient_id}/pdf/",
        headers=tenant.headers,
        files={"file": ("x.pdf", content, "application/pdf")},
        data={"filename": "a.pdf", "sha256": digest.hex().upper()},
    ).status_code == 201
    wrong = hashlib.sha256(b"something else").digest()
    blobs = server.blob_keys()
    for headers, data, code in (
        ({"Repr-Digest": f"sha-256=:{base64.b64encode(wrong).decode()}:"}, {}, "digest_mismatch"),
        ({}, {"sha256": wrong.hex()}, "digest_mismatch"),
        ({"Repr-Digest": "sha-256=:not base64:"}, {}, "bad_digest"),
        ({}, {"sha256": "abc"}, "bad_digest"),
    ):
        response = server.client.post(
            f"/patients/{tenant.patient_id}/pdf/",
            headers=tenant.headers | headers,
            files={"file": ("x.pdf", content, "application/pdf")},
            data={"filename": "a.pdf"} | data,
        )
        assert response.status_code == 400 and response.json()["code"] == code, (headers, data)
    assert server.blob_keys() == blobs and not list((server.data_dir / "spool").glob("*"))
    # downloads carry the digest of the whole file, ranges included
    pdf_id = server.upload(tenant, content).json()["id"]
    for extra in ({}, {"Range": "bytes=0-9"}):
        response = server.client.get(f"/pdfs/{pdf_id}/content", headers=tenant.headers | extra)
        assert response.headers["repr-digest"] == good_header["Repr-Digest"]
