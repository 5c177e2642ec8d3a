"""Two `patientpdf serve` processes sharing one PostgreSQL database and one S3 bucket."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from backends import Postgres, SeaweedS3
from conftest import sample
from served import Served


@pytest.fixture
def pair(postgres: Postgres, seaweed: SeaweedS3, tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    shared = {
        "PATIENTPDF_DATABASE_URL": postgres.new_schema(),
        "PATIENTPDF_STORAGE_URL": seaweed.new_storage_url(),
        "PATIENTPDF_SECRET_KEY": secrets.token_urlsafe(40),
        "AWS_ENDPOINT_URL": seaweed.endpoint,  # the standard AWS variables, as operators set them
        "AWS_ACCESS_KEY_ID": seaweed.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
        "AWS_REGION": "us-east-1",
        "PATIENTPDF_LOG_LEVEL": "WARNING",
    }
    first = Served(tmp_path / "a", workers=1, extra_env=shared)
    try:
        second = Served(tmp_path / "b", workers=1, extra_env=shared)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def test_upload_through_one_read_list_delete_through_the_other(pair: tuple[Served, Served]) -> None:
    a, b = pair
    # one demo account and patient in the shared database (each machine keeps its own demo key)
    assert (a.demo["account_id"], a.demo["patient_id"]) == (b.demo["account_id"], b.demo["patient_id"])
    headers = {"X-API-Key": a.demo["api_key"]}
    patient = a.demo["patient_id"]
    uploaded = httpx.post(
        f"{a.base_url}/patients/{patient}/pdf/", headers=headers, files={"file": ("x", sample("valid.pdf"))}, data={"filename": "a.pdf"}
    ).json()
    # B reads the metadata and the bytes, and B verifies the link A signed
    assert httpx.get(f"{b.base_url}/pdfs/{uploaded['id']}", headers=headers).json()["sha256"]
    assert httpx.get(f"{b.base_url}/pdfs/{uploaded['id']}/content", headers=headers).content == sample("valid.pdf")
    link_via_b = uploaded["url"].replace(a.base_url, b.base_url)
    assert httpx.get(link_via_b).content == sample("valid.pdf")
    listed = httpx.get(f"{b.base_url}/patients/{patient}/pdfs/", headers=headers).json()
    assert [item["id"] for item in listed] == [uploaded["id"]]
    # B deletes; A no longer finds it, and the link answers 404 on both
    assert httpx.delete(f"{b.base_url}/pdfs/{uploaded['id']}", headers=headers).status_code == 204
    assert httpx.get(f"{a.base_url}/pdfs/{uploaded['id']}", headers=headers).status_code == 404
    assert httpx.get(uploaded["url"]).status_code == 404


def test_concurrent_uploads_through_both_processes(pair: tuple[Served, Served]) -> None:
    a, b = pair
    headers = {"X-API-Key": a.demo["api_key"]}
    patient = a.demo["patient_id"]

    def upload(n: int) -> tuple[int, str]:
        base = (a, b)[n % 2].base_url
        with httpx.Client(timeout=60) as client:
            response = client.post(
                f"{base}/patients/{patient}/pdf/", headers=headers, files={"file": ("x", sample("valid.pdf"))}, data={"filename": f"{n}.pdf"}
            )
        return response.status_code, response.json().get("id", "")

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(upload, range(40)))
    assert [status for status, _ in results] == [201] * 40
    assert len({pdf_id for _, pdf_id in results}) == 40
    for served in (a, b):
        listed = httpx.get(f"{served.base_url}/patients/{patient}/pdfs/", headers=headers).json()
        assert sorted(item["filename"] for item in listed) == sorted(f"{n}.pdf" for n in range(40))
    # 40 uploads appended to one audit chain from two processes at once: no fork, no gap
    verified = cli(a, "audit", "verify")
    assert verified["ok"] is True and verified["checked"] >= 42


def cli(served: Served, *args: str) -> dict:
    import json
    import subprocess
    import sys

    command = [str(Path(sys.executable).with_name("patientpdf")), *args, "--json"]
    return json.loads(subprocess.run(command, env=served.env, capture_output=True, text=True, check=True, timeout=60).stdout)


def test_revocations_take_effect_in_every_process_at_once(pair: tuple[Served, Served]) -> None:
    a, b = pair
    headers = {"X-API-Key": a.demo["api_key"]}
    patient = a.demo["patient_id"]
    uploaded = httpx.post(
        f"{a.base_url}/patients/{patient}/pdf/", headers=headers, files={"file": ("x", sample("valid.pdf"))}, data={"filename": "a.pdf"}
    ).json()
    link_via_b = uploaded["url"].replace(a.base_url, b.base_url)
    assert httpx.get(link_via_b).status_code == 200
    cli(a, "links", "revoke-all")
    for link in (uploaded["url"], link_via_b):
        assert httpx.get(link).json()["code"] == "link_invalid"
    key_id = next(key["id"] for key in cli(a, "keys", "list")["keys"] if a.demo["api_key"].startswith(key["prefix"]))
    cli(b, "keys", "revoke", str(key_id))
    for served in (a, b):
        response = httpx.get(f"{served.base_url}/patients", headers=headers)
        assert response.status_code == 401 and response.json()["code"] == "api_key_revoked"
    # both processes appended to one audit chain, and it holds
    verified = cli(a, "audit", "verify")
    assert verified["ok"] is True and verified["checked"] >= 6
