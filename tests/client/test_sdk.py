"""The SDK against a real server (both backends): every operation, its errors by code, the
upload's digest, idempotency and progress, and downloads that resume."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from pathlib import Path

import pytest

from client.conftest import make_pdf
from client.cut_proxy import Cut, CutProxy
from conftest import LiveServer, Tenant, sample
from patientpdf_client import (
    AsyncClient,
    AuthenticationError,
    Client,
    DigestMismatch,
    DownloadCorrupted,
    FileTooLarge,
    IdempotencyKeyReused,
    InvalidCursor,
    InvalidPdf,
    NotFound,
    PatientPdfError,
    PermissionDenied,
    RetryEvent,
    RetryPolicy,
    ValidationError,
)


@pytest.fixture
def client(server: LiveServer, tenant: Tenant) -> Client:
    with Client(server.base_url, tenant.key) as client:
        yield client  # type: ignore[misc]


def test_patients_pdfs_and_keys_through_every_page(server: LiveServer, tenant: Tenant, client: Client) -> None:
    made = [client.create_patient(f"P{n}", dob="1990-01-0" + str(n + 1), sex="F", additional_variables={"mrn": n}) for n in range(4)]
    assert made[0]["dob"] == "1990-01-01" and made[0]["additional_variables"] == {"mrn": 0}
    assert [p["id"] for p in client.list_patients(page_size=2)] == [tenant.patient_id, *[p["id"] for p in made]]
    assert client.get_patient(made[1]["id"])["name"] == "P1"
    uploaded = [client.upload_pdf(tenant.patient_id, sample("valid.pdf"), filename=f"r{n}.pdf")["id"] for n in range(5)]
    listed = list(client.list_pdfs(tenant.patient_id, page_size=2))
    assert [p["id"] for p in listed] == uploaded[::-1]
    assert listed[0]["size"] == len(sample("valid.pdf")) and listed[0]["pages"] == 2
    assert client.get_pdf(uploaded[0], url_ttl=60)["filename"] == "r0.pdf"
    created = client.create_key(name="robot", scopes=["read"], expires_in_seconds=3600)
    assert created["key"].startswith("ppk_") and created["scopes"] == ["read"]
    rotated = client.rotate_key(created["id"], grace_seconds=0)
    assert rotated["name"] == "robot" and rotated["key"] != created["key"]
    assert client.revoke_key(rotated["id"])["revoked_at"] is not None
    assert [k["id"] for k in client.list_keys(page_size=1)] == [tenant.key_id, created["id"], rotated["id"]]
    assert client.health()["status"] == "ok" and client.ready()["checks"] == {"database": "ok", "storage": "ok"}
    assert "ppk_" not in repr(client) and tenant.key not in repr(client)


def test_upload_sends_its_digest_and_one_key_across_retries(server: LiveServer, tenant: Tenant, client: Client, tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "chart.pdf", "Chart", padding=300_000)
    seen: list[tuple[int, int]] = []
    key = str(uuid.uuid4())
    first = client.upload_pdf(tenant.patient_id, path, idempotency_key=key, progress=lambda sent, total: seen.append((sent, total)))
    assert first["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and first["filename"] == "chart.pdf"
    assert first["replayed"] is False and first["duplicate_of"] is None
    assert seen[0] == (0, path.stat().st_size) and seen[-1] == (path.stat().st_size,) * 2
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
    again = client.upload_pdf(tenant.patient_id, path, idempotency_key=key)  # what a retry sends
    assert again["replayed"] is True and again["id"] == first["id"]
    assert len(list(client.list_pdfs(tenant.patient_id))) == 1
    copy = client.upload_pdf(tenant.patient_id, path)  # a new key: a new record that names the first
    assert copy["duplicate_of"] == first["id"]
    with pytest.raises(DigestMismatch) as wrong:
        client.upload_pdf(tenant.patient_id, path, sha256="0" * 64)
    assert wrong.value.status == 400 and wrong.value.code == "digest_mismatch"
    with pytest.raises(IdempotencyKeyReused):
        client.upload_pdf(tenant.patient_id, sample("owner_password.pdf"), filename="other.pdf", idempotency_key=key)
    assert len(list(client.list_pdfs(tenant.patient_id))) == 2


def test_errors_carry_status_code_detail_and_request_id(server: LiveServer, tenant: Tenant, client: Client) -> None:
    with pytest.raises(InvalidPdf) as refused:
        client.upload_pdf(tenant.patient_id, sample("truncated.pdf"), filename="x.pdf")
    error = refused.value
    assert (error.status, error.code) == (400, "pdf_truncated") and error.detail and len(error.request_id or "") == 16
    assert error.request_id in str(error) and "pdf_truncated" in str(error)
    with pytest.raises(FileTooLarge) as large:
        client.upload_pdf(tenant.patient_id, b"%PDF-1.7\n" + b"0" * (2 * 1024 * 1024) + b"\n%%EOF\n", filename="big.pdf")
    assert large.value.status == 413 and large.value.code == "file_too_large" and "1048576 bytes" in large.value.detail
    other = server.tenant("Other clinic")
    with pytest.raises(PermissionDenied) as forbidden:
        client.upload_pdf(other.patient_id, sample("valid.pdf"))
    assert forbidden.value.code == "patient_forbidden"
    with pytest.raises(NotFound) as missing:
        client.get_pdf("pdf_" + "0" * 29)
    assert missing.value.code == "pdf_not_found"
    with pytest.raises(InvalidCursor):
        list(client._pages(_with_cursor("garbage")))
    with pytest.raises(ValidationError):
        client.create_patient("x", dob="31/12/1990")
    with Client(server.base_url, "ppk_" + "x" * 43) as stranger:
        with pytest.raises(AuthenticationError) as unauthenticated:
            stranger.get_patient(tenant.patient_id)
    assert unauthenticated.value.code == "api_key_invalid" and "ppk_xxxx" not in str(unauthenticated.value)
    reader = client.create_key(scopes=["read"])
    with Client(server.base_url, reader["key"]) as read_only:
        with pytest.raises(PermissionDenied) as scope:
            read_only.delete_pdf("pdf_" + "0" * 29)
    assert scope.value.code == "insufficient_scope"
    assert isinstance(scope.value, PatientPdfError)


def _with_cursor(cursor: str):  # type: ignore[no-untyped-def]
    from patientpdf_client._core import call

    return call("list_patients", params={"cursor": cursor})


def test_download_to_a_file_a_stream_and_through_the_link_then_delete(
    server: LiveServer, tenant: Tenant, client: Client, tmp_path: Path
) -> None:
    path = make_pdf(tmp_path / "scan.pdf", "Scan", padding=700_000)
    pdf = client.upload_pdf(tenant.patient_id, path)
    done = client.download_pdf(pdf["id"], tmp_path / "out.pdf")
    assert (tmp_path / "out.pdf").read_bytes() == path.read_bytes() and done["sha256"] == pdf["sha256"]
    assert not (tmp_path / "out.pdf.part").exists()
    sink = io.BytesIO()
    client.download_pdf(pdf["id"], sink)
    assert sink.getvalue() == path.read_bytes()
    assert b"".join(client.iter_pdf_bytes(pdf["id"], start=1000)) == path.read_bytes()[1000:]
    client.download_link(pdf["url"], tmp_path / "via-link.pdf")
    assert (tmp_path / "via-link.pdf").read_bytes() == path.read_bytes()
    client.delete_pdf(pdf["id"])
    with pytest.raises(NotFound):
        client.download_pdf(pdf["id"], tmp_path / "gone.pdf")


def test_a_download_continues_a_part_file_and_refuses_wrong_bytes(server: LiveServer, tenant: Tenant, client: Client, tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "scan.pdf", "Scan", padding=500_000)
    content = path.read_bytes()
    pdf = client.upload_pdf(tenant.patient_id, path)
    (tmp_path / "out.pdf.part").write_bytes(content[:200_000])  # left by an interrupted run
    done = client.download_pdf(pdf["id"], tmp_path / "out.pdf")
    assert done["resumed_from"] == 200_000 and (tmp_path / "out.pdf").read_bytes() == content
    (tmp_path / "bad.pdf.part").write_bytes(b"X" * 1000)  # not the PDF's first bytes
    with pytest.raises(DownloadCorrupted):
        client.download_pdf(pdf["id"], tmp_path / "bad.pdf")
    assert not (tmp_path / "bad.pdf.part").exists() and not (tmp_path / "bad.pdf").exists()
    (tmp_path / "long.pdf.part").write_bytes(content + b"extra")  # longer than the PDF: 416, so from the start
    client.download_pdf(pdf["id"], tmp_path / "long.pdf")
    assert (tmp_path / "long.pdf").read_bytes() == content


def test_the_async_client_does_the_same(server: LiveServer, tenant: Tenant, tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "a.pdf", "Async", padding=200_000)

    async def scenario() -> None:
        async with AsyncClient(server.base_url, tenant.key) as client:
            patient = await client.create_patient("Async Patient")
            uploads = await asyncio.gather(*(client.upload_pdf(patient["id"], path, filename=f"a{n}.pdf") for n in range(3)))
            assert sorted(u["duplicate_of"] is None for u in uploads) == [False, False, True]
            listed = [pdf["id"] async for pdf in client.list_pdfs(patient["id"], page_size=2)]
            assert sorted(listed) == sorted(u["id"] for u in uploads)
            assert [p["id"] async for p in client.list_patients(page_size=1)] == [tenant.patient_id, patient["id"]]
            await client.download_pdf(uploads[0]["id"], tmp_path / "back.pdf")
            assert (tmp_path / "back.pdf").read_bytes() == path.read_bytes()
            assert b"".join([chunk async for chunk in client.iter_pdf_bytes(uploads[0]["id"])]) == path.read_bytes()
            with pytest.raises(InvalidPdf):
                await client.upload_pdf(patient["id"], sample("text.pdf"), filename="t.pdf")
            await client.delete_pdf(uploads[1]["id"])
            with pytest.raises(NotFound):
                await client.get_pdf(uploads[1]["id"])
            assert [k["id"] async for k in client.list_keys()] == [tenant.key_id]

    asyncio.run(scenario())


def test_configuration_comes_from_the_environment(server: LiveServer, tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATIENTPDF_URL", server.base_url)
    monkeypatch.setenv("PATIENTPDF_API_KEY", tenant.key)
    with Client() as client:
        assert client.get_patient(tenant.patient_id)["id"] == tenant.patient_id
    monkeypatch.delenv("PATIENTPDF_API_KEY")
    with pytest.raises(ValueError, match="PATIENTPDF_API_KEY"):
        Client()


def test_a_download_cut_midway_resumes_with_range(server: LiveServer, tenant: Tenant, tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "scan.pdf", "Scan", padding=900_000)
    with Client(server.base_url, tenant.key) as client:
        pdf = client.upload_pdf(tenant.patient_id, path)
    proxy = CutProxy(int(server.base_url.rsplit(":", 1)[1]), {0: Cut(after_response_bytes=300_000), 1: Cut(after_response_bytes=200_000)})
    try:
        with Client(proxy.url, tenant.key, retry=RetryPolicy(backoff=0.05)) as client:
            done = client.download_pdf(pdf["id"], tmp_path / "out.pdf")
        assert (tmp_path / "out.pdf").read_bytes() == path.read_bytes() and done["sha256"] == pdf["sha256"]

        async def stream() -> bytes:
            async with AsyncClient(proxy.url, tenant.key, retry=RetryPolicy(backoff=0.05)) as client:
                return b"".join([chunk async for chunk in client.iter_pdf_bytes(pdf["id"])])

        proxy.plan[len(proxy.sent_by_clients)] = Cut(after_response_bytes=500_000)
        assert asyncio.run(stream()) == path.read_bytes()
    finally:
        proxy.close()
    assert proxy.cuts == 3
    ranges = [bytes(sent).lower() for sent in proxy.sent_by_clients if b"range: bytes=" in bytes(sent).lower()]
    assert len(ranges) == 3
    assert all(b"if-range: \"" + pdf["sha256"].encode() + b"\"" in sent for sent in ranges)


def test_a_retry_while_the_first_attempt_still_runs_waits_for_it(server: LiveServer, tenant: Tenant, tmp_path: Path) -> None:
    """409 idempotency_key_in_progress is retried until the first request ends; then its result comes back."""
    import threading

    import time

    import httpx

    from patientpdf.db import repositories as repo
    from patientpdf_client._body import UploadBody, repr_digest

    path = make_pdf(tmp_path / "slow.pdf", "Slow", padding=200_000)
    body, key = UploadBody(path, None), str(uuid.uuid4())
    release, first_result, events = threading.Event(), [], []

    def slow_chunks():  # type: ignore[no-untyped-def]
        for number, chunk in enumerate(body.chunks(None, None)):
            if number == 1:
                release.wait(30)  # the first attempt holds the key, its body half sent
            yield chunk

    def claimed() -> bool:
        with server.context.db.read() as conn:
            return repo.get_idempotency_key(conn, tenant.account_id, key) is not None

    headers = {"X-API-Key": tenant.key, "Idempotency-Key": key, "Content-Type": body.content_type}
    headers |= {"Content-Length": str(body.content_length), "Repr-Digest": repr_digest(body.sha256())}
    first = threading.Thread(
        target=lambda: first_result.append(httpx.post(f"{server.base_url}/patients/{tenant.patient_id}/pdf/", headers=headers, content=slow_chunks(), timeout=60))
    )
    first.start()
    deadline = time.monotonic() + 30
    while not claimed():
        assert time.monotonic() < deadline
        time.sleep(0.01)

    def on_retry(event: RetryEvent) -> None:
        events.append(event)
        release.set()  # the first attempt may finish now

    with Client(server.base_url, tenant.key, retry=RetryPolicy(backoff=0.1)) as client:
        second = client.upload_pdf(tenant.patient_id, path, idempotency_key=key, on_retry=on_retry)
        first.join(30)
        assert [(e.status, e.code) for e in events][:1] == [(409, "idempotency_key_in_progress")]
        assert first_result[0].status_code == 201 and second["id"] == first_result[0].json()["id"] and second["replayed"] is True
        assert len(list(client.list_pdfs(tenant.patient_id))) == 1


def test_retry_waits_grow_with_jitter_and_honour_retry_after() -> None:
    policy = RetryPolicy(backoff=0.5, max_backoff=4.0)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)):
        waits = {policy.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits) and len(waits) > 1  # jittered within the step
    assert all(7.0 <= policy.delay(1, retry_after=7) <= 7.5 for _ in range(50))
    assert policy.delay(1, retry_after=10_000) <= policy.max_retry_after + 1
