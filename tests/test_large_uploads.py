"""Uploads large enough to be hashed and written on a spool-writer thread (past
PIPELINE_AFTER_BYTES): written by that thread, stored byte for byte, refused at the limit, and
cleaned up after a hang-up."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import time
from pathlib import Path

import pikepdf
import pytest
from conftest import LiveServer, multipart_body, upload_head
from served import Served

from patientpdf.intake.multipart import PIPELINE_AFTER_BYTES, WRITEBACK_WINDOW

LARGE = PIPELINE_AFTER_BYTES + 3 * WRITEBACK_WINDOW  # through both the pipeline and the writeback advice


@pytest.fixture(scope="module")
def large_pdf() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.pages[0].obj["/Padding"] = pdf.make_stream(os.urandom(LARGE))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def test_a_large_pdf_is_stored_byte_for_byte(make_server, large_pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    server: LiveServer = make_server(max_upload_bytes=2 * LARGE)
    tenant = server.tenant()
    response = server.upload(tenant, large_pdf, "chart.pdf")
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(large_pdf).hexdigest()
    assert server.client.get(f"/pdfs/{response.json()['id']}", headers=tenant.headers).json()["size"] == len(large_pdf)
    downloaded = server.client.get(response.json()["url"])
    assert downloaded.status_code == 200 and downloaded.content == large_pdf
    assert [path for path in server.stored_files() if "/spool/" in path] == []


def test_a_large_pdf_over_the_limit_is_413_and_leaves_nothing(make_server, large_pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    server: LiveServer = make_server(max_upload_bytes=PIPELINE_AFTER_BYTES + WRITEBACK_WINDOW)
    tenant = server.tenant()
    body, content_type = multipart_body(large_pdf, "chart.pdf")

    def chunked():  # no Content-Length: the limit is found while streaming, past the pipeline's start
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    response = server.client.post(
        f"/patients/{tenant.patient_id}/pdf/", headers={**tenant.headers, "Content-Type": content_type}, content=chunked()
    )
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"
    assert server.stored_files() == []


def test_hanging_up_during_a_large_upload_leaves_nothing(make_server, large_pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    server: LiveServer = make_server(max_upload_bytes=2 * LARGE, body_idle_timeout_seconds=5)
    tenant = server.tenant()
    body, content_type = multipart_body(large_pdf, "chart.pdf")
    head = upload_head(tenant.patient_id, tenant.key, body, content_type)
    spool = server.data_dir / "spool"
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + body[: PIPELINE_AFTER_BYTES + 2 * WRITEBACK_WINDOW])
        deadline = time.monotonic() + 20
        # hang up only once the spool writer has taken over
        while sum(p.stat().st_size for p in spool.glob("*.part")) <= PIPELINE_AFTER_BYTES:
            assert time.monotonic() < deadline, "the server never received the first part of the body"
            time.sleep(0.01)
    deadline = time.monotonic() + 15
    while server.stored_files() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.stored_files() == []


def _threads(pid: int) -> list[tuple[str, int]]:
    """(name, bytes written) of each thread of a process, as the kernel counts them."""
    threads = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        io = dict(line.split(": ") for line in (task / "io").read_text().splitlines())
        threads.append(((task / "comm").read_text().strip(), int(io["wchar"])))
    return threads


def _tree_threads(pid: int) -> list[tuple[str, int]]:
    """_threads of the process and of its descendants."""
    threads, pending = [], [pid]
    while pending:
        current = pending.pop()
        threads += _threads(current)
        for task in Path(f"/proc/{current}/task").iterdir():
            pending += [int(child) for child in (task / "children").read_text().split()]
    return threads


def test_past_the_threshold_a_spool_writer_thread_writes_the_pdf(tmp_path: Path, large_pdf: bytes) -> None:
    """Watched from outside, in a real `patientpdf serve` (one worker: the serve process under
    uvicorn, its one child under granian), while the upload is still arriving: the bytes past
    PIPELINE_AFTER_BYTES are written by a spool-writer thread, not by the event loop's."""
    server = Served(tmp_path / "data", workers=1, extra_env={"PATIENTPDF_MAX_UPLOAD_BYTES": str(2 * LARGE)})
    try:
        assert not [name for name, _ in _tree_threads(server.process.pid) if name.startswith("spool-writer")]
        body, content_type = multipart_body(large_pdf, "chart.pdf")
        head = upload_head(server.demo["patient_id"], server.demo["api_key"], body, content_type)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head + body[: PIPELINE_AFTER_BYTES + 2 * WRITEBACK_WINDOW])  # the rest never comes
            spool = tmp_path / "data" / "spool"
            deadline = time.monotonic() + 30
            while (spooled := sum(p.stat().st_size for p in spool.glob("*.part"))) < PIPELINE_AFTER_BYTES + WRITEBACK_WINDOW:
                assert time.monotonic() < deadline, f"the server spooled only {spooled} bytes"
                time.sleep(0.01)
            written = sum(wchar for name, wchar in _tree_threads(server.process.pid) if name.startswith("spool-writer"))
            # every byte past the threshold went through a spool writer (but for a write in progress)
            assert written >= spooled - PIPELINE_AFTER_BYTES - 1024 * 1024, (written, spooled, _tree_threads(server.process.pid))
    finally:
        server.stop()
