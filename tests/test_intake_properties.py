"""Property-based: random and mutated multipart bodies and file names never cause a 500, a
stray file or a hang. Bounded example counts keep the suite within minutes."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import LiveServer, Tenant, multipart_body, sample

VALID_BODY, VALID_CONTENT_TYPE = multipart_body(sample("valid.pdf"), "report.pdf")
EXPECTED = {201, 400, 413}
PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    body = bytearray(VALID_BODY)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        mutation = draw(st.sampled_from(["cut", "insert", "flip", "repeat", "delete"]))
        if mutation == "cut":
            del body[at:]
        elif mutation == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=200) | st.sampled_from([b"\r\n", b"--", b"\r\n\r\n", b'"', b"\x00"]))
        elif mutation == "flip" and at < len(body):
            body[at] ^= draw(st.integers(1, 255))
        elif mutation == "repeat":
            body[at:at] = body[at : at + draw(st.integers(1, 300))]
        elif mutation == "delete":
            del body[at : at + draw(st.integers(1, 50))]
    return bytes(body)


# what an HTTP client can put in a header: visible ASCII
header_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80)
content_types = st.one_of(
    st.just(VALID_CONTENT_TYPE),
    header_text.map(lambda boundary: f"multipart/form-data; boundary={boundary}"),
    header_text,
)


def assert_clean_outcome(server: LiveServer, tenant: Tenant, response: httpx.Response, stored_before: int) -> int:
    assert response.status_code in EXPECTED, (response.status_code, response.text)
    if response.status_code != 201:
        body = response.json()
        assert body["code"] and body["detail"]
    spool = server.data_dir / "spool"
    assert not spool.exists() or not any(spool.iterdir()), "a spool file was left behind"
    stored = len(server.blob_keys())
    assert stored == stored_before + (response.status_code == 201), "a blob without its 201 (or the reverse)"
    return stored


def test_mutated_multipart_bodies(server: LiveServer, tenant: Tenant) -> None:
    server.require("sqlite+local", "the intake does not depend on the backends")
    stored = len(server.blob_keys())

    @PROPERTY_SETTINGS
    @given(body=mutated_bodies() | st.binary(max_size=2000), content_type=content_types)
    def check(body: bytes, content_type: str) -> None:
        nonlocal stored
        response = server.client.post(
            f"/patients/{tenant.patient_id}/pdf/",
            headers=tenant.headers | {"Content-Type": content_type},
            content=body,
            timeout=10,  # a hang fails the test with a timeout
        )
        stored = assert_clean_outcome(server, tenant, response, stored)

    check()


def test_random_file_names(server: LiveServer, tenant: Tenant) -> None:
    server.require("sqlite+local", "the intake does not depend on the backends")
    stored = len(server.blob_keys())

    @PROPERTY_SETTINGS
    @given(name=st.text(max_size=300) | st.text(max_size=40).map(lambda n: n + ".pdf"))
    def check(name: str) -> None:
        nonlocal stored
        response = server.client.post(
            f"/patients/{tenant.patient_id}/pdf/",
            headers=tenant.headers,
            files={"file": ("x.pdf", sample("valid.pdf"), "application/pdf")},
            data={"filename": name},
            timeout=10,
        )
        stored = assert_clean_outcome(server, tenant, response, stored)
        if response.status_code == 201:
            cleaned = response.json()["filename"]
            assert cleaned.lower().endswith(".pdf") and "/" not in cleaned and "\x00" not in cleaned
            assert len(cleaned.encode()) <= 255

    check()
