"""The console's security over real HTTP: sign-in links, the session cookie, CSRF, other
sites, other accounts, timeouts, and the wall between the console and the API."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from conftest import LiveServer, Tenant, sample
from console_client import SAME_ORIGIN, Browser, csrf_of, login_token, sign_in
from patientpdf.db.schema import console_login_links, console_sessions, patients
from patientpdf.services import audit
from patientpdf.services.clock import now_utc


@pytest.fixture
def browsers() -> Iterator[Callable[..., Browser]]:
    opened: list[Browser] = []

    def open_one(server: LiveServer, account_id: int, **options: object) -> Browser:
        browser = sign_in(server, account_id, **options)
        opened.append(browser)
        return browser

    yield open_one
    for browser in opened:
        browser.close()


def audit_records(server: LiveServer, account_id: int) -> list[dict[str, object]]:
    with server.context.db.read() as conn:
        return list(audit.export_rows(conn, account_id, None))


def session_rows(server: LiveServer, account_id: int) -> list[dict[str, object]]:
    with server.context.db.read() as conn:
        return [dict(row) for row in conn.execute(select(console_sessions).where(console_sessions.c.account_id == account_id)).mappings()]


def patient_count(server: LiveServer, account_id: int) -> int:
    with server.context.db.read() as conn:
        return len(conn.execute(select(patients.c.id).where(patients.c.account_id == account_id)).all())


# sign-in links -----------------------------------------------------------------------------


def test_a_link_signs_in_once_and_only_its_hash_is_stored(server: LiveServer, tenant: Tenant) -> None:
    token = login_token(server, tenant.account_id)
    with httpx.Client(base_url=server.base_url) as client:
        page = client.get("/console/login", params={"token": token})
        assert page.status_code == 200 and 'name="token"' in page.text  # opening the link alone uses nothing
        signed_in = client.post("/console/login", data={"token": token}, headers=SAME_ORIGIN)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/patients"
        cookie = signed_in.headers["set-cookie"]
        assert cookie.startswith("ppdf_console=pps_")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console/" in cookie
        assert "Secure" not in cookie and "Max-Age" not in cookie  # plain HTTP; gone when the browser closes
        assert client.get("/console/patients").status_code == 200

    with httpx.Client(base_url=server.base_url) as again:
        reused = again.post("/console/login", data={"token": token}, headers=SAME_ORIGIN)
        assert reused.status_code == 403 and "already used" in reused.text
        assert "set-cookie" not in reused.headers
        assert again.get("/console/login", params={"token": token}).status_code == 403
        reused_json = again.post("/console/login", data={"token": token}, headers=SAME_ORIGIN | {"Accept": "application/json"})
        assert reused_json.json()["code"] == "login_link_used"

    with server.context.db.read() as conn:
        link = conn.execute(select(console_login_links)).mappings().one()
    assert link["token_hash"] == hashlib.sha256(token.encode()).hexdigest() and link["used_at"] is not None
    assert token not in str(dict(link))
    sessions = session_rows(server, tenant.account_id)
    assert len(sessions) == 1 and sessions[0]["ended_at"] is None
    created = [r for r in audit_records(server, tenant.account_id) if r["action"] == "session.create"]
    assert [r["outcome"] for r in created] == ["ok", "403 login_link_used", "403 login_link_used"]
    assert created[0]["key_prefix"] == created[0]["subject"] == sessions[0]["prefix"]


def test_an_expired_or_altered_link_is_refused(server: LiveServer, tenant: Tenant) -> None:
    expired = login_token(server, tenant.account_id, ttl=timedelta(seconds=1))
    with server.context.db.read() as conn:
        expires_at = conn.execute(select(console_login_links.c.expires_at)).scalar_one()
    while now_utc() <= expires_at:  # its expiry, as stored, has passed
        time.sleep(0.1)
    valid = login_token(server, tenant.account_id)
    with httpx.Client(base_url=server.base_url, headers={"Accept": "application/json"}) as client:
        for token, code in ((expired, "login_link_expired"), (valid[:-1] + ("A" if valid[-1] != "A" else "B"), "login_link_invalid"), ("", "login_link_invalid")):
            refused = client.post("/console/login", data={"token": token}, headers=SAME_ORIGIN)
            assert (refused.status_code, refused.json()["code"]) == (403, code)
            assert "set-cookie" not in refused.headers
    assert session_rows(server, tenant.account_id) == []


def test_over_https_the_cookie_is_secure_with_the_host_prefix(server: LiveServer, tenant: Tenant) -> None:
    """Behind a TLS proxy that sets X-Forwarded-Proto (trusted from 127.0.0.1, as uvicorn does)."""
    https = {"X-Forwarded-Proto": "https"}
    token = login_token(server, tenant.account_id)
    with httpx.Client(base_url=server.base_url, headers=https) as client:
        signed_in = client.post("/console/login", data={"token": token}, headers=SAME_ORIGIN)
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"]
        assert cookie.startswith("__Host-ppdf_console=pps_")
        assert all(part in cookie for part in ("HttpOnly", "SameSite=strict", "Secure", "Path=/"))
        assert "Domain" not in cookie
        session_token = cookie.split(";")[0].split("=", 1)[1]
        assert client.get("/console/keys", headers={"Cookie": f"__Host-ppdf_console={session_token}"}).status_code == 200
        # the HTTP cookie's name is not read over HTTPS
        assert client.get("/console/keys", headers={"Cookie": f"ppdf_console={session_token}"}).status_code == 401


# CSRF and other sites ------------------------------------------------------------------------


def test_a_change_without_the_right_csrf_token_is_refused(server: LiveServer, tenant: Tenant, browsers: Callable[..., Browser]) -> None:
    browser = browsers(server, tenant.account_id)
    other = browsers(server, tenant.account_id)  # a second session of the same account
    before = patient_count(server, tenant.account_id)
    form = {"name": "Mallory Forged"}
    missing = browser.client.post("/console/patients", data=form, headers=SAME_ORIGIN | {"Accept": "application/json"})
    assert (missing.status_code, missing.json()["code"]) == (403, "csrf_token_missing")
    for wrong in ("x" * 43, other.csrf, ""):
        refused = browser.client.post("/console/patients", data=form | {"csrf_token": wrong}, headers=SAME_ORIGIN | {"Accept": "application/json"})
        assert refused.status_code == 403 and refused.json()["code"] in ("csrf_token_invalid", "csrf_token_missing")
    header_wrong = browser.client.post("/console/patients", data=form, headers=SAME_ORIGIN | {"X-CSRF-Token": other.csrf})
    assert header_wrong.status_code == 403
    assert patient_count(server, tenant.account_id) == before
    # the upload takes its token in the header only: a form field inside the multipart body is not read
    blobs = server.blob_keys()
    upload = browser.client.post(
        f"/console/patients/{tenant.patient_id}/pdfs",
        files={"file": ("a.pdf", sample("valid.pdf"), "application/pdf")},
        data={"filename": "a.pdf", "csrf_token": browser.csrf},
        headers=SAME_ORIGIN | {"Accept": "application/json"},
    )
    assert (upload.status_code, upload.json()["code"]) == (403, "csrf_token_missing")
    assert server.blob_keys() == blobs
    refused = [r for r in audit_records(server, tenant.account_id) if r["action"] == "patient.create"]
    assert refused and all(r["outcome"].startswith("403 csrf_token") for r in refused)  # type: ignore[union-attr]
    assert browser.post("/console/patients", form).status_code == 303  # the right token passes
    assert patient_count(server, tenant.account_id) == before + 1


def test_a_request_from_another_site_is_refused(server: LiveServer, tenant: Tenant, browsers: Callable[..., Browser]) -> None:
    browser = browsers(server, tenant.account_id)
    before = patient_count(server, tenant.account_id)
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}, {"Origin": "https://evil.example"}):
        refused = browser.client.post(
            "/console/patients", data={"name": "X", "csrf_token": browser.csrf}, headers=headers | {"Accept": "application/json"}
        )
        assert (refused.status_code, refused.json()["code"]) == (403, "cross_site_request"), headers
    assert patient_count(server, tenant.account_id) == before
    # an Origin that is ours passes (browsers without Sec-Fetch-Site)
    ours = browser.client.post("/console/patients", data={"name": "Y", "csrf_token": browser.csrf}, headers={"Origin": server.base_url})
    assert ours.status_code == 303
    # a sign-in posted from another site neither signs in nor uses the link
    token = login_token(server, tenant.account_id)
    with httpx.Client(base_url=server.base_url) as client:
        forged = client.post("/console/login", data={"token": token}, headers={"Sec-Fetch-Site": "cross-site"})
        assert forged.status_code == 403 and "set-cookie" not in forged.headers
        assert client.post("/console/login", data={"token": token}, headers=SAME_ORIGIN).status_code == 303


# other accounts, and the wall between the console and the API ---------------------------------


def test_another_accounts_patient_or_pdf_is_not_found(server: LiveServer, tenant: Tenant, browsers: Callable[..., Browser]) -> None:
    other = server.tenant("Other Clinic")
    their_pdf = server.upload(other, sample("valid.pdf")).json()["id"]
    browser = browsers(server, tenant.account_id)
    for path in (
        f"/console/patients/{other.patient_id}",
        f"/console/patients/{other.patient_id}/pdfs",
        f"/console/pdfs/{their_pdf}",
        f"/console/pdfs/{their_pdf}/delete",
        f"/console/pdfs/{their_pdf}/pages/1.png",
        "/console/patients/999999",
        "/console/pdfs/pdf_00000000000000000000000000000",
    ):
        assert browser.client.get(path).status_code == 404, path
    blobs = server.blob_keys()
    upload = browser.client.post(
        f"/console/patients/{other.patient_id}/pdfs",
        files={"file": ("a.pdf", sample("valid.pdf"), "application/pdf")},
        data={"filename": "a.pdf"},
        headers=SAME_ORIGIN | {"X-CSRF-Token": browser.csrf, "Accept": "application/json"},
    )
    assert (upload.status_code, upload.json()["code"]) == (404, "patient_not_found")
    assert browser.post(f"/console/pdfs/{their_pdf}/delete").status_code == 404
    assert browser.post(f"/console/keys/{other.key_id}/revoke").status_code == 404
    assert server.blob_keys() == blobs
    assert server.client.get(f"/pdfs/{their_pdf}", headers=other.headers).status_code == 200  # still there
    assert server.client.get("/patients", headers=other.headers).status_code == 200  # their key still works


def test_ids_in_console_paths_follow_the_apis_one_rule(server: LiveServer, tenant: Tenant, browsers: Callable[..., Browser]) -> None:
    """`01`, `+1`, `1.0`… name no patient or key in the console either: 404, never the row with id 1."""
    browser = browsers(server, tenant.account_id)
    assert browser.client.get(f"/console/patients/{tenant.patient_id}").status_code == 200
    for raw in (f"0{tenant.patient_id}", f"+{tenant.patient_id}", f"{tenant.patient_id}.0", f"{tenant.patient_id}_0"):
        assert browser.client.get(f"/console/patients/{raw}").status_code == 404, raw
        assert browser.post(f"/console/keys/{raw.replace(str(tenant.patient_id), str(tenant.key_id))}/revoke").status_code == 404, raw
    assert server.client.get("/patients", headers=tenant.headers).status_code == 200  # the key was not revoked


def test_the_console_never_takes_an_api_key_and_the_api_never_takes_the_cookie(
    server: LiveServer, tenant: Tenant, browsers: Callable[..., Browser]
) -> None:
    with httpx.Client(base_url=server.base_url, headers=tenant.headers) as with_key:
        assert with_key.get("/console/keys").status_code == 401
        assert with_key.get(f"/console/patients/{tenant.patient_id}").status_code == 401
        refused = with_key.post("/console/patients", data={"name": "X"}, headers=SAME_ORIGIN | {"Accept": "application/json"})
        assert refused.status_code == 401
    browser = browsers(server, tenant.account_id)
    cookie = browser.client.cookies["ppdf_console"]
    with httpx.Client(base_url=server.base_url) as api:
        for method, path in (("GET", "/patients"), ("GET", f"/patients/{tenant.patient_id}/"), ("GET", "/keys"), ("POST", "/keys")):
            answer = api.request(method, path, headers={"Cookie": f"ppdf_console={cookie}; __Host-ppdf_console={cookie}"})
            assert (answer.status_code, answer.json()["code"]) == (401, "api_key_missing"), path


# pages -----------------------------------------------------------------------------------------

_INLINE = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>|\sstyle=|\son[a-z]+=|<style", re.IGNORECASE)


def test_every_page_has_a_strict_csp_and_no_inline_script_or_style(server: LiveServer, tenant: Tenant, browsers: Callable[..., Browser]) -> None:
    pdf_id = server.upload(tenant, sample("valid.pdf")).json()["id"]
    browser = browsers(server, tenant.account_id)
    pages = [
        "/console/patients", "/console/keys", "/console/audit", "/console/search", f"/console/patients/{tenant.patient_id}",
        f"/console/pdfs/{pdf_id}", f"/console/pdfs/{pdf_id}/delete", "/console/audit/verify", "/console/no-such-page",
    ]  # fmt: skip
    for path in pages:
        page = browser.client.get(path)
        assert page.status_code in (200, 404), path
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe" not in csp
        assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
        assert not _INLINE.search(page.text), (path, _INLINE.search(page.text))
    viewer = browser.client.get(f"/console/pdfs/{pdf_id}").text
    frame = re.search(r'<iframe class="pdf-frame" src="([^"]+)"', viewer)
    assert frame and frame.group(1).startswith(f"/files/{pdf_id}?")  # same origin, so frame-src 'self' lets it load
    pdf = browser.client.get(frame.group(1).replace("&amp;", "&"))
    assert pdf.status_code == 200 and pdf.content == sample("valid.pdf")
    assert "x-frame-options" not in pdf.headers and "content-security-policy" not in pdf.headers  # the viewer may frame it


# session lifetime ----------------------------------------------------------------------------


def test_signing_out_ends_the_session_on_the_server(server: LiveServer, tenant: Tenant, browsers: Callable[..., Browser]) -> None:
    browser = browsers(server, tenant.account_id)
    token = browser.client.cookies["ppdf_console"]
    out = browser.post("/console/logout")
    assert out.status_code == 303 and 'ppdf_console=""' in out.headers["set-cookie"]
    with httpx.Client(base_url=server.base_url, headers={"Accept": "application/json"}) as replay:
        again = replay.get("/console/keys", headers={"Cookie": f"ppdf_console={token}"})
        assert (again.status_code, again.json()["code"]) == (401, "session_ended")
    [row] = session_rows(server, tenant.account_id)
    assert row["end_reason"] == "signed_out"
    assert [r["subject"] for r in audit_records(server, tenant.account_id) if r["action"] == "session.end"] == [row["prefix"]]


def _wait_past(moment: object) -> None:
    while now_utc() <= moment:  # type: ignore[operator]
        time.sleep(0.05)


def test_a_session_ends_after_its_idle_timeout(make_server: Callable[..., LiveServer], browsers: Callable[..., Browser]) -> None:
    server = make_server(console_idle_timeout_seconds=2)
    tenant = server.tenant()
    browser = browsers(server, tenant.account_id)
    # in use, it lives past several idle periods: each request moves last_seen_at
    started = now_utc()
    seen = []
    while now_utc() - started < timedelta(seconds=5):
        assert browser.client.get("/console/patients").status_code == 200
        seen.append(session_rows(server, tenant.account_id)[0]["last_seen_at"])
        time.sleep(0.4)
    assert seen[-1] > seen[0] + timedelta(seconds=3)
    # left alone past its idle timeout, as recorded, it has ended
    _wait_past(session_rows(server, tenant.account_id)[0]["last_seen_at"] + timedelta(seconds=2))
    expired = browser.client.get("/console/patients", headers={"Accept": "application/json"})
    assert (expired.status_code, expired.json()["code"]) == (401, "session_expired")
    [row] = session_rows(server, tenant.account_id)
    assert row["end_reason"] == "idle" and row["ended_at"] is not None
    assert [r["outcome"] for r in audit_records(server, tenant.account_id) if r["action"] == "session.expire"] == ["idle"]


def test_a_session_ends_at_its_absolute_limit_however_active(make_server: Callable[..., LiveServer], browsers: Callable[..., Browser]) -> None:
    server = make_server(console_session_max_seconds=3)
    tenant = server.tenant()
    browser = browsers(server, tenant.account_id)
    [row] = session_rows(server, tenant.account_id)
    assert row["expires_at"] == row["created_at"] + timedelta(seconds=3)
    while now_utc() < row["expires_at"] - timedelta(seconds=0.5):
        assert browser.client.get("/console/patients").status_code == 200
        time.sleep(0.3)
    _wait_past(row["expires_at"])
    expired = browser.client.get("/console/patients", headers={"Accept": "application/json"})
    assert (expired.status_code, expired.json()["code"]) == (401, "session_expired")
    assert session_rows(server, tenant.account_id)[0]["end_reason"] == "expired"
    fresh = browsers(server, tenant.account_id)  # a new link signs in again
    assert fresh.client.get("/console/patients").status_code == 200


def test_the_pages_csrf_token_is_the_sessions(server: LiveServer, tenant: Tenant, browsers: Callable[..., Browser]) -> None:
    browser = browsers(server, tenant.account_id)
    [row] = session_rows(server, tenant.account_id)
    page = browser.client.get("/console/patients").text
    assert csrf_of(page) == row["csrf_token"] and f'hx-headers=\'{{"X-CSRF-Token": "{row["csrf_token"]}"}}\'' in page


def test_guessing_links_is_limited_per_address(make_server: Callable[..., LiveServer]) -> None:
    """Failed sign-ins count as failed authentications: past the limit a further guess is 429,
    while a real link from the same address still signs in (issue 10: one address, many users)."""
    server = make_server(failed_auth_limit="3/minute")
    tenant = server.tenant()
    token = login_token(server, tenant.account_id)
    with httpx.Client(base_url=server.base_url, headers={"Accept": "application/json"}) as client:
        for guess in range(3):
            assert client.get("/console/login", params={"token": f"ppl_guess{guess:040d}"}).status_code == 403
        blocked = client.get("/console/login", params={"token": f"ppl_guess{4:040d}"})
        assert (blocked.status_code, blocked.json()["code"]) == (429, "too_many_failed_authentications")
        assert "retry-after" in blocked.headers
        signed_in = client.post("/console/login", data={"token": token}, headers=SAME_ORIGIN)
        assert signed_in.status_code == 303 and signed_in.headers["location"].endswith("/console/patients")
    with server.context.db.read() as conn:
        assert conn.execute(select(console_login_links.c.used_at)).scalar_one() is not None  # the real link was used
