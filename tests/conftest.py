"""Real servers on real sockets: each `serve` fixture runs create_app under uvicorn on a free port."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from backends import SeaweedS3, free_port, require_redis, start_postgres, start_seaweed
from patientpdf.app import create_app
from patientpdf.context import Context
from patientpdf.db.migrate import upgrade
from patientpdf.services.accounts import create_account, create_key
from patientpdf.services.patients import create_patient
from patientpdf.settings import Settings

SAMPLES = Path(__file__).parent / "samples"
# Every server-based test runs on the embedded default and on the scaled-out configuration.
BACKENDS = ["sqlite+local", "postgres+s3"]


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def multipart_body(content: bytes, filename: str) -> tuple[bytes, str]:
    """An upload's body as a client would build it, and its Content-Type, for raw-socket tests."""
    request = httpx.Request("POST", "http://x/", files={"file": ("x.pdf", content, "application/pdf")}, data={"filename": filename})
    return request.read(), request.headers["content-type"]


def upload_head(patient_id: int, key: str, body: bytes, content_type: str) -> bytes:
    """The request line and headers of an upload of `body`, for raw-socket tests that send the body in pieces."""
    return (
        f"POST /patients/{patient_id}/pdf/ HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()


@dataclass
class Tenant:
    account_id: int
    key: str
    key_id: int
    patient_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


@dataclass
class LiveServer:
    base_url: str
    settings: Settings
    context: Context
    client: httpx.Client
    backend: str = "sqlite+local"

    def require(self, backend: str, why: str) -> None:
        if self.backend != backend:
            pytest.skip(f"{why}: {backend} only")

    def tenant(self, name: str = "Clinic") -> Tenant:
        account = create_account(self.context, name)
        key = create_key(self.context, account["id"], "test")
        patient = create_patient(
            self.context, account["id"], {"name": "Jane Roe", "dob": "1980-02-03", "sex": "F", "additional_variables": {}}
        )
        return Tenant(account_id=account["id"], key=key["key"], key_id=key["id"], patient_id=patient["id"])

    def upload(self, tenant: Tenant, content: bytes, filename: str = "report.pdf", patient_id: int | None = None, **kw: Any) -> httpx.Response:
        return self.client.post(
            f"/patients/{patient_id or tenant.patient_id}/pdf/",
            headers=tenant.headers | kw.pop("headers", {}),
            files={"file": ("upload.bin", content, "application/pdf")},
            data={"filename": filename},
            **kw,
        )

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def blob_keys(self) -> list[str]:
        return sorted(self.context.storage.iter_keys())

    def stored_files(self) -> list[str]:
        """Every stored blob and every spool file: what uploads left behind."""
        spool = sorted(str(p) for p in (self.data_dir / "spool").rglob("*") if p.is_file())
        return spool + self.blob_keys()


def _run_server(settings: Settings, backend: str = "sqlite+local") -> Iterator[LiveServer]:
    upgrade(settings.resolved_database_url)
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    base_url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base_url, timeout=30) as client:
        try:
            yield LiveServer(base_url=base_url, settings=settings, context=app.state.context, client=client, backend=backend)
        finally:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    yield from start_postgres()


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_redis()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    yield from start_seaweed(tmp_path_factory.mktemp("weed"))


# Every test talks from 127.0.0.1: the failed-authentication limit is tested on its own.
TEST_DEFAULTS = {"failed_auth_limit": "100000/minute"}


def backend_settings(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings that point a new server at its own schema and bucket of the shared backends."""
    if backend == "sqlite+local":
        return dict(TEST_DEFAULTS)
    postgres = request.getfixturevalue("postgres")
    store: SeaweedS3 = request.getfixturevalue("seaweed")
    return TEST_DEFAULTS | {
        "database_url": postgres.new_schema(),
        "storage_url": store.new_storage_url(),
        "s3_endpoint_url": store.endpoint,
        "s3_access_key_id": store.access_key,
        "s3_secret_access_key": store.secret_key,
        "secret_key": secrets.token_urlsafe(40),
    }


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., LiveServer]]:
    """Start a server on this test's backend with settings overrides; stopped at the end of the test."""
    generators: list[Iterator[LiveServer]] = []

    def start(**overrides: Any) -> LiveServer:
        data_dir = tmp_path_factory.mktemp("data")
        settings = Settings(data_dir=data_dir, **(backend_settings(backend, request) | overrides))
        generator = _run_server(settings, backend)
        generators.append(generator)
        return next(generator)

    yield start
    for generator in generators:
        next(generator, None)


@pytest.fixture(scope="session", params=BACKENDS)
def shared_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server per backend for tests that only add data (each test makes its own tenant)."""
    overrides = backend_settings(request.param, request) | {"max_upload_bytes": 1024 * 1024}
    settings = Settings(data_dir=tmp_path_factory.mktemp("shared"), **overrides)
    yield from _run_server(settings, request.param)


@pytest.fixture
def server(make_server: Callable[..., LiveServer]) -> LiveServer:
    """A fresh server whose data directory holds only this test's data."""
    return make_server(max_upload_bytes=1024 * 1024)


@pytest.fixture
def tenant(server: LiveServer) -> Tenant:
    return server.tenant()


@pytest.fixture(autouse=True)
def _no_environment_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PATIENTPDF_"):
            monkeypatch.delenv(name)
