"""The `patientpdf` command as scripts use it: --json prints one object, errors exit non-zero on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).with_name("patientpdf"))


def run(data_dir: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATIENTPDF_DATA_DIR": str(data_dir), "PATIENTPDF_LOG_LEVEL": "WARNING"}
    result = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode == 0) is ok, result.stderr
    return result


def run_json(data_dir: Path, *args: str) -> dict:
    stdout = run(data_dir, *args, "--json").stdout
    assert stdout.count("\n") == 1, stdout  # exactly one JSON object
    return json.loads(stdout)


def test_operator_workflow(tmp_path: Path) -> None:
    assert run_json(tmp_path, "db", "upgrade")["status"] == "ok"
    account = run_json(tmp_path, "accounts", "create", "North Clinic")
    assert account == {"id": 1, "name": "North Clinic"}
    key = run_json(tmp_path, "keys", "create", "1", "--name", "ehr-bridge")
    assert key["key"].startswith("ppk_") and len(key["key"]) >= 40 and key["key"].startswith(key["prefix"])
    listed = run_json(tmp_path, "keys", "list", "1")["keys"]
    assert [k["prefix"] for k in listed] == [key["prefix"]]
    assert key["key"] not in json.dumps(listed)
    patient = run_json(tmp_path, "patients", "create", "1", "--name", "Ann Lee", "--dob", "1975-05-06", "--sex", "F")
    assert patient == {"id": 1, "name": "Ann Lee", "dob": "1975-05-06", "sex": "F", "additional_variables": {}}
    revoked = run_json(tmp_path, "keys", "revoke", str(key["id"]))
    assert revoked["revoked_at"] is not None
    assert run(tmp_path, "keys", "list").stdout.split("\t")[3] == "revoked"


def test_key_lifecycle_scopes_expiry_rotation(tmp_path: Path) -> None:
    run_json(tmp_path, "accounts", "create", "North Clinic")
    key = run_json(tmp_path, "keys", "create", "1", "--scopes", "read,upload", "--expires-in", "30d")
    assert key["scopes"] == ["upload", "read"] and key["expires_at"] is not None
    rotated = run_json(tmp_path, "keys", "rotate", str(key["id"]), "--grace", "15m")
    assert rotated["scopes"] == ["upload", "read"] and rotated["key"] != key["key"]
    assert rotated["replaces"]["id"] == key["id"] and rotated["replaces"]["expires_at"] < key["expires_at"]
    assert run_json(tmp_path, "links", "revoke-all") == {"status": "ok"}
    verified = run_json(tmp_path, "audit", "verify")
    assert verified["ok"] is True and verified["checked"] == 3  # create, rotate, create


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "create", "99"),
        ("keys", "revoke", "99"),
        ("keys", "rotate", "99"),
        ("keys", "create", "1", "--scopes", "everything"),
        ("keys", "create", "1", "--expires-in", "soon"),
        ("patients", "create", "99", "--name", "X"),
        ("patients", "create", "1", "--name", "X", "--dob", "yesterday"),
        ("accounts", "create"),
    ],
)
def test_errors_exit_non_zero_with_a_message_on_stderr(tmp_path: Path, args: tuple[str, ...]) -> None:
    run(tmp_path, "accounts", "create", "A")
    result = run(tmp_path, *args, "--json", ok=False)
    assert result.stdout == ""
    assert result.stderr.strip()


def test_demo_is_created_once(tmp_path: Path) -> None:
    first = run_json(tmp_path, "demo")
    second = run_json(tmp_path, "demo")
    links = (first.pop("console_url"), second.pop("console_url"))
    assert first == second
    # each run prints a fresh single-use sign-in link to the console
    assert links[0] != links[1] and all(link.startswith("http://127.0.0.1:8000/console/login?token=ppl_") for link in links)
    assert first["api_key"].startswith("ppk_")
    assert f"/patients/{first['patient_id']}/pdf/" in first["curl"]
    assert Path(first["sample_pdf"]).read_bytes().startswith(b"%PDF-")


def test_bad_configuration_is_reported(tmp_path: Path) -> None:
    env = {**os.environ, "PATIENTPDF_DATA_DIR": str(tmp_path), "PATIENTPDF_MAX_UPLOAD_BYTES": "lots"}
    result = subprocess.run([CLI, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "max_upload_bytes" in result.stderr


def test_serve_sweeps_old_half_received_uploads(tmp_path: Path) -> None:
    from patientpdf.cli.serve import sweep_spool

    spool = tmp_path / "spool"
    spool.mkdir()
    old, fresh = spool / "upload-old.part", spool / "upload-new.part"
    old.write_bytes(b"%PDF-")
    fresh.write_bytes(b"%PDF-")
    os.utime(old, (0, 0))
    sweep_spool(spool)
    assert not old.exists() and fresh.exists()
