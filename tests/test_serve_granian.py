"""`patientpdf serve` under PATIENTPDF_SERVER=granian, as a real process with two workers: the same
start-up work, the same app and logs, the embedded job worker beside it, a graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import SAMPLES, multipart_body, upload_head
from processing_helpers import assert_none_left, wait_until
from served import Served, children, curl

GRANIAN = {"PATIENTPDF_SERVER": "granian", "PATIENTPDF_LOG_FORMAT": "json"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    data_dir = tmp_path / "data"
    # what serve's start-up sweeps: an upload a crash left half-received long ago, and one just begun
    (data_dir / "spool").mkdir(parents=True)
    for name, age in (("upload-stale.part", 7200), ("upload-fresh.part", 0)):
        (data_dir / "spool" / name).write_bytes(b"%PDF-")
        os.utime(data_dir / "spool" / name, (time.time() - age, time.time() - age))
    server = Served(data_dir, workers=2, extra_env=GRANIAN)
    yield server
    server.stop()


def test_granian_serves_the_api_on_both_workers_after_the_start_up_work_and_replaces_a_dead_one(served: Served) -> None:
    headers = {"X-API-Key": served.demo["api_key"]}
    upload_url = f"{served.base_url}/patients/{served.demo['patient_id']}/pdf/"
    uploaded = json.loads(
        curl("--header", f"X-API-Key: {served.demo['api_key']}", "--form", f"file=@{SAMPLES / 'valid.pdf'}",
             "--form", "filename=Chart of Jane Q. Sample.pdf", upload_url)
    )  # fmt: skip
    assert {"id", "url", "filename", "created_at", "patient_id"} <= set(uploaded)
    assert httpx.get(served.base_url + "/healthz").headers["server"] == "granian"  # not uvicorn, which sends none

    # the app behaves as under uvicorn: Range and HEAD on the signed link, links built from the request
    part = httpx.get(uploaded["url"], headers={"Range": "bytes=0-4"})
    assert (part.status_code, part.content, part.headers["content-range"]) == (206, b"%PDF-", f"bytes 0-4/{(SAMPLES / 'valid.pdf').stat().st_size}")
    head = httpx.head(uploaded["url"])
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) == (SAMPLES / "valid.pdf").stat().st_size
    assert uploaded["url"].startswith(served.base_url + "/files/")
    # X-Forwarded-For from a trusted proxy (loopback, uvicorn's default) names the client, as uvicorn does
    assert httpx.get(f"{served.base_url}/patients", headers={**headers, "X-Forwarded-For": "203.0.113.9"}).status_code == 200

    # one connection per upload, so the kernel spreads them over both workers' sockets
    def upload(n: int) -> int:
        with httpx.Client() as client:
            files = {"file": ("x.pdf", (SAMPLES / "valid.pdf").read_bytes())}
            return client.post(upload_url, headers=headers, files=files, data={"filename": f"{n}.pdf"}, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(upload, range(24))) == [201] * 24
    workers = _listeningchildren(served.process.pid)
    assert len(workers) == 2
    # the embedded job worker processed the first upload
    wait_until(lambda: httpx.get(f"{served.base_url}/pdfs/{uploaded['id']}", headers=headers).json()["processing"]["status"] == "done",
               "the embedded worker processes the upload", timeout=30)  # fmt: skip

    # a worker that dies is replaced
    os.kill(workers[0], signal.SIGKILL)

    def replaced() -> bool:
        now = _listeningchildren(served.process.pid)
        return len(now) == 2 and workers[0] not in now and httpx.get(served.base_url + "/readyz").status_code == 200

    wait_until(replaced, "a new worker in place of the killed one", timeout=30)

    served.stop()
    assert served.process.returncode == 0
    lines = _log_lines(served)
    access = [line for line in lines if line.get("logger") == "patientpdf.access"]
    served_by = Counter(line["pid"] for line in access if line["path"] == upload_url.removeprefix(served.base_url) and line["status"] == 201)
    assert sum(served_by.values()) == 25 and set(served_by) == set(workers), (served_by, workers)
    assert any(line.get("client") == "203.0.113.9" for line in access)
    # start-up work ran in serve itself: the migrations, and the sweep of the stale spool file only
    assert any(line["logger"].startswith("alembic") and line["pid"] == served.process.pid for line in lines)
    assert sorted(path.name for path in (_data_dir(served) / "spool").glob("upload-*.part")) == ["upload-fresh.part"]
    # granian's own lines go through our JSON logging; its access log (with query strings) is off
    assert any(line["logger"].startswith("_granian") for line in lines)
    signature = uploaded["url"].split("signature=")[1]
    for secret in (served.demo["api_key"], signature, "expires=", "Chart of Jane"):
        assert secret not in served.logs(), secret


def test_sigterm_lets_the_in_flight_upload_finish_and_stops_the_job_worker_too(served: Served) -> None:
    job_worker = _job_worker_pid(served)
    assert job_worker in children(served.process.pid)
    body, content_type = multipart_body((SAMPLES / "valid.pdf").read_bytes(), "inflight.pdf")
    spool = _data_dir(served) / "spool"
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(upload_head(served.demo["patient_id"], served.demo["api_key"], body, content_type) + body[:300])
        wait_until(lambda: len(list(spool.glob("upload-*.part"))) == 2, "the upload is inside the app", timeout=10)  # and the fresh one
        started = children(served.process.pid)
        served.process.send_signal(signal.SIGTERM)
        # the job worker is told at once, not after the API workers have drained
        wait_until(lambda: not _alive(job_worker), "the job worker stops", timeout=10)
        assert served.process.poll() is None  # still draining the upload
        sock.sendall(body[300:])
        sock.settimeout(15)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 201 ") and b"\r\nserver: granian\r\n" in response
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["filename"] == "inflight.pdf"
    served.process.wait(timeout=15)
    assert served.process.returncode == 0
    # its children end with it (multiprocessing's resource tracker a moment after: it sees serve's end)
    wait_until(lambda: not any(_alive(pid) for pid in started), "every process serve started is gone", timeout=5)
    assert_none_left(_data_dir(served))


def _log_lines(served: Served) -> list[dict[str, object]]:
    return [json.loads(text) for text in served.logs().splitlines() if text.startswith("{")]


def _job_worker_pid(served: Served) -> int:
    def started() -> list[int]:
        return [int(str(line["pid"])) for line in _log_lines(served)
                if line.get("logger") == "patientpdf.jobs.worker" and " started " in str(line.get("message"))]  # fmt: skip

    wait_until(lambda: bool(started()), "the embedded worker starts", timeout=20)
    return started()[0]



def _listeningchildren(pid: int) -> list[int]:
    """The API workers: the children with a socket (the job worker and spawn's resource tracker have none)."""
    return [child for child in children(pid) if any("socket:" in _readlink(fd) for fd in _fds(child))]


def _fds(pid: int) -> list[Path]:
    try:
        return list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return []


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _data_dir(served: Served) -> Path:
    return Path(served.env["PATIENTPDF_DATA_DIR"])
