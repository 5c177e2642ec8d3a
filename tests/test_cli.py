"""The `patientpdf` command as scripts use it: --json prints one object, errors exit non-zero on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from served import CLI, Served


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


CLI_ERRORS = [
    (("keys", "create", "99"), "Error: no account with id 99"),
    (("keys", "revoke", "99"), "Error: no API key with id 99"),
    (("keys", "rotate", "99"), "Error: no API key with id 99"),
    (("keys", "create", "1", "--scopes", "everything"), "Error: Invalid value for --scopes: scopes must be a non-empty subset"),
    (("keys", "create", "1", "--expires-in", "soon"), "Error: Invalid value for --expires-in: use a number and a unit"),
    (("patients", "create", "99", "--name", "X"), "Error: no account with id 99"),
    (("patients", "create", "1", "--name", "X", "--dob", "yesterday"), "Error: Invalid value for --dob: use YYYY-MM-DD"),
    (("accounts", "create"), "Error: Missing argument 'NAME'."),
]


@pytest.mark.parametrize(("args", "message"), CLI_ERRORS, ids=["-".join(args) for args, _ in CLI_ERRORS])
def test_errors_exit_non_zero_with_a_message_on_stderr(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    run(tmp_path, "accounts", "create", "A")
    result = run(tmp_path, *args, "--json", ok=False)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr  # a message for the operator, not a crash
    assert message in result.stderr.splitlines()[-1], result.stderr


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
    """A crash leaves half-received uploads in the spool; the next `serve` removes the old ones
    and keeps a fresh one, which another process sharing the data directory may be receiving."""
    spool = tmp_path / "data" / "spool"
    spool.mkdir(parents=True)
    old, fresh = spool / "upload-old.part", spool / "upload-new.part"
    old.write_bytes(b"%PDF-")
    fresh.write_bytes(b"%PDF-")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(old, (two_hours_ago, two_hours_ago))
    server = Served(tmp_path / "data", workers=1, extra_env={})  # returns once /readyz answers 200
    try:
        assert not old.exists()
        assert fresh.exists()
    finally:
        server.stop()
