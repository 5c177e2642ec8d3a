"""Real servers on real sockets: each `serve` fixture runs create_app under uvicorn on a free port."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from patientpdf.app import create_app
from patientpdf.context import Context
from patientpdf.db.migrate import upgrade
from patientpdf.services.accounts import create_account, create_key
from patientpdf.services.patients import create_patient
from patientpdf.settings import Settings

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
            headers=tenant.headers,
            files={"file": ("upload.bin", content, "application/pdf")},
            data={"filename": filename},
            **kw,
        )

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def stored_files(self) -> list[Path]:
        """Every file under blobs/ and spool/: what an upload left behind."""
        return sorted(p for d in ("blobs", "spool") for p in (self.data_dir / d).rglob("*") if p.is_file())


def _run_server(settings: Settings) -> Iterator[LiveServer]:
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
            yield LiveServer(base_url=base_url, settings=settings, context=app.state.context, client=client)
        finally:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    """Start a server with settings overrides; stopped at the end of the test."""
    generators: list[Iterator[LiveServer]] = []

    def start(**overrides: Any) -> LiveServer:
        data_dir = tmp_path_factory.mktemp("data")
        settings = Settings(data_dir=data_dir, **overrides)
        generator = _run_server(settings)
        generators.append(generator)
        return next(generator)

    yield start
    for generator in generators:
        next(generator, None)


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for tests that only add data (each test makes its own tenant)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("shared"), max_upload_bytes=1024 * 1024)
    yield from _run_server(settings)


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
