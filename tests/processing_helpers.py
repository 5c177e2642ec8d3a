"""What the processing tests share: PDFs with known words where we put them, running the
queue, reading the tables, and the environment of a worker process for a test server."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pikepdf
from sqlalchemy import text

from conftest import LiveServer
from patientpdf.jobs import HANDLERS, Worker

CLI = str(Path(sys.executable).with_name("patientpdf"))
PAGE_HEIGHT = 792.0


def text_pdf(pages: list[list[tuple[str, float, float]]], size: float = 12) -> bytes:
    """A born-digital PDF: per page, lines of (text, x, baseline y) in PDF user space (origin
    bottom-left), in Helvetica with WinAnsi encoding so that accented words are real text."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica, Encoding=pikepdf.Name.WinAnsiEncoding
        )
    )
    for lines in pages:
        ops = [b"BT"]
        for line, x, y in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"/F1 {size:g} Tf 1 0 0 1 {x:g} {y:g} Tm (".encode() + escaped.encode("cp1252") + b") Tj")
        ops.append(b"ET")
        page = pikepdf.Dictionary(
            Type=pikepdf.Name.Page,
            MediaBox=[0, 0, 612, PAGE_HEIGHT],
            Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)),
            Contents=pdf.make_indirect(pikepdf.Stream(pdf, b"\n".join(ops))),
        )
        pdf.pages.append(pikepdf.Page(page))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def drain(server: LiveServer) -> int:
    """Run the server's due jobs here with the real worker (and its extraction child); how many ran."""
    worker = Worker(server.context, HANDLERS)
    ran = 0
    while worker.run_one():
        ran += 1
    return ran


def sql(server: LiveServer, statement: str, **params: Any) -> list[dict[str, Any]]:
    with server.context.db.read() as conn:
        return [dict(row) for row in conn.execute(text(statement), params).mappings()]


def count(server: LiveServer, table: str, where: str = "1 = 1", **params: Any) -> int:
    return int(sql(server, f"SELECT count(*) AS n FROM {table} WHERE {where}", **params)[0]["n"])


def search_rows_of(server: LiveServer, pdf_id: str) -> int:
    key = "page_id" if server.backend.startswith("postgres") else "rowid"
    return count(server, "page_search", f"{key} IN (SELECT id FROM pdf_pages WHERE pdf_id = :pdf_id)", pdf_id=pdf_id)


def worker_env(server: LiveServer, **settings: Any) -> dict[str, str]:
    """The environment of a `patientpdf` process that shares the test server's database and storage."""
    s = server.settings
    env = {name: value for name, value in os.environ.items() if not name.startswith("PATIENTPDF_")}
    env |= {
        "PATIENTPDF_DATA_DIR": str(s.data_dir),
        "PATIENTPDF_DATABASE_URL": s.resolved_database_url,
        "PATIENTPDF_STORAGE_URL": s.resolved_storage_url,
        "PATIENTPDF_LOG_LEVEL": "INFO",
    }
    for name in ("secret_key", "s3_endpoint_url", "s3_access_key_id", "s3_secret_access_key"):
        value = getattr(s, name)
        if value is not None:
            env[f"PATIENTPDF_{name.upper()}"] = str(value)
    env |= {f"PATIENTPDF_{name.upper()}": str(value) for name, value in settings.items()}
    return env


def start_worker(env: dict[str, str], log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(args or [CLI, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 180) -> None:
    """Wait for a state; the deadline only turns a broken build into a failure instead of a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def processes_using(data_dir: Path) -> list[int]:
    """Processes (serve, its workers, job workers, extraction children) started for this data directory."""
    marker = f"PATIENTPDF_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                environ = (entry / "environ").read_bytes()
                zombie = "zombie" in (entry / "status").read_text()
            except OSError:
                continue
            if marker in environ.split(b"\0") and not zombie:
                found.append(int(entry.name))
    return found


def assert_none_left(data_dir: Path) -> None:
    """Every process started for the data directory ends (none is orphaned)."""
    wait_until(lambda: not processes_using(data_dir), f"no process left for {data_dir}", timeout=60)
