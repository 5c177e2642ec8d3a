"""POST /patients/{id}/pdf/: every status of the doc, the contract's formats, and what stays on disk."""

from __future__ import annotations

import hashlib
import re
import socket
import time
from datetime import datetime, timezone

import httpx
import pytest

from conftest import SAMPLES, LiveServer, Tenant, multipart_body, sample

ID_PATTERN = re.compile(r"^pdf_[0-9a-hjkmnp-tv-z]{29}$")


def test_upload_returns_documented_fields(server: LiveServer, tenant: Tenant) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    response = server.upload(tenant, sample("valid.pdf"), filename="medical_record.pdf")
    assert response.status_code == 201, response.text
    body = response.json()
    # The documented fields, in the documented order, then ours.
    assert list(body) == ["id", "url", "filename", "created_at", "patient_id", "sha256", "active_content", "duplicate_of"]
    assert body["sha256"] == hashlib.sha256(sample("valid.pdf")).hexdigest()
    assert body["active_content"] == [] and body["duplicate_of"] is None
    assert ID_PATTERN.match(body["id"])
    assert body["filename"] == "medical_record.pdf"
    assert body["patient_id"] == tenant.patient_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["created_at"])
    created = datetime.strptime(body["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert before <= created <= datetime.now(timezone.utc)
    assert body["url"].startswith(server.base_url + "/files/" + body["id"] + "?")
    assert response.headers["location"] == f"/pdfs/{body['id']}"
    assert response.headers["content-type"] == "application/json"


def test_stored_bytes_and_metadata_match_the_upload(server: LiveServer, tenant: Tenant) -> None:
    content = sample("valid.pdf")
    pdf_id = server.upload(tenant, content).json()["id"]
    meta = server.client.get(f"/pdfs/{pdf_id}", headers=tenant.headers).json()
    assert meta["size"] == len(content)
    assert meta["sha256"] == hashlib.sha256(content).hexdigest()
    assert meta["content_type"] == "application/pdf"
    assert meta["pages"] == 2 and meta["repaired"] is False
    # named after the generated id only: nothing the client sent is in the key
    assert server.blob_keys() == [f"pdfs/{pdf_id[-2:]}/{pdf_id}.pdf"]
    stored = b"".join(server.context.storage.open_range(server.blob_keys()[0], 0, len(content)))
    assert stored == content


@pytest.mark.parametrize("path", ["/patients/{id}/pdf/", "/patients/{id}/pdf"])
def test_both_paths_work_without_redirect(server: LiveServer, tenant: Tenant, path: str) -> None:
    response = server.client.post(
        path.format(id=tenant.patient_id),
        headers=tenant.headers,
        files={"file": ("x.pdf", sample("valid.pdf"))},
        data={"filename": "a.pdf"},
    )
    assert response.status_code == 201


def test_ids_are_unique_and_sort_by_time(server: LiveServer, tenant: Tenant) -> None:
    ids = [server.upload(tenant, sample("valid.pdf")).json()["id"] for _ in range(5)]
    assert len(set(ids)) == 5
    assert ids == sorted(ids)


def test_part_file_name_is_ignored_and_may_be_missing(server: LiveServer, tenant: Tenant) -> None:
    response = server.client.post(
        f"/patients/{tenant.patient_id}/pdf/",
        headers=tenant.headers,
        files={"file": (None, sample("valid.pdf"), "application/pdf")},
        data={"filename": "named-by-field.pdf"},
    )
    # httpx sends a part without a filename as a plain field; the bytes are still the file
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "named-by-field.pdf"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("C:\\Users\\x\\scan.PDF", "scan.PDF"),
        ("bad\x00name\x1f.pdf", "badname.pdf"),
        ("r\u00e9sum\u00e9 \u2014 \u75c5\u6b74.pdf", "r\u00e9sum\u00e9 \u2014 \u75c5\u6b74.pdf"),
        ("evil\u202efdp.exe.pdf", "evilfdp.exe.pdf"),
        ("  spaced.pdf  ", "spaced.pdf"),
    ],
)
def test_odd_filenames_are_cleaned(shared_server: LiveServer, sent: str, stored: str) -> None:
    tenant = shared_server.tenant()
    response = shared_server.upload(tenant, sample("valid.pdf"), filename=sent)
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == stored


@pytest.mark.parametrize(
    ("filename", "code"),
    [
        ("report.txt", "invalid_filename"),
        ("report", "invalid_filename"),
        (".pdf", "invalid_filename"),
        ("dir/", "invalid_filename"),
        ("a" * 252 + ".pdf", "filename_too_long"),
    ],
)
def test_bad_filenames_get_400(server: LiveServer, tenant: Tenant, filename: str, code: str) -> None:
    response = server.upload(tenant, sample("valid.pdf"), filename=filename)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert ".pdf" in response.json()["detail"] or "255" in response.json()["detail"]
    assert server.stored_files() == []


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("truncated.pdf", "pdf_truncated"),
        ("text.pdf", "not_a_pdf"),
        ("html.pdf", "invalid_pdf"),
        ("empty.pdf", "empty_file"),
        ("encrypted.pdf", "pdf_encrypted"),
        ("no_pages.pdf", "pdf_no_pages"),
    ],
)
def test_files_that_are_not_usable_pdfs_get_400(server: LiveServer, tenant: Tenant, name: str, code: str) -> None:
    response = server.upload(tenant, sample(name))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert server.stored_files() == []
    assert server.client.get(f"/patients/{tenant.patient_id}/pdfs/", headers=tenant.headers).json() == []


def test_damaged_xref_is_accepted_and_marked_repaired(server: LiveServer, tenant: Tenant) -> None:
    pdf_id = server.upload(tenant, sample("damaged_xref.pdf")).json()["id"]
    assert server.client.get(f"/pdfs/{pdf_id}", headers=tenant.headers).json()["repaired"] is True


def test_owner_password_only_is_accepted(server: LiveServer, tenant: Tenant) -> None:
    assert server.upload(tenant, sample("owner_password.pdf")).status_code == 201


@pytest.mark.parametrize(
    ("files", "data", "code"),
    [
        ({}, {"filename": "a.pdf"}, "missing_file"),
        ({"file": ("a.pdf", sample("valid.pdf"))}, {}, "missing_filename"),
    ],
)
def test_missing_fields_get_400(server: LiveServer, tenant: Tenant, files: dict, data: dict, code: str) -> None:
    files = files or {"other": ("x", b"x")}  # keep the body multipart
    response = server.client.post(f"/patients/{tenant.patient_id}/pdf/", headers=tenant.headers, files=files, data=data)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert server.stored_files() == []


def test_a_refusal_after_admission_leaves_no_spool_file(server: LiveServer, tenant: Tenant) -> None:
    """The admission opens the upload's spool file; a later dependency's refusal (a bad
    url_ttl) must still leave nothing behind."""
    response = server.upload(tenant, sample("valid.pdf"), params={"url_ttl": "0"})
    assert (response.status_code, response.json()["code"]) == (400, "bad_url_ttl")
    assert server.stored_files() == []


def test_two_file_parts_get_400(server: LiveServer, tenant: Tenant) -> None:
    response = server.client.post(
        f"/patients/{tenant.patient_id}/pdf/",
        headers=tenant.headers,
        files=[("file", ("a.pdf", sample("valid.pdf"))), ("file", ("b.pdf", sample("valid.pdf")))],
        data={"filename": "a.pdf"},
    )
    assert response.status_code == 400 and response.json()["code"] == "duplicate_file"
    assert server.stored_files() == []


@pytest.mark.parametrize(
    ("content_type", "body", "code"),
    [
        ("application/pdf", sample("valid.pdf"), "not_multipart"),
        ("application/json", b'{"file": "x"}', "not_multipart"),
        (None, b"", "not_multipart"),
        ("multipart/form-data", b"--x\r\n", "malformed_multipart"),
    ],
)
def test_non_multipart_bodies_get_400(server: LiveServer, tenant: Tenant, content_type: str | None, body: bytes, code: str) -> None:
    headers = dict(tenant.headers)
    if content_type:
        headers["Content-Type"] = content_type
    response = server.client.post(f"/patients/{tenant.patient_id}/pdf/", headers=headers, content=body)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_body_cut_before_closing_boundary_gets_400(server: LiveServer, tenant: Tenant) -> None:
    request = server.client.build_request(
        "POST",
        f"/patients/{tenant.patient_id}/pdf/",
        headers=tenant.headers,
        files={"file": ("a.pdf", sample("valid.pdf"))},
        data={"filename": "a.pdf"},
    )
    body = request.read()
    cut = body[: body.rindex(b"--") - 10]
    response = server.client.post(
        request.url, headers={**tenant.headers, "Content-Type": request.headers["content-type"]}, content=cut
    )
    assert response.status_code == 400 and response.json()["code"] == "incomplete_multipart"
    assert server.stored_files() == []


# order of checks --------------------------------------------------------------------------


def raw_request(server: LiveServer, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request by hand and read the status line and the response, whatever the body."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        headers, _, rest = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", headers).group(1))  # type: ignore[union-attr]
        while len(rest) < length:
            rest += sock.recv(65536)
        return int(headers.split()[1]), rest


def huge_upload_head(path: str, key: str | None) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: multipart/form-data; boundary=b", "Content-Length: 10737418240"]
    if key is not None:
        lines.append(f"X-API-Key: {key}")
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize(("key", "code"), [(None, "api_key_missing"), ("ppk_wrongwrongwrongwrong", "api_key_invalid")])
def test_bad_key_with_huge_body_is_401_without_reading_it(server: LiveServer, tenant: Tenant, key: str | None, code: str) -> None:
    # 10 GiB announced, none sent: an answer at all proves the body was not awaited.
    status, body = raw_request(server, huge_upload_head(f"/patients/{tenant.patient_id}/pdf/", key))
    assert status == 401
    assert code.encode() in body


def test_bad_key_is_401_even_with_a_malformed_patient_id(server: LiveServer) -> None:
    response = server.client.post("/patients/not-a-number/pdf/", headers={"X-API-Key": "ppk_wrongwrongwrong"})
    assert response.status_code == 401 and response.json()["code"] == "api_key_invalid"


def test_foreign_patient_is_403_and_missing_is_404_before_the_body(server: LiveServer, tenant: Tenant) -> None:
    other = server.tenant("Other clinic")
    status, body = raw_request(server, huge_upload_head(f"/patients/{other.patient_id}/pdf/", tenant.key))
    assert status == 403 and b"patient_forbidden" in body
    status, body = raw_request(server, huge_upload_head("/patients/999999/pdf/", tenant.key))
    assert status == 404 and b"patient_not_found" in body


def test_content_length_over_limit_is_413_before_the_body(server: LiveServer, tenant: Tenant) -> None:
    status, body = raw_request(server, huge_upload_head(f"/patients/{tenant.patient_id}/pdf/", tenant.key))
    assert status == 413
    assert b"file_too_large" in body and b"1048576 bytes" in body
    assert server.stored_files() == []


def oversized_pdf(limit: int) -> bytes:
    valid = sample("valid.pdf")
    return valid[:-6] + b"%" + b"x" * (limit + 1 - len(valid)) + b"\n%%EOF\n"


def test_file_over_limit_within_overhead_allowance_is_413_while_streaming(server: LiveServer, tenant: Tenant) -> None:
    limit = server.settings.max_upload_bytes
    content = oversized_pdf(limit)
    assert len(content) > limit
    response = server.upload(tenant, content)
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"
    assert server.stored_files() == []


def test_file_over_limit_without_content_length_is_413(server: LiveServer, tenant: Tenant) -> None:
    request = server.client.build_request(
        "POST",
        f"/patients/{tenant.patient_id}/pdf/",
        files={"file": ("a.pdf", oversized_pdf(server.settings.max_upload_bytes) * 3)},
        data={"filename": "a.pdf"},
    )
    body = request.read()

    def chunked():  # a generator body makes httpx send Transfer-Encoding: chunked
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = server.client.post(
        request.url,
        headers={**tenant.headers, "Content-Type": request.headers["content-type"]},
        content=chunked(),
    )
    assert response.status_code == 413
    assert server.stored_files() == []


def test_file_exactly_at_limit_is_accepted(make_server) -> None:  # type: ignore[no-untyped-def]
    content = sample("valid.pdf")
    server = make_server(max_upload_bytes=len(content))
    tenant = server.tenant()
    assert server.upload(tenant, content).status_code == 201
    assert server.upload(tenant, content + b"\n").status_code == 413


def test_client_hanging_up_halfway_leaves_nothing(make_server) -> None:  # type: ignore[no-untyped-def]
    # The server notices the hang-up at once, or at the latest at its idle deadline (5 s here):
    # under a loaded suite uvicorn has been seen to report a disconnect late.
    server = make_server(body_idle_timeout_seconds=5)
    tenant = server.tenant()
    body, content_type = multipart_body(b"%PDF-1.7\n" + b"x" * 200_000, "a.pdf")
    head = (
        f"POST /patients/{tenant.patient_id}/pdf/ HTTP/1.1\r\nHost: x\r\nX-API-Key: {tenant.key}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head.encode() + body[: len(body) // 2])
        deadline = time.monotonic() + 10
        while not server.stored_files():  # hang up only once the server is receiving
            assert time.monotonic() < deadline, "the server never started to receive"
            time.sleep(0.01)
    deadline = time.monotonic() + 15
    while server.stored_files() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.stored_files() == []
    assert server.client.get(f"/patients/{tenant.patient_id}/pdfs/", headers=tenant.headers).json() == []


def test_works_with_the_requests_library(server: LiveServer, tenant: Tenant) -> None:
    import requests

    with open(SAMPLES / "valid.pdf", "rb") as handle:
        response = requests.post(
            f"{server.base_url}/patients/{tenant.patient_id}/pdf/",
            headers=tenant.headers,
            files={"file": handle},
            data={"filename": "from-requests.pdf"},
            timeout=10,
        )
    assert response.status_code == 201 and response.json()["filename"] == "from-requests.pdf"


def test_database_write_failure_removes_the_stored_bytes(server: LiveServer, tenant: Tenant) -> None:
    from sqlalchemy import text

    server.require("sqlite+local", "the failing insert is an SQLite trigger")
    with server.context.db.write() as conn:  # make every insert into pdfs fail
        conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON pdfs BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    response = server.upload(tenant, sample("valid.pdf"))
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "Traceback" not in response.text and "/" not in response.json()["detail"].replace("request id", "")
    assert server.stored_files() == []


def test_database_error_is_503_with_retry_after_and_leaves_nothing(server: LiveServer, tenant: Tenant) -> None:
    from sqlalchemy import text

    server.require("sqlite+local", "SQLite reports a missing table as OperationalError (see test_backends_down for PostgreSQL)")
    with server.context.db.write() as conn:  # the pdfs table vanishes: an OperationalError on insert
        conn.execute(text("ALTER TABLE pdfs RENAME TO pdfs_away"))
    try:
        response = server.upload(tenant, sample("valid.pdf"))
        assert response.status_code == 503
        assert response.headers["retry-after"].isdigit()
        assert response.json()["code"] == "database_unavailable"
        assert server.stored_files() == []
    finally:
        with server.context.db.write() as conn:
            conn.execute(text("ALTER TABLE pdfs_away RENAME TO pdfs"))
    assert server.upload(tenant, sample("valid.pdf")).status_code == 201


def test_http_client_sees_json_error_shape_for_every_upload_error(server: LiveServer, tenant: Tenant) -> None:
    responses = [
        server.client.post(f"/patients/{tenant.patient_id}/pdf/"),
        server.client.post("/patients/424242/pdf/", headers=tenant.headers),
        server.upload(tenant, sample("text.pdf")),
        server.client.post("/patients/x/pdf/", headers=tenant.headers),
        server.client.get(f"/patients/{tenant.patient_id}/pdf/", headers=tenant.headers),
    ]
    assert [r.status_code for r in responses] == [401, 404, 400, 404, 405]  # "x" names no patient (test_path_ids)
    for response in responses:
        body = response.json()
        assert set(body) == {"detail", "code"} and body["detail"] and re.fullmatch(r"[a-z_]+", body["code"])


def test_httpx_async_client_uploads(server: LiveServer, tenant: Tenant) -> None:
    import asyncio

    async def go() -> int:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            response = await client.post(
                f"/patients/{tenant.patient_id}/pdf",
                headers=tenant.headers,
                files={"file": ("a.pdf", sample("valid.pdf"))},
                data={"filename": "async.pdf"},
            )
            return response.status_code

    assert asyncio.run(go()) == 201
