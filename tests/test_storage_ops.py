"""`patientpdf storage check` and `storage migrate`, run as an operator would, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from backends import SeaweedS3
from conftest import LiveServer, Tenant, sample
from served import CLI


def cli_env(server: LiveServer) -> dict[str, str]:
    env = {**os.environ, "PATIENTPDF_LOG_LEVEL": "WARNING"}
    for name, value in server.settings.model_dump().items():
        if value is not None:
            env[f"PATIENTPDF_{name.upper()}"] = str(value)
    return env


def run_cli(server: LiveServer, *args: str) -> tuple[int, dict]:
    result = subprocess.run([CLI, *args, "--json"], env=cli_env(server), capture_output=True, text=True, timeout=120)
    return result.returncode, json.loads(result.stdout)


def plant_blob(server: LiveServer, key: str, content: bytes, tmp_path: Path) -> None:
    source = tmp_path / "planted"
    source.write_bytes(content)
    server.context.storage.put_file(key, source)


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
    # a blob damaged in the target is copied again on the next run
    source = tmp_path / "damaged"
    source.write_bytes(b"x" * len(contents[0]))
    moved.put_file(f"pdfs/{ids[0][-2:]}/{ids[0]}.pdf", source)
    code, result = run_cli(server, "storage", "migrate", "--to", target)
    assert (result["copied"], result["skipped"]) == (1, 2)
