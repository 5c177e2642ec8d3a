"""The client against real servers: `patientpdf serve` processes (tests/served.py) for the CLI,
the in-process uvicorn servers of tests/conftest.py for the SDK; real PDFs made with pikepdf."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pikepdf
import pytest

from conftest import LiveServer, backend_settings
from served import Served
from test_backends_down import proxied  # noqa: F401  (the fixture: PostgreSQL and S3 behind switchable proxies)

PPDF = str(Path(sys.executable).with_name("ppdf"))


def make_pdf(path: Path, text: str, padding: int = 0) -> Path:
    """A real one-page PDF saying `text`; `padding` random bytes in an extra stream make it larger
    and unique."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica))
    content = pikepdf.Stream(pdf, f"BT /F1 14 Tf 72 720 Td ({text}) Tj ET".encode())
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page,
        MediaBox=[0, 0, 612, 792],
        Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)),
        Contents=pdf.make_indirect(content),
    )
    if padding:
        page.PieceInfo = pdf.make_indirect(pikepdf.Stream(pdf, random.randbytes(padding)))
    pdf.pages.append(pikepdf.Page(page))
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.save(path, compress_streams=False)
    return path


@dataclass
class Folder:
    root: Path
    valid: list[Path]
    bad: list[Path]
    copies: list[Path]  # same bytes as one of `valid`, another path


def make_folder(root: Path, unique: int, bad: int = 0, copies: int = 0, padding: int = 0) -> Folder:
    """`unique` distinct PDFs spread over nested folders, `bad` files that are not PDFs (or are
    broken ones), and `copies` files with the same bytes as earlier ones."""
    valid = [make_pdf(root / f"batch{n % 4}" / f"night{n % 3}" / f"fax-{n:04d}.pdf", f"Fax number {n}", padding) for n in range(unique)]
    broken = []
    for n in range(bad):
        path = root / f"batch{n % 4}" / f"broken-{n}.pdf"
        good = valid[n].read_bytes()
        kinds = [b"not a pdf at all\n", good[: len(good) // 2], b"", b"%PDF-1.7\n<html></html>\n%%EOF\n", good[:-200]]
        path.write_bytes(kinds[n % len(kinds)])
        broken.append(path)
    same = []
    for n in range(copies):
        path = root / "copies" / f"again-{n}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(valid[n * 3].read_bytes())
        same.append(path)
    (root / "notes.txt").write_text("not a pdf name: left out of folder uploads")
    return Folder(root, valid, broken, same)


@dataclass
class Site:
    """A real server on a real socket (a `patientpdf serve` process or the suite's in-process
    uvicorn) and an API key of one of its accounts."""

    url: str
    key: str

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @classmethod
    def of(cls, served: Served) -> Site:
        return cls(served.base_url, str(served.demo["api_key"]))

    def env(self, **extra: str) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if not name.startswith("PATIENTPDF_")}
        return env | {"PATIENTPDF_URL": self.url, "PATIENTPDF_API_KEY": self.key, "COLUMNS": "120"} | extra

    def client(self, **kw: Any) -> Any:
        from patientpdf_client import Client

        return Client(self.url, self.key, **kw)

    def new_patient(self) -> int:
        with self.client() as client:
            return int(client.create_patient("Test Patient", dob="1980-01-02")["id"])

    def ppdf(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PPDF, *args], env=env or self.env(), capture_output=True, text=True, timeout=timeout)


def served_env(backend: str, request: pytest.FixtureRequest, **settings: Any) -> dict[str, str]:
    values = backend_settings(backend, request) | settings
    return {f"PATIENTPDF_{name.upper()}": str(value) for name, value in values.items()}


@pytest.fixture
def live_site(make_server: Callable[..., LiveServer]) -> Callable[..., Site]:
    """The suite's in-process server on this test's backend (both run), with settings."""

    def start(**settings: Any) -> Site:
        server = make_server(**settings)
        return Site(server.base_url, server.tenant().key)

    return start


@pytest.fixture
def make_site(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Callable[..., Site]]:
    """Start `patientpdf serve` (2 workers) on a backend with settings; stopped after the test."""
    started: list[Served] = []

    def start(backend: str = "sqlite+local", **settings: Any) -> Site:
        served = Served(tmp_path_factory.mktemp("site") / "data", 2, served_env(backend, request, **settings))
        started.append(served)
        return Site.of(served)

    yield start
    for served in started:
        served.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Site]:
    """One served server (SQLite + local disk) for the tests of a module; each test uses its own patient."""
    served = Served(tmp_path_factory.mktemp("site") / "data", 2, served_env("sqlite+local", request, max_upload_bytes=64 * 1024 * 1024))
    try:
        yield Site.of(served)
    finally:
        served.stop()
