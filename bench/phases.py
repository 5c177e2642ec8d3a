#!/usr/bin/env python3
"""CPU per phase of one 100 KB upload, in one process with no HTTP and no concurrency.

    .venv/bin/python bench/phases.py [--repeat 300]

Each phase runs the service's own code on a fresh SQLite + local-disk data directory, as
`patientpdf demo` sets it up. The last line is the kernel's share alone: the same durable
steps (create, write, fsync, rename, directory fsync, one committed row) done with bare
system calls and sqlite3, so what Python adds on top can be read off.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pikepdf

CLI = str(Path(sys.executable).with_name("patientpdf"))
BOUNDARY = b"phases7MA4YWxk"


def make_pdf(size: int) -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.pages[0].obj["/Padding"] = pdf.make_stream(os.urandom(size))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def multipart(pdf: bytes) -> bytes:
    return (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="x.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + pdf + b"\r\n--" + BOUNDARY + b"\r\n"
        b'Content-Disposition: form-data; name="filename"\r\n\r\nx.pdf\r\n--' + BOUNDARY + b"--\r\n"
    )


def cpu_ms(repeat: int, step: Callable[[], object]) -> tuple[float, float]:
    step()  # warm: caches, compiled statements, first-use imports
    usage, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(repeat):
        step()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return 1000 * cpu / repeat, 1000 * (time.perf_counter() - wall) / repeat


def kernel_floor(directory: Path, pdf: bytes) -> Callable[[], None]:
    (directory / "spool").mkdir()
    (directory / "blobs").mkdir()
    db = sqlite3.connect(directory / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, sha256 TEXT, size INTEGER)")
    counter = iter(range(10**9))

    def step() -> None:
        n = next(counter)
        spool = directory / "spool" / f"u{n}"
        fd = os.open(spool, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, pdf)
        os.fsync(fd)
        os.close(fd)
        os.rename(spool, directory / "blobs" / f"b{n}")
        dir_fd = os.open(directory / "blobs", os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dir_fd)
        os.close(dir_fd)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (sha256, size) VALUES (?, ?)", ("0" * 64, len(pdf)))
        db.execute("COMMIT")

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ppdf-phases-"))
    os.environ["PATIENTPDF_DATA_DIR"] = str(scratch / "data")
    demo = json.loads(subprocess.check_output([CLI, "demo", "--json"]))

    from patientpdf.context import Context
    from patientpdf.intake.multipart import IntakeLimits, receive_upload
    from patientpdf.intake.pdf_check import check_pdf
    from patientpdf.services import audit, pdfs
    from patientpdf.services.patients import authorize_upload
    from patientpdf.settings import Settings

    ctx = Context.from_settings(Settings())
    account, patient, key = demo["account_id"], demo["patient_id"], demo["api_key"]
    pdf = make_pdf(100_000)
    body = multipart(pdf)
    loop = asyncio.new_event_loop()
    limits = IntakeLimits(10**9)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):  # as uvicorn hands a body over
            yield body[start : start + 65536]

    def receive() -> object:
        return loop.run_until_complete(receive_upload(chunks(), BOUNDARY, limits, ctx.settings.spool_dir))

    checked = receive()

    def store() -> None:
        upload = receive()
        prepared = pdfs.prepare_pdf(ctx, account, patient, upload, "x.pdf")
        event = audit.AuditEvent(action="pdf.upload", outcome="201", account_id=account)
        loop.run_until_complete(pdfs.record_pdf(ctx, prepared, event))

    phases: list[tuple[str, Callable[[], object]]] = [
        ("authorize_upload (key + patient, one read)", lambda: authorize_upload(ctx, key, patient)),
        ("receive_upload (parse, hash, spool)", lambda: receive().discard()),  # type: ignore[attr-defined]
        ("check_pdf (qpdf + active content)", lambda: check_pdf(checked.spool_path, checked.size, "flag")),  # type: ignore[attr-defined]
        ("receive + prepare_pdf + record_pdf", store),
        ("kernel floor: file + fsyncs + row, no Python layers", kernel_floor(scratch, pdf)),
    ]
    print(f"| phase (100 KB PDF, {args.repeat} runs) | CPU ms | wall ms |\n|---|---|---|")
    for name, step in phases:
        cpu, wall = cpu_ms(args.repeat, step)
        print(f"| {name} | {cpu:.3f} | {wall:.3f} |")
    ctx.close()
    loop.close()


if __name__ == "__main__":
    main()
