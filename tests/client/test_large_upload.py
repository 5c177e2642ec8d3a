"""A 1 GB PDF through `ppdf upload`: the client's memory stays flat (its peak RSS, measured by
the kernel for that process, is the same as for a small file)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from client.conftest import PPDF, Site

GB = 1024**3
RSS_BOUND_MB = 120
GROWTH_BOUND_MB = 16  # what a 1 GB file may add to the peak of a small one

# A child's peak RSS counts what it inherited at fork, so `ppdf` is started by a small launcher
# rather than by this test process (which holds a server): the figure is ppdf's own, plus the
# launcher's few MB.
LAUNCHER = """
import json, os, subprocess, sys
process = subprocess.Popen(sys.argv[1:], stdout=open(os.environ["OUT"], "w"))
_, status, usage = os.wait4(process.pid, 0)
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "peak_mb": usage.ru_maxrss / 1024}))
"""


def upload_measured(site: Site, path: Path, patient: int, out: Path) -> tuple[int, float, dict[str, Any]]:
    """ppdf's exit code and peak RSS in MB, and its line for the file."""
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCHER, PPDF, "upload", str(path), "--patient", str(patient), "--json"],
        env=site.env(OUT=str(out)), capture_output=True, text=True, check=True,
    )  # fmt: skip
    measured = json.loads(launched.stdout)
    return measured["exit"], measured["peak_mb"], json.loads(out.read_text().splitlines()[0])


def sparse_pdf(path: Path, padding: int) -> None:
    """A real one-page PDF with an unreferenced stream of `padding` zero bytes, written as a hole
    (no disk blocks, read back at memory speed): large for the client, cheap for the machine."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    ]
    offsets = []
    with open(path, "wb") as file:
        file.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        for number, body in enumerate(objects, start=1):
            offsets.append(file.tell())
            file.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
        offsets.append(file.tell())
        file.write(b"4 0 obj\n<< /Length %d >>\nstream\n" % padding)
        file.seek(padding, os.SEEK_CUR)
        file.write(b"\nendstream\nendobj\n")
        xref = file.tell()
        file.write(b"xref\n0 5\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
        file.write(b"trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref)


@pytest.mark.large
@pytest.mark.parametrize("backend", ["sqlite+local"])
def test_a_1_gb_upload_keeps_the_clients_memory_flat(live_site: Callable[..., Site], tmp_path: Path) -> None:
    site = live_site(max_upload_bytes=GB + 16 * 1024 * 1024, body_timeout_seconds=600)
    big = tmp_path / "big.pdf"
    sparse_pdf(big, GB)
    size = big.stat().st_size
    assert size > GB and os.stat(big).st_blocks * 512 < 1024 * 1024  # sparse: the test costs no disk reads
    patient = site.new_patient()
    small = tmp_path / "small.pdf"
    sparse_pdf(small, 1024 * 1024)
    code, small_peak_mb, _ = upload_measured(site, small, patient, tmp_path / "small.jsonl")
    assert code == 0
    code, peak_mb, record = upload_measured(site, big, patient, tmp_path / "big.jsonl")
    print(f"ppdf upload: peak RSS {small_peak_mb:.1f} MB for 1 MiB, {peak_mb:.1f} MB for {size / GB:.2f} GiB")
    try:
        assert code == 0, record
        assert record["status"] == "stored" and record["size"] == size
        digest = hashlib.sha256()
        with open(big, "rb") as file:
            while chunk := file.read(8 * 1024 * 1024):
                digest.update(chunk)
        assert record["sha256"] == digest.hexdigest()
        assert peak_mb < RSS_BOUND_MB and peak_mb - small_peak_mb < GROWTH_BOUND_MB, (small_peak_mb, peak_mb)
    finally:
        with site.client() as client:
            if record.get("pdf_id"):
                client.delete_pdf(record["pdf_id"])  # 1 GB less left on disk
        big.unlink()
