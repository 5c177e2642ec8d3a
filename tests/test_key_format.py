"""The API key format (base62 body with a CRC32 checksum) and what a 401 says (issue 10, items 5 and 6)."""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import event

from conftest import LiveServer, Tenant, sample
from patientpdf.db import repositories as repo
from patientpdf.services.accounts import create_key, revoke_key, rotate_key
from patientpdf.services.clock import now_utc

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# what README's "key format" paragraph promises: ppk_, 43 random base62 characters, 6 of checksum
NEW_KEY = re.compile(r"ppk_[0-9A-Za-z]{43}[0-9A-Za-z]{6}")
WWW_AUTHENTICATE = 'ApiKey realm="patientpdf", header="X-API-Key"'


def checksum(text: str) -> str:
    """CRC32 of the text, in base62, zero-padded to 6 characters (written apart from the server's code)."""
    value, digits = zlib.crc32(text.encode("ascii")), ""
    for _ in range(6):
        value, digit = divmod(value, 62)
        digits = BASE62[digit] + digits
    return digits


def legacy_key() -> str:
    """A key as issued before the format changed (`ppk_` + base64url), with a `-` or `_` in it."""
    while True:
        key = "ppk_" + secrets.token_urlsafe(32)
        if "-" in key[4:] or "_" in key[4:]:
            return key


def unknown_key() -> str:
    """A key of the new format with a right checksum that no account holds."""
    body = "ppk_" + "".join(secrets.choice(BASE62) for _ in range(43))
    return body + checksum(body)


@pytest.fixture
def key_lookups(server: LiveServer) -> Iterator[list[str]]:
    """Every SQL statement that reads the api_keys table, as the database sees it."""
    seen: list[str] = []

    def note(_conn, _cursor, statement: str, *_args) -> None:  # type: ignore[no-untyped-def]
        if "api_keys" in statement:
            seen.append(statement)

    engine = server.context.db.engine
    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


def test_new_keys_are_base62_with_a_checksum(server: LiveServer, tenant: Tenant) -> None:
    keys = [tenant.key] + [create_key(server.context, tenant.account_id, f"k{i}")["key"] for i in range(30)]
    keys.append(rotate_key(server.context, tenant.key_id, timedelta(hours=1))["key"])
    created = server.client.post("/keys", headers=tenant.headers, json={"name": "over http"})
    assert created.status_code == 201
    keys.append(created.json()["key"])
    assert len(set(keys)) == len(keys)
    for key in keys:
        # double-click selects all of it: letters, digits and the one underscore of the type prefix
        assert NEW_KEY.fullmatch(key), key
        assert key[-6:] == checksum(key[:-6]), key
    for key in keys[-2:]:
        assert server.client.get("/patients", headers={"X-API-Key": key}).status_code == 200


def test_a_typo_is_401_without_a_database_lookup(server: LiveServer, tenant: Tenant, key_lookups: list[str]) -> None:
    key = tenant.key
    for position in range(4, len(key)):  # every character of the body and of the checksum
        wrong = BASE62[(BASE62.index(key[position]) + 1) % 62]
        typo = key[:position] + wrong + key[position + 1 :]
        response = server.client.get("/patients", headers={"X-API-Key": typo})
        assert response.status_code == 401 and response.json()["code"] == "api_key_invalid", position
    swapped = key[:10] + key[11] + key[10] + key[12:]
    if swapped != key:
        assert server.client.get("/patients", headers={"X-API-Key": swapped}).status_code == 401
    assert key_lookups == []
    # the counter does see a lookup: the correct key is looked up and served
    assert server.client.get("/patients", headers=tenant.headers).status_code == 200
    assert key_lookups


def test_keys_issued_before_keep_working_until_revoked(server: LiveServer, tenant: Tenant) -> None:
    old = legacy_key()
    with server.context.db.write() as conn:  # how the server stored keys before: prefix + SHA-256
        row = repo.insert_api_key(
            conn, tenant.account_id, "legacy", old[:12], hashlib.sha256(old.encode()).hexdigest(), "upload,read,admin", None, now_utc()
        )
    headers = {"X-API-Key": old}
    assert server.client.get("/patients", headers=headers).status_code == 200
    assert server.upload(tenant, sample("valid.pdf"), headers=headers).status_code == 201
    # a typo in an old key is refused too (looked up: old keys carry no checksum)
    wrong = old[:-1] + ("A" if old[-1] != "A" else "B")
    assert server.client.get("/patients", headers={"X-API-Key": wrong}).json()["code"] == "api_key_invalid"
    revoke_key(server.context, row["id"])
    response = server.client.get("/patients", headers=headers)
    assert response.status_code == 401 and response.json()["code"] == "api_key_revoked"


def test_every_401_names_the_scheme_and_the_header(server: LiveServer, tenant: Tenant) -> None:
    pdf_id = server.upload(tenant, sample("valid.pdf")).json()["id"]
    endpoints = [
        ("GET", "/patients"),
        ("POST", "/patients"),
        ("GET", f"/patients/{tenant.patient_id}/"),
        ("GET", f"/patients/{tenant.patient_id}/pdfs/"),
        ("POST", f"/patients/{tenant.patient_id}/pdf/"),
        ("GET", f"/pdfs/{pdf_id}"),
        ("GET", f"/pdfs/{pdf_id}/content"),
        ("HEAD", f"/pdfs/{pdf_id}/content"),
        ("DELETE", f"/pdfs/{pdf_id}"),
        ("GET", "/keys"),
        ("POST", "/keys"),
        ("POST", f"/keys/{tenant.key_id}/rotate"),
        ("DELETE", f"/keys/{tenant.key_id}"),
    ]
    revoked = create_key(server.context, tenant.account_id, "revoked")
    revoke_key(server.context, revoked["id"])
    expired = create_key(server.context, tenant.account_id, "expired", expires_at=now_utc() - timedelta(seconds=1))
    cases = {
        "api_key_missing": [None],
        "api_key_invalid": [
            "ppk_x",  # malformed
            "not a key at all",
            tenant.key[:-1] + ("A" if tenant.key[-1] != "A" else "B"),  # checksum fails
            unknown_key(),  # the new format, checksum right, held by no account
            legacy_key(),  # the old format, unknown
        ],
        "api_key_revoked": [revoked["key"]],
        "api_key_expired": [expired["key"]],
    }
    for code, keys in cases.items():
        for key in keys:
            headers = {} if key is None else {"X-API-Key": key}
            for method, path in endpoints:
                response = server.client.request(method, path, headers=headers)
                assert response.status_code == 401, (method, path, code)
                assert response.headers.get_list("www-authenticate") == [WWW_AUTHENTICATE], (method, path)
                if method != "HEAD":
                    assert response.json()["code"] == code, (method, path, key)
    # an unknown key and a malformed one are told apart by nothing: byte-identical bodies
    bodies = {
        server.client.get("/patients", headers={"X-API-Key": key}).content
        for key in ("ppk_x", "garbage", unknown_key(), tenant.key[:-1] + ("A" if tenant.key[-1] != "A" else "B"), legacy_key())
    }
    assert len(bodies) == 1, bodies
    # the right key still works everywhere
    assert server.client.get(f"/pdfs/{pdf_id}", headers=tenant.headers).status_code == 200
