"""`ppdf` as a user meets it: progress bars in a real pseudo-terminal, JSON lines in a pipe,
the documented exit codes, the listing and download commands, and a key that is never printed."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import termios
from collections.abc import Callable
from pathlib import Path

import pytest

from backends import free_port
from client.conftest import PPDF, Site, make_folder, make_pdf

pytestmark = pytest.mark.parametrize("backend", ["sqlite+local"])  # the CLI's behaviour; the backends are tested elsewhere


def in_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `ppdf` with a pseudo-terminal (120×40) as its stdin, stdout and stderr; its exit code and screen output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([PPDF, *args], stdin=slave, stdout=slave, stderr=slave, env=env | {"TERM": "xterm-256color"})
    os.close(slave)
    output = bytearray()
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not data:
            break
        output += data
    os.close(master)
    return process.wait(timeout=120), output.decode(errors="replace")


def test_progress_bars_per_file_and_overall_on_a_terminal(live_site: Callable[..., Site], tmp_path: Path) -> None:
    site = live_site(key_rate_limit="2/second")  # uploads wait for Retry-After: their bars stay on screen a while
    folder = make_folder(tmp_path / "faxes", unique=6, padding=400_000)
    patient = site.new_patient()
    code, screen = in_a_terminal(["upload", str(folder.root), "--patient", str(patient), "--jobs", "2"], site.env())
    assert code == 0, screen
    assert "\x1b[" in screen  # drawn with terminal control sequences
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)  # the text on screen
    assert re.search(r"overall \d/6 files", screen) and "overall 6/6 files" in screen
    assert "━" in screen and "MB" in screen  # bars with byte counts
    shown = [path.name for path in folder.valid if path.name in screen]
    assert shown, screen  # each file has its own bar while it is sent
    assert "6 files: 6 stored, 0 duplicate, 0 skipped, 0 refused, 0 failed" in screen
    assert '{"path"' not in screen and site.key not in screen

    code, screen = in_a_terminal(["upload", str(folder.root), "--patient", str(patient), "--no-progress"], site.env())
    assert code == 0
    assert "━" not in screen and len(re.findall(r"duplicate\s+/\S+fax-\d+\.pdf\s+pdf_\w+ \(same bytes as pdf_\w+\)", screen)) == 6


def test_json_lines_when_not_on_a_terminal(live_site: Callable[..., Site], tmp_path: Path) -> None:
    site = live_site()
    path = make_pdf(tmp_path / "one.pdf", "One")
    result = site.ppdf("upload", str(path), "--patient", str(site.new_patient()))
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0 and records[0]["status"] == "stored" and records[0]["path"] == str(path)
    assert records[-1]["summary"]["stored"] == 1 and records[-1]["exit_code"] == 0
    assert result.stderr == ""


def test_exit_codes_and_the_key_is_never_printed(live_site: Callable[..., Site], tmp_path: Path) -> None:
    site = live_site()
    patient = str(site.new_patient())
    good, bad = make_pdf(tmp_path / "good.pdf", "Good"), tmp_path / "bad.pdf"
    bad.write_bytes(b"not a pdf")
    wrong_key = "ppk_" + "W" * 43
    outputs = []

    def ppdf(*args: str, expect: int, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {name: value for name, value in site.env(**env).items() if value}
        result = site.ppdf(*args, env=environment)
        outputs.append(result.stdout + result.stderr)
        assert result.returncode == expect, (args, result.stdout, result.stderr)
        return result

    ppdf("upload", str(good), "--patient", patient, expect=0)
    ppdf("upload", str(good), str(bad), "--patient", patient, expect=1)
    ppdf("upload", str(tmp_path / "missing.pdf"), "--patient", patient, expect=2)
    ppdf("upload", str(good), "--patient", patient, "--jobs", "0", expect=2)
    ppdf("upload", str(good), expect=2)  # no --patient
    assert "PATIENTPDF_URL" in ppdf("patients", expect=2, PATIENTPDF_URL="").stderr
    unreachable = ppdf("patients", "--max-attempts", "2", expect=3, PATIENTPDF_URL=f"http://127.0.0.1:{free_port()}")
    assert "cannot reach" in unreachable.stderr
    refused = ppdf("upload", str(good), str(good), "--patient", patient, "--api-key", wrong_key, expect=4)
    assert "api_key_invalid" in refused.stderr and "stopped" in refused.stderr
    ppdf("patients", expect=4, PATIENTPDF_API_KEY=wrong_key)
    assert "patient_not_found" in ppdf("pdfs", "999999", expect=4).stderr
    assert "pdf_not_found" in ppdf("download", "pdf_" + "0" * 29, "-o", str(tmp_path / "x.pdf"), expect=4).stderr
    for output in outputs:
        assert site.key not in output and wrong_key not in output and "WWWWWWWW" not in output


def test_patients_pdfs_and_download(live_site: Callable[..., Site], tmp_path: Path) -> None:
    site = live_site()
    patient = site.new_patient()
    path = make_pdf(tmp_path / "chart.pdf", "Chart", padding=600_000)
    site.ppdf("upload", str(path), "--patient", str(patient))
    patients = [json.loads(line) for line in site.ppdf("patients").stdout.splitlines()]
    assert patient in [p["id"] for p in patients]
    pdfs = [json.loads(line) for line in site.ppdf("pdfs", str(patient)).stdout.splitlines()]
    assert [p["filename"] for p in pdfs] == ["chart.pdf"]
    out = tmp_path / "back.pdf"
    (tmp_path / "back.pdf.part").write_bytes(path.read_bytes()[:250_000])  # an interrupted earlier download
    result = site.ppdf("download", pdfs[0]["id"], "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"pdf_id": pdfs[0]["id"], "size": path.stat().st_size, "sha256": pdfs[0]["sha256"], "path": str(out), "resumed_from": 250_000}
    assert out.read_bytes() == path.read_bytes()
    human = site.ppdf("pdfs", str(patient), "--json", env=site.env())
    assert json.loads(human.stdout.splitlines()[0])["id"] == pdfs[0]["id"]
