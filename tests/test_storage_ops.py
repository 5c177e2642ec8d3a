"""`patientpdf storage check`, `storage repair` and `storage migrate`, run as an operator would, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from backends import SeaweedS3
from conftest import LiveServer, Tenant, sample
from patientpdf.storage import object_headers
from served import CLI, Served


def cli_env(server: LiveServer) -> dict[str, str]:
    env = {**os.environ, "PATIENTPDF_LOG_LEVEL": "WARNING"}
    for name, value in server.settings.model_dump().items():
        if value is not None:
            env[f"PATIENTPDF_{name.upper()}"] = str(value)
    return env


def run_cli(server: LiveServer, *args: str, **env: str) -> tuple[int, dict]:
    result = subprocess.run([CLI, *args, "--json"], env=cli_env(server) | env, capture_output=True, text=True, timeout=120)
    return result.returncode, json.loads(result.stdout)


def plant_blob(server: LiveServer, key: str, content: bytes, tmp_path: Path) -> None:
    source = tmp_path / "planted"
    source.write_bytes(content)
    server.context.storage.put_file(key, source, "planted.pdf")


def key_of(pdf_id: str) -> str:
    return f"pdfs/{pdf_id[-2:]}/{pdf_id}.pdf"


def test_check_finds_missing_extra_and_corrupt_blobs(server: LiveServer, tenant: Tenant, tmp_path: Path) -> None:
    ids = [server.upload(tenant, sample("valid.pdf")).json()["id"] for _ in range(3)]
    code, report = run_cli(server, "storage", "check")
    assert code == 0 and report["ok"] is True and report["checked"] == 3

    keys = {pdf_id: f"pdfs/{pdf_id[-2:]}/{pdf_id}.pdf" for pdf_id in ids}
    server.context.storage.delete(keys[ids[0]])  # a deleted blob
    corrupt = bytearray(sample("valid.pdf"))
    corrupt[100] ^= 0xFF
    plant_blob(server, keys[ids[1]], bytes(corrupt), tmp_path)  # same size, other bytes
    plant_blob(server, "pdfs/zz/pdf_planted.pdf", b"%PDF-stray", tmp_path)  # bytes without a row

    code, report = run_cli(server, "storage", "check")
    assert code == 1
    assert report["missing"] == [ids[0]]
    assert report["hash_mismatch"] == [ids[1]]
    assert report["extra_blobs"] == ["pdfs/zz/pdf_planted.pdf"]
    assert report["size_mismatch"] == [] and report["ok"] is False
    code, report = run_cli(server, "storage", "check", "--no-hash")
    assert report["hash_mismatch"] == [] and report["missing"] == [ids[0]]


def test_migrate_copies_verifies_and_resumes(server: LiveServer, tenant: Tenant, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    contents = [sample("valid.pdf"), sample("owner_password.pdf"), sample("damaged_xref.pdf")]
    ids = [server.upload(tenant, content).json()["id"] for content in contents]
    if server.backend == "sqlite+local":
        store: SeaweedS3 = request.getfixturevalue("seaweed")
        target = store.new_storage_url()
        extra = {"s3_endpoint_url": store.endpoint, "s3_access_key_id": store.access_key, "s3_secret_access_key": store.secret_key}
        server.settings = server.settings.model_copy(update=extra)
    else:
        target = (tmp_path / "target-blobs").as_uri()

    code, result = run_cli(server, "storage", "migrate", "--to", target)
    assert code == 0, result
    assert (result["copied"], result["skipped"], result["failed"]) == (3, 0, 0)
    code, result = run_cli(server, "storage", "migrate", "--to", target)  # resumable: nothing left to do
    assert (result["copied"], result["skipped"]) == (0, 3)

    from patientpdf.storage import open_storage

    moved = open_storage(target, server.settings)
    for pdf_id, content in zip(ids, contents, strict=True):
        key = f"pdfs/{pdf_id[-2:]}/{pdf_id}.pdf"
        assert b"".join(moved.open_range(key, 0, len(content))) == content
        headers = moved.stat(key).headers  # type: ignore[union-attr]
        assert headers == (object_headers("report.pdf") if target.startswith("s3://") else None)  # ready for presigned URLs
    # a blob damaged in the target is copied again on the next run
    source = tmp_path / "damaged"
    source.write_bytes(b"x" * len(contents[0]))
    moved.put_file(f"pdfs/{ids[0][-2:]}/{ids[0]}.pdf", source, "report.pdf")
    code, result = run_cli(server, "storage", "migrate", "--to", target)
    assert (result["copied"], result["skipped"]) == (1, 2)


def test_objects_stored_without_headers_are_found_and_repaired(make_server, seaweed: SeaweedS3) -> None:  # type: ignore[no-untyped-def]
    """Objects stored before the download headers were set on them: check names them, repair
    rewrites their headers (never their bytes), and presigned URLs then serve them right."""
    server: LiveServer = make_server(s3_presign=True)
    server.require("postgres+s3", "object headers are an S3 matter")
    tenant = server.tenant()
    names = ["Jane Doe é.pdf", "fine.pdf", "corrupt.pdf"]
    ids = [server.upload(tenant, sample("valid.pdf"), filename=name).json()["id"] for name in names]
    storage, raw = server.context.storage, seaweed.client()
    corrupt = bytearray(sample("valid.pdf"))
    corrupt[100] ^= 0xFF
    for pdf_id, body in ((ids[0], sample("valid.pdf")), (ids[2], bytes(corrupt))):  # as the old code stored them
        raw.put_object(Bucket=storage.bucket, Key=f"{storage.prefix}/{key_of(pdf_id)}", Body=body, ContentType="application/pdf")

    code, report = run_cli(server, "storage", "check")
    assert code == 1
    assert report["metadata_missing"] == [ids[0], ids[2]] and report["hash_mismatch"] == [ids[2]]
    code, report = run_cli(server, "storage", "check", "--no-hash")
    assert report["metadata_missing"] == [ids[0], ids[2]]

    code, report = run_cli(server, "storage", "repair")
    assert code == 1  # the corrupt one is left alone, and said so
    assert [(item["id"], item["result"]) for item in report["metadata"]] == [(ids[0], "repaired"), (ids[2], "failed")]
    assert "SHA-256" in report["metadata"][1]["reason"]
    code, report = run_cli(server, "storage", "check")
    assert report["metadata_missing"] == [ids[2]] and report["hash_mismatch"] == [ids[2]]

    head = raw.head_object(Bucket=storage.bucket, Key=f"{storage.prefix}/{key_of(ids[0])}")
    assert head["ContentDisposition"] == "inline; filename=\"Jane Doe _.pdf\"; filename*=UTF-8''Jane%20Doe%20%C3%A9.pdf"
    url = server.client.get(f"/pdfs/{ids[0]}", headers=tenant.headers).json()["url"]
    response = httpx.get(url)
    assert response.content == sample("valid.pdf") and "Jane" not in url
    assert response.headers["content-disposition"] == head["ContentDisposition"]
    assert response.headers["cache-control"] == "private, no-store"
    assert raw.get_object(Bucket=storage.bucket, Key=f"{storage.prefix}/{key_of(ids[2])}")["Body"].read() == bytes(corrupt)


def open_orphan(seaweed: SeaweedS3, bucket: str, key: str) -> str:
    """A multipart upload with one part that nobody will complete, as a killed process leaves it."""
    raw = seaweed.client()
    upload_id = raw.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/pdf")["UploadId"]
    raw.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=os.urandom(1024))
    return str(upload_id)


def open_uploads(seaweed: SeaweedS3, bucket: str, prefix: str) -> list[str]:
    uploads = seaweed.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix + "/").get("Uploads", [])
    return sorted(upload["Key"] for upload in uploads)


def wait_until_older_than(seaweed: SeaweedS3, bucket: str, prefix: str, seconds: float) -> None:
    """The store stamps an upload when it starts (to the second): wait until ours is old enough."""
    uploads = seaweed.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix + "/")["Uploads"]
    newest = max(upload["Initiated"] for upload in uploads)
    while datetime.now(timezone.utc) <= newest + timedelta(seconds=seconds + 1):
        time.sleep(0.2)


def test_check_lists_abandoned_multipart_uploads_and_repair_aborts_them(make_server, seaweed: SeaweedS3) -> None:  # type: ignore[no-untyped-def]
    server: LiveServer = make_server()
    server.require("postgres+s3", "multipart uploads are an S3 matter")
    storage = server.context.storage
    other_prefix = seaweed.new_storage_url().rsplit("/", 1)[1]  # another deployment sharing the bucket
    open_orphan(seaweed, storage.bucket, f"{storage.prefix}/pdfs/zz/pdf_orphan.pdf")
    open_orphan(seaweed, storage.bucket, f"{other_prefix}/pdfs/zz/pdf_theirs.pdf")

    code, report = run_cli(server, "storage", "check")  # younger than an hour: it may still be running
    assert code == 0 and report["abandoned_uploads"] == []
    wait_until_older_than(seaweed, storage.bucket, storage.prefix, 1)
    old = {"PATIENTPDF_S3_ABANDONED_UPLOAD_SECONDS": "1"}
    code, report = run_cli(server, "storage", "check", **old)
    assert code == 1 and [upload["key"] for upload in report["abandoned_uploads"]] == ["pdfs/zz/pdf_orphan.pdf"]
    assert report["ok"] is False

    code, report = run_cli(server, "storage", "repair", **old)
    assert code == 0 and [(item["key"], item["result"]) for item in report["abandoned_uploads"]] == [("pdfs/zz/pdf_orphan.pdf", "aborted")]
    assert open_uploads(seaweed, storage.bucket, storage.prefix) == []
    assert open_uploads(seaweed, storage.bucket, other_prefix) == [f"{other_prefix}/pdfs/zz/pdf_theirs.pdf"]  # not ours
    code, report = run_cli(server, "storage", "check", **old)
    assert code == 0 and report["ok"] is True


def test_serve_aborts_abandoned_multipart_uploads_at_start(seaweed: SeaweedS3, tmp_path: Path) -> None:
    storage_url = seaweed.new_storage_url()
    prefix, other_prefix = storage_url.rsplit("/", 1)[1], seaweed.new_storage_url().rsplit("/", 1)[1]
    open_orphan(seaweed, seaweed.bucket, f"{prefix}/pdfs/zz/pdf_orphan.pdf")
    open_orphan(seaweed, seaweed.bucket, f"{other_prefix}/pdfs/zz/pdf_theirs.pdf")
    wait_until_older_than(seaweed, seaweed.bucket, prefix, 1)
    env = {
        "PATIENTPDF_STORAGE_URL": storage_url,
        "PATIENTPDF_S3_ENDPOINT_URL": seaweed.endpoint,
        "PATIENTPDF_S3_ACCESS_KEY_ID": seaweed.access_key,
        "PATIENTPDF_S3_SECRET_ACCESS_KEY": seaweed.secret_key,
        "PATIENTPDF_S3_ABANDONED_UPLOAD_SECONDS": "1",
    }
    served = Served(tmp_path / "data", workers=1, extra_env=env)
    try:
        deadline = time.monotonic() + 60
        while open_uploads(seaweed, seaweed.bucket, prefix) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert open_uploads(seaweed, seaweed.bucket, prefix) == [], served.logs()
        assert open_uploads(seaweed, seaweed.bucket, other_prefix) == [f"{other_prefix}/pdfs/zz/pdf_theirs.pdf"]
    finally:
        served.stop()
