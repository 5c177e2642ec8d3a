"""Slow and odd clients: body deadlines (408) keep workers free; named multipart limits."""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

from conftest import LiveServer, Tenant, multipart_body, sample, upload_head
from patientpdf.intake.multipart import MAX_BOUNDARY_BYTES


def read_status(sock: socket.socket, timeout: float) -> int:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split()[1])


def first_pdf_bytes(body: bytes) -> int:
    """How much of a multipart body a slow client sends first: the form up to the PDF's first
    bytes, so the server has opened the upload's spool file and waits for the rest."""
    return body.index(b"%PDF-") + len(b"%PDF-")


def start_slow_upload(server: LiveServer, tenant: Tenant, body: bytes, content_type: str) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(upload_head(tenant.patient_id, tenant.key, body, content_type) + body[: first_pdf_bytes(body)])
    return sock


def spool_files(server: LiveServer) -> list[Path]:
    return sorted((server.data_dir / "spool").glob("upload-*.part"))


def test_a_stalled_body_gets_408_while_other_requests_are_served(make_server) -> None:  # type: ignore[no-untyped-def]
    # The idle timeout only has to outlast one small upload and one read, even on a loaded machine.
    server = make_server(body_idle_timeout_seconds=5.0)
    tenant = server.tenant()
    body, content_type = multipart_body(sample("valid.pdf"), "slow.pdf")
    stalled = [start_slow_upload(server, tenant, body, content_type) for _ in range(8)]
    try:
        deadline = time.monotonic() + 10
        while len(spool_files(server)) < 8:  # all eight are inside the server, waiting for their bodies
            assert time.monotonic() < deadline, spool_files(server)
            time.sleep(0.01)
        pending = spool_files(server)
        # while eight clients hold their uploads open, everyone else is served
        assert server.upload(tenant, sample("valid.pdf")).status_code == 201
        assert server.client.get("/patients", headers=tenant.headers).status_code == 200
        # ... and that happened while the stalls were still pending: no reply to any of them yet
        readable, _, _ = select.select(stalled, [], [], 0)
        assert readable == [], "a stalled upload was answered before the other requests were served"
        assert spool_files(server) == pending
        statuses = [read_status(sock, timeout=15) for sock in stalled]
        assert statuses == [408] * 8
    finally:
        for sock in stalled:
            sock.close()
    assert server.stored_files() == [server.blob_keys()[0]]  # only the upload that completed


def test_a_body_that_trickles_past_the_total_deadline_gets_408(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(body_idle_timeout_seconds=1.0, body_timeout_seconds=1.5)
    tenant = server.tenant()
    body, content_type = multipart_body(sample("valid.pdf"), "slow.pdf")
    sock = start_slow_upload(server, tenant, body, content_type)
    try:
        deadline = time.monotonic() + 10
        sock.setblocking(False)
        status = None
        for byte in body[first_pdf_bytes(body) :]:  # one byte every 0.3 s: never idle for 1 s, but slower than 1.5 s in total
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            try:
                status = int(sock.recv(4096).split()[1])
                break
            except BlockingIOError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.3)
        if status is None:
            sock.setblocking(True)
            status = read_status(sock, timeout=10)
        assert status == 408
    finally:
        sock.close()
    assert server.stored_files() == []


def test_a_boundary_over_the_rfc_limit_is_400(server: LiveServer, tenant: Tenant) -> None:
    boundary = "b" * (MAX_BOUNDARY_BYTES + 1)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="filename"\r\n\r\na.pdf\r\n--{boundary}--\r\n'
    ).encode()
    response = server.client.post(
        f"/patients/{tenant.patient_id}/pdf/",
        headers=tenant.headers | {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body,
    )
    assert response.status_code == 400 and response.json()["code"] == "boundary_too_long"


def test_part_headers_over_their_limit_are_400(server: LiveServer, tenant: Tenant) -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="filename"\r\nX-Padding: ' + b"p" * 10_000 + b"\r\n\r\na.pdf\r\n--b--\r\n"
    )
    response = server.client.post(
        f"/patients/{tenant.patient_id}/pdf/",
        headers=tenant.headers | {"Content-Type": "multipart/form-data; boundary=b"},
        content=body,
    )
    assert response.status_code == 400 and response.json()["code"] == "malformed_multipart"
    assert server.stored_files() == []
