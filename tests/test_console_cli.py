"""`patientpdf console`: sign-in links and sessions, as an operator runs them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
from sqlalchemy import select

from conftest import LiveServer, Tenant
from console_client import SAME_ORIGIN, token_of
from patientpdf.db.schema import console_login_links
from patientpdf.services import audit
from test_cli import run, run_json


def test_login_link_and_sessions_list_and_revoke(server: LiveServer, tenant: Tenant) -> None:
    server.require("sqlite+local", "the CLI finds the server's database in its data directory")
    data_dir: Path = server.data_dir
    link = run_json(data_dir, "console", "login-link", str(tenant.account_id), "--ttl", "5m", "--base-url", server.base_url)
    assert link["url"].startswith(f"{server.base_url}/console/login?token=ppl_")
    token = token_of(link["url"])
    with server.context.db.read() as conn:
        hashes = conn.execute(select(console_login_links.c.token_hash)).scalars().all()
    assert hashes == [hashlib.sha256(token.encode()).hexdigest()]  # the hash, never the link

    with httpx.Client(base_url=server.base_url, headers={"Accept": "application/json"}) as browser:
        assert browser.post("/console/login", data={"token": token}, headers=SAME_ORIGIN).status_code == 303
        assert browser.get("/console/keys").status_code == 200
        [session] = run_json(data_dir, "console", "sessions", "list", str(tenant.account_id))["sessions"]
        assert session["state"] == "active" and session["prefix"].startswith("pps_") and session["client"] == "127.0.0.1"
        cookie = browser.cookies["ppdf_console"]
        assert cookie.startswith(session["prefix"]) and cookie not in str(session)

        revoked = run_json(data_dir, "console", "sessions", "revoke", str(session["id"]))
        assert revoked["state"] == revoked["end_reason"] == "revoked"
        refused = browser.get("/console/keys")
        assert (refused.status_code, refused.json()["code"]) == (401, "session_ended")

    listing = run(data_dir, "console", "sessions", "list", "--all").stdout
    assert listing.startswith(f"{session['id']}\taccount {tenant.account_id}\t{session['prefix']}...\trevoked")
    with server.context.db.read() as conn:
        records = [(r["action"], r["key_prefix"], r["subject"]) for r in audit.export_rows(conn, tenant.account_id, None)]
    prefix = session["prefix"]
    assert ("login_link.create", None, "link 1") in records
    assert ("session.create", prefix, prefix) in records and ("session.revoke", None, prefix) in records


def test_console_command_errors(tmp_path: Path) -> None:
    assert "no account with id 9" in run(tmp_path, "console", "login-link", "9", ok=False).stderr
    assert "--ttl" in run(tmp_path, "console", "login-link", "1", "--ttl", "2d", ok=False).stderr
    assert "no console session with id 5" in run(tmp_path, "console", "sessions", "revoke", "5", ok=False).stderr
