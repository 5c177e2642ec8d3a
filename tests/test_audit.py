"""The audit trail: every access recorded with its outcome; append-only; edits and deletions detected."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from conftest import LiveServer, Tenant, sample
from patientpdf.services import audit
from patientpdf.services.accounts import create_key, revoke_key, rotate_key
from test_cli import CLI


def records(server: LiveServer, account_id: int | None = None) -> list[dict[str, Any]]:
    with server.context.db.read() as conn:
        return list(audit.export_rows(conn, account_id, None))


def cli(server: LiveServer, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    settings = server.settings
    env = {**os.environ, "PATIENTPDF_DATA_DIR": str(settings.data_dir), "PATIENTPDF_LOG_LEVEL": "WARNING"}
    if settings.database_url:
        env |= {"PATIENTPDF_DATABASE_URL": settings.database_url, "PATIENTPDF_SECRET_KEY": settings.secret_key or ""}
    result = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode == 0) is ok, result.stderr
    return result


def test_every_access_is_recorded_with_its_outcome(server: LiveServer, tenant: Tenant) -> None:
    uploaded = server.upload(tenant, sample("valid.pdf"), headers={"X-Request-ID": "req-upload-1", "Idempotency-Key": "k1"}).json()
    server.upload(tenant, sample("valid.pdf"), headers={"Idempotency-Key": "k1"})  # a replay
    pdf_id = uploaded["id"]
    server.upload(tenant, sample("truncated.pdf"))
    server.client.get(f"/pdfs/{pdf_id}", headers=tenant.headers)
    server.client.get(f"/pdfs/{pdf_id}/content", headers=tenant.headers)
    server.client.get(uploaded["url"])
    server.client.get(uploaded["url"].replace("signature=", "signature=x"))
    server.client.get(f"/patients/{tenant.patient_id}/", headers=tenant.headers)
    server.client.get("/patients", headers={"X-API-Key": "ppk_notarealkey123"})
    server.client.delete(f"/pdfs/{pdf_id}", headers=tenant.headers)
    other = server.tenant("Other clinic")  # its key is created by the CLI: one more key.create
    server.upload(tenant, sample("valid.pdf"), patient_id=other.patient_id)
    new_key = create_key(server.context, tenant.account_id, "second")
    rotate_key(server.context, new_key["id"], timedelta(hours=1))
    revoke_key(server.context, new_key["id"])

    seen = [(r["action"], r["outcome"]) for r in records(server)]
    expected = [
        ("pdf.upload", "201"),
        ("pdf.upload", "201 idempotent_replay"),
        ("pdf.upload", "400 pdf_truncated"),
        ("pdf.read", "200"),
        ("pdf.download", "200"),
        ("pdf.link_download", "200"),
        ("pdf.link_download", "403 link_invalid"),
        ("patient.read", "200"),
        ("patient.list", "401 api_key_invalid"),
        ("pdf.delete", "204"),
        ("key.create", "ok"),
        ("pdf.upload", "403 patient_forbidden"),
        ("key.create", "ok"),
        ("key.rotate", "ok"),
        ("key.create", "ok"),
        ("key.revoke", "ok"),
    ]
    assert seen[-len(expected) :] == expected
    by_action = {r["action"]: r for r in records(server)}
    refused = next(r for r in records(server) if r["outcome"] == "403 patient_forbidden")
    assert refused["account_id"] == tenant.account_id and refused["patient_id"] == other.patient_id  # who tried what
    upload = next(r for r in records(server) if r["action"] == "pdf.upload")
    assert upload["request_id"] == "req-upload-1" and upload["pdf_id"] == pdf_id
    assert upload["patient_id"] == tenant.patient_id and upload["account_id"] == tenant.account_id
    assert upload["key_prefix"] == tenant.key[:12] and upload["client"] == "127.0.0.1"
    replay = next(r for r in records(server) if r["outcome"] == "201 idempotent_replay")
    assert replay["pdf_id"] == pdf_id and replay["patient_id"] == tenant.patient_id
    link = next(r for r in records(server) if r["action"] == "pdf.link_download")
    assert link["account_id"] == tenant.account_id and link["key_prefix"] is None  # found from the link's PDF
    assert by_action["key.revoke"]["subject"] == new_key["prefix"] and by_action["key.revoke"]["client"] == "cli"
    everything = json.dumps(records(server))
    assert tenant.key not in everything and new_key["key"] not in everything
    assert "Jane Roe" not in everything and "report.pdf" not in everything  # no names, no file names


def test_records_cannot_be_changed_and_tampering_is_named(server: LiveServer, tenant: Tenant) -> None:
    for _ in range(3):
        server.client.get("/patients", headers=tenant.headers)
    assert json.loads(cli(server, "audit", "verify", "--json").stdout) == {"checked": 4, "ok": True, "problems": []}
    for statement in ("UPDATE audit_events SET outcome = '200' WHERE seq = 2", "DELETE FROM audit_events WHERE seq = 2"):
        try:
            with server.context.db.write() as conn:
                conn.execute(text(statement))
            raise AssertionError(f"the database allowed: {statement}")
        except Exception as exc:
            assert "append-only" in str(exc)
    # someone with the database owner's rights switches the guard off and edits a record
    with server.context.db.write() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_UPDATE"))
            conn.execute(text("DROP TRIGGER audit_events_no_DELETE"))
        else:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        conn.execute(text("UPDATE audit_events SET client = '10.9.9.9' WHERE seq = 2"))
    result = cli(server, "audit", "verify", "--json", ok=False)
    report = json.loads(result.stdout)
    assert report["ok"] is False and [p["seq"] for p in report["problems"]] == [2]
    assert "altered" in report["problems"][0]["problem"]
    with server.context.db.write() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    problems = json.loads(cli(server, "audit", "verify", "--json", ok=False).stdout)["problems"]
    assert {"seq": 3, "problem": "records 3 to 3 are missing"} in problems


def test_export_filters_and_formats(server: LiveServer, tenant: Tenant) -> None:
    other = server.tenant("Other clinic")
    server.client.get("/patients", headers=tenant.headers)
    server.client.get("/patients", headers=other.headers)
    lines = cli(server, "audit", "export", "--account", str(other.account_id)).stdout.splitlines()
    exported = [json.loads(line) for line in lines]
    assert {r["account_id"] for r in exported} == {other.account_id}
    assert [r["action"] for r in exported] == ["key.create", "patient.list"]
    rows = list(csv.DictReader(io.StringIO(cli(server, "audit", "export", "--format", "csv").stdout)))
    assert len(rows) == 4 and rows[0]["seq"] == "1" and len(rows[-1]["hash"]) == 64
    assert cli(server, "audit", "export", "--since", "2999-01-01").stdout == ""


def test_data_is_not_served_when_its_access_cannot_be_recorded(server: LiveServer, tenant: Tenant) -> None:
    server.require("sqlite+local", "the failing insert is an SQLite trigger")
    pdf_id = server.upload(tenant, sample("valid.pdf")).json()["id"]
    with server.context.db.write() as conn:
        conn.execute(text("CREATE TRIGGER audit_down BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"))
    response = server.client.get(f"/pdfs/{pdf_id}/content", headers=tenant.headers)
    assert response.status_code == 503 and response.json()["code"] == "audit_unavailable"
    assert b"%PDF" not in response.content
    # the upload writes its record in its own transaction: no record, no PDF
    refused = server.upload(tenant, sample("valid.pdf"))
    assert refused.status_code == 503 and refused.json()["code"] == "audit_unavailable"
    assert len(server.blob_keys()) == 1  # the refused upload's bytes are gone again
    with server.context.db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM pdfs")).scalar() == 1
