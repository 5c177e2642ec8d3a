"""Ids in paths: only canonical decimal digits name a patient or a key (issue 10, item 8).

The rule: digits 0-9 only, no sign, no leading zero, 1 to 2147483647 (the database's id
range). Anything else answers exactly like an id that names nothing: 404 in our error shape.
The requests are raw (http.client sends the path as written; no client normalises it).
"""

from __future__ import annotations

import http.client
import json
from contextlib import closing
from typing import Any

import pytest

from conftest import LiveServer, Tenant, multipart_body, sample
from patientpdf.services.accounts import list_keys
from patientpdf.services.patients import create_patient

NOT_IDS = [
    "1.0",
    "1e3",
    "0x10",
    "+1",
    "%201",  # " 1"
    "1%20",  # "1 "
    "%091",  # tab, then 1
    "01",
    "00",
    "-1",
    "0",
    "-0",
    "123456789012345678901234567890",
    "2147483648",  # one past the database's range
    "9223372036854775808",  # one past a 64-bit integer
    "1_000",
    "1_0",
    "%D9%A1",  # ARABIC-INDIC DIGIT ONE
    "%EF%BC%91",  # FULLWIDTH DIGIT ONE
    "%C2%B9",  # SUPERSCRIPT ONE
    "1%00",
    "true",
]

PATIENT_ROUTES = [
    ("POST", "/patients/{}/pdf/"),
    ("POST", "/patients/{}/pdf"),
    ("GET", "/patients/{}/"),
    ("GET", "/patients/{}"),
    ("GET", "/patients/{}/pdfs/"),
    ("GET", "/patients/{}/pdfs"),
]
KEY_ROUTES = [("POST", "/keys/{}/rotate"), ("DELETE", "/keys/{}")]


def raw(server: LiveServer, method: str, path: str, key: str, upload: bool = False) -> tuple[int, Any]:
    body, content_type = multipart_body(sample("valid.pdf"), "report.pdf") if upload else (b"{}", "application/json")
    if method in ("GET", "DELETE"):
        body = b""
    headers = {"X-API-Key": key} | ({"Content-Type": content_type} if body else {})
    port = int(server.base_url.rsplit(":", 1)[1])
    with closing(http.client.HTTPConnection("127.0.0.1", port, timeout=30)) as conn:
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        status, content = response.status, response.read()
        assert response.getheader("content-type") == "application/json", (method, path, content)
        return status, json.loads(content)


@pytest.fixture
def patients_1_to_16(server: LiveServer, tenant: Tenant) -> Tenant:
    """Patient 1 is the tenant's, and 16 (what `0x10` would mean) exists too, so a lenient parser would find them."""
    assert tenant.patient_id == 1 and tenant.key_id == 1
    for i in range(15):
        create_patient(server.context, tenant.account_id, {"name": f"P{i}", "dob": None, "sex": None, "additional_variables": {}})
    return tenant


@pytest.mark.parametrize(("method", "route"), PATIENT_ROUTES)
def test_a_patient_id_that_is_not_canonical_digits_names_no_patient(
    server: LiveServer, patients_1_to_16: Tenant, method: str, route: str
) -> None:
    tenant = patients_1_to_16
    upload = route.endswith(("/pdf/", "/pdf"))
    for not_an_id in NOT_IDS:
        status, body = raw(server, method, route.format(not_an_id), tenant.key, upload)
        assert (status, body.get("code")) == (404, "patient_not_found"), (not_an_id, body)
        assert set(body) == {"detail", "code"}
        # the key is still checked first: a bad key is 401 whatever the path holds
        status, body = raw(server, method, route.format(not_an_id), "ppk_wrong", upload)
        assert (status, body["code"]) == (401, "api_key_invalid"), not_an_id
    # nothing was stored for patient 1 (or 16), and the canonical id does work on this route
    assert server.blob_keys() == []
    for patient_id in (1, 16):
        assert server.client.get(f"/patients/{patient_id}/pdfs/", headers=tenant.headers).json() == []
        status, _ = raw(server, method, route.format(patient_id), tenant.key, upload)
        assert status == (201 if upload else 200)


@pytest.mark.parametrize(("method", "route"), KEY_ROUTES)
def test_a_key_id_that_is_not_canonical_digits_names_no_key(server: LiveServer, tenant: Tenant, method: str, route: str) -> None:
    assert tenant.key_id == 1
    for not_an_id in NOT_IDS:
        status, body = raw(server, method, route.format(not_an_id), tenant.key)
        assert (status, body.get("code")) == (404, "key_not_found"), (not_an_id, body)
        assert set(body) == {"detail", "code"}
        status, body = raw(server, method, route.format(not_an_id), "ppk_wrong")
        assert (status, body["code"]) == (401, "api_key_invalid"), not_an_id
    # key 1 was neither rotated nor revoked, and no key was added
    [only] = list_keys(server.context, tenant.account_id)
    assert only["id"] == 1 and only["revoked_at"] is None and only["expires_at"] is None
    assert server.client.get("/patients", headers=tenant.headers).status_code == 200
