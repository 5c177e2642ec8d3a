"""One address, many keys: other requests' failed authentications never lock out a valid key.

An integration engine behind one NAT address serves many clinics, each with its own key. The
per-address limit may only turn further *failed* attempts into 429; a request whose key is
valid is served. Real `patientpdf serve` with 2 workers, counters in memory and in Redis.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
from contextlib import closing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends import unavailable
from conftest import multipart_body, sample
from patientpdf.security.api_keys import generate_key
from served import Served

LIMIT = 30  # the default PATIENTPDF_FAILED_AUTH_LIMIT, per minute
WORKERS = 2


def redis_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(params=["memory", "redis"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Served]]:
    env = {"PATIENTPDF_FAILED_AUTH_LIMIT": f"{LIMIT}/minute"}
    if request.param == "redis":
        if not redis_reachable():
            unavailable("Redis at 127.0.0.1:6379")
        # a namespace of this test's own: other tests and runs share the Redis and the address
        env |= {"PATIENTPDF_RATE_LIMIT_STORAGE": "redis://127.0.0.1:6379", "PATIENTPDF_RATE_LIMIT_PREFIX": f"t{secrets.token_hex(8)}"}
    server = Served(tmp_path / "data", workers=WORKERS, extra_env=env)
    try:
        yield request.param, server
    finally:
        server.stop()


def bad_key(i: int) -> str:
    # malformed keys and well-formed keys that no account holds, alternately
    return f"ppk_wrong{i}" if i % 2 else generate_key().key


def send(conn: http.client.HTTPConnection, method: str, path: str, key: str, body: bytes = b"", content_type: str = "") -> tuple[int, dict[str, str], Any]:
    headers = {"X-API-Key": key}
    if content_type:
        headers["Content-Type"] = content_type
    conn.request(method, path, body=body or None, headers=headers)
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(response.read() or b"null")


def assert_refused_for_failures(status: int, headers: dict[str, str], body: Any) -> None:
    assert status == 429 and body["code"] == "too_many_failed_authentications", (status, body)
    assert 1 <= int(headers["retry-after"]) <= 60


def test_a_valid_key_is_served_while_its_address_is_locked_out_for_failures(served: tuple[str, Served]) -> None:
    counters, server = served
    key = server.demo["api_key"]
    patient = server.demo["patient_id"]
    # 100 failed authentications from 127.0.0.1, each on a new connection so both workers get some
    statuses = []
    for i in range(100):
        with closing(http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)) as conn:
            status, headers, body = send(conn, "GET", "/patients", bad_key(i))
        if status == 401:
            assert body["code"] == "api_key_invalid"
        else:
            assert_refused_for_failures(status, headers, body)
        statuses.append(status)
    refused = statuses.count(401)
    if counters == "redis":
        # every process counts together: exactly the limit, then 429
        assert statuses == [401] * LIMIT + [429] * (100 - LIMIT)
    else:
        # each process counts alone; more than LIMIT 401s shows that both workers counted
        assert statuses[:LIMIT] == [401] * LIMIT and LIMIT < refused <= WORKERS * LIMIT and 429 in statuses

    # Keep-alive connections stay with one worker: on each, that worker refuses a bad key
    # (it is locked out), serves the valid key, and still refuses a bad key afterwards.
    files_body, files_type = multipart_body(sample("valid.pdf"), "report.pdf")
    for n in range(8):
        with closing(http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)) as conn:
            # with memory counters a worker that saw fewer than LIMIT failures first needs the rest
            for _ in range(LIMIT + 1):
                status, headers, body = send(conn, "GET", "/patients", bad_key(n))
                if status == 429:
                    break
            assert_refused_for_failures(status, headers, body)
            status, _, listed = send(conn, "GET", "/patients", key)
            assert status == 200 and [p["id"] for p in listed] == [patient], listed
            status, _, one = send(conn, "GET", f"/patients/{patient}/", key)
            assert status == 200 and one["id"] == patient
            status, _, uploaded = send(conn, "POST", f"/patients/{patient}/pdf/", key, files_body, files_type)
            assert status == 201 and uploaded["patient_id"] == patient, uploaded
            assert_refused_for_failures(*send(conn, "GET", "/patients", bad_key(n + 1)))
            assert_refused_for_failures(*send(conn, "POST", f"/patients/{patient}/pdf/", bad_key(n), files_body, files_type))
