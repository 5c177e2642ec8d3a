"""PostgreSQL or the S3 store goes away mid-service: 503 with Retry-After, nothing half-written,
/readyz names the backend, and the service recovers by itself when it returns."""

from __future__ import annotations

import io
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pikepdf
import pytest

from backends import Postgres, SeaweedS3
from conftest import LiveServer, _run_server, sample
from patientpdf.settings import Settings
from tcp_proxy import TcpProxy


@pytest.fixture
def proxied(postgres: Postgres, seaweed: SeaweedS3, tmp_path: Path) -> Iterator[tuple[LiveServer, TcpProxy, TcpProxy]]:
    db_proxy = TcpProxy(postgres.host, postgres.port)
    s3_proxy = TcpProxy("127.0.0.1", seaweed.port)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=postgres.url_via(db_proxy.port, postgres.new_schema()),
        storage_url=seaweed.new_storage_url(),
        s3_endpoint_url=f"http://127.0.0.1:{s3_proxy.port}",
        s3_access_key_id=seaweed.access_key,
        s3_secret_access_key=seaweed.secret_key,
        secret_key=secrets.token_urlsafe(40),
    )
    server_run = _run_server(settings, "postgres+s3")
    server = next(server_run)
    try:
        yield server, db_proxy, s3_proxy
    finally:
        db_proxy.up()
        s3_proxy.up()
        next(server_run, None)
        db_proxy.close()
        s3_proxy.close()


def eventually(check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_database_down_then_back(proxied: tuple[LiveServer, TcpProxy, TcpProxy]) -> None:
    server, db_proxy, _ = proxied
    tenant = server.tenant()
    assert server.upload(tenant, sample("valid.pdf")).status_code == 201
    db_proxy.down()
    response = server.upload(tenant, sample("valid.pdf"))
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "database_unavailable"
    assert int(response.headers["retry-after"]) > 0
    ready = server.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"] == {"database": "unavailable", "storage": "ok"}
    db_proxy.up()
    assert eventually(lambda: server.upload(tenant, sample("valid.pdf")).status_code == 201)
    assert server.client.get("/readyz").status_code == 200
    assert len(server.blob_keys()) == 2  # the refused upload left no bytes
    assert len(server.client.get(f"/patients/{tenant.patient_id}/pdfs/", headers=tenant.headers).json()) == 2


def test_store_down_then_back(proxied: tuple[LiveServer, TcpProxy, TcpProxy]) -> None:
    server, _, s3_proxy = proxied
    tenant = server.tenant()
    first = server.upload(tenant, sample("valid.pdf")).json()
    s3_proxy.down()
    response = server.upload(tenant, sample("valid.pdf"))
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "storage_unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert list((server.data_dir / "spool").iterdir()) == []
    ready = server.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"] == {"database": "ok", "storage": "unavailable"}
    download = server.client.get(f"/pdfs/{first['id']}/content", headers=tenant.headers)
    assert download.status_code == 503 and download.json()["code"] == "storage_unavailable"
    s3_proxy.up()
    assert eventually(lambda: server.upload(tenant, sample("valid.pdf")).status_code == 201)
    listed = server.client.get(f"/patients/{tenant.patient_id}/pdfs/", headers=tenant.headers).json()
    assert len(listed) == 2 and len(server.blob_keys()) == 2
    assert server.client.get(f"/pdfs/{first['id']}/content", headers=tenant.headers).content == sample("valid.pdf")


MIB = 1024 * 1024


@pytest.fixture(scope="module")
def pdf_64_mib() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.pages[0].obj["/Padding"] = pdf.make_stream(os.urandom(64 * MIB))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def test_store_cut_mid_upload_leaves_no_multipart_upload(
    proxied: tuple[LiveServer, TcpProxy, TcpProxy], seaweed: SeaweedS3, pdf_64_mib: bytes
) -> None:
    """The store dies 20 MiB into a 64 MiB multipart upload, so even the abort cannot reach it:
    503, nothing stored, and once the store is back the upload is aborted with no manual step."""
    server, _, s3_proxy = proxied
    tenant = server.tenant()
    bucket, prefix = server.context.storage.bucket, server.context.storage.prefix  # type: ignore[attr-defined]
    direct = seaweed.client()  # around the proxy: what the store holds

    def open_uploads() -> list[str]:
        return [upload["Key"] for upload in direct.list_multipart_uploads(Bucket=bucket, Prefix=prefix + "/").get("Uploads", [])]

    def objects() -> list[str]:
        return [item["Key"] for item in direct.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])]

    s3_proxy.cut_after(20 * MIB)
    response = server.upload(tenant, pdf_64_mib, "big.pdf")
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "storage_unavailable" and int(response.headers["retry-after"]) > 0
    assert list((server.data_dir / "spool").iterdir()) == []
    assert server.client.get(f"/patients/{tenant.patient_id}/pdfs/", headers=tenant.headers).json() == []
    assert len(open_uploads()) == 1 and objects() == []  # its parts are there; the abort could not get through

    s3_proxy.up()
    assert eventually(lambda: open_uploads() == [], timeout=120), open_uploads()
    assert objects() == []
    assert server.upload(tenant, sample("valid.pdf")).status_code == 201  # and the service works again


def test_serving_on_postgres_requires_a_shared_secret(postgres: Postgres, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PATIENTPDF_DATA_DIR": str(tmp_path), "PATIENTPDF_DATABASE_URL": postgres.new_schema()}
    env.pop("PATIENTPDF_SECRET_KEY", None)
    cli = str(Path(sys.executable).with_name("patientpdf"))
    result = subprocess.run([cli, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "PATIENTPDF_SECRET_KEY is required" in result.stderr
    assert urlsplit(postgres.database_url).hostname == "127.0.0.1"
