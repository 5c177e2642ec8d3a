"""SSRF at delivery time: the URL is checked again before every attempt, after resolution, and
the connection goes to the vetted address; no redirect is followed.

Endpoints are registered where their host was allowed (PATIENTPDF_WEBHOOK_ALLOWED_HOSTS), then
delivered by a worker where it is not: what an endpoint whose name now resolves inside looks
like to the worker (DNS rebinding), with real resolution and no fake resolver. The proofs:
a listening socket on the port the URL names sees no connection, and a Python audit hook sees
every connect() and getaddrinfo() of the in-process worker (it refuses any connect beyond the
loopback, so a bug here can never send traffic out).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import LiveServer
from patientpdf.context import Context
from patientpdf.db.jobs import DELIVER_WEBHOOK
from patientpdf.jobs import HANDLERS, Worker
from patientpdf.webhooks import sender, signing, targets
from processing_helpers import assert_none_left, count, start_worker, wait_until, worker_env
from webhook_helpers import WEBHOOK_SETTINGS, Listener, Receivers, deliveries, delivery, receivers_fixture, register


class NetworkWatch:
    """Every connect() and getaddrinfo() of this process while `active`; connects beyond the
    loopback are refused (PermissionError) before they leave."""

    def __init__(self) -> None:
        self.active = False
        self.connects: list[tuple[str, int]] = []
        self.lookups: list[tuple[str, Any]] = []

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "socket.getaddrinfo":
            self.lookups.append((str(args[0]), args[1]))
        elif event == "socket.connect" and args[0].family in (socket.AF_INET, socket.AF_INET6):
            host, port = str(args[1][0]), int(args[1][1])
            self.connects.append((host, port))
            if not ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8") and host != "::1":
                raise PermissionError(f"the test refuses a connection to {host}")

    def __enter__(self) -> NetworkWatch:
        self.connects.clear()
        self.lookups.clear()
        self.active = True
        return self

    def __exit__(self, *_exc: object) -> None:
        self.active = False


_WATCH = NetworkWatch()
sys.addaudithook(_WATCH.hook)  # audit hooks cannot be removed; inactive outside `with _WATCH`


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    yield from receivers_fixture(tmp_path)


@pytest.fixture
def listener() -> Iterator[Listener]:
    sock = Listener()
    yield sock
    sock.close()


def worker_without_allowlist(server: LiveServer) -> tuple[Worker, Context]:
    """The real worker, with the server's settings except that no host is allowed."""
    ctx = Context.from_settings(server.settings.model_copy(update={"webhook_allowed_hosts": ""}))
    return Worker(ctx, {DELIVER_WEBHOOK: HANDLERS[DELIVER_WEBHOOK]}), ctx


def revoke_a_key(server: LiveServer, tenant: Any) -> None:
    spare = server.client.post("/keys", headers=tenant.headers, json={}).json()
    assert server.client.delete(f"/keys/{spare['id']}", headers=tenant.headers).status_code == 200


def first_attempts(server: LiveServer, tenant: Any, webhook_ids: list[int]) -> dict[int, dict[str, Any]]:
    found = {}
    for webhook_id in webhook_ids:
        [item] = deliveries(server, tenant, webhook_id)
        found[webhook_id] = delivery(server, tenant, webhook_id, item["id"])["attempt_log"][0]
    return found


SPELLINGS = {
    "169.254.169.254": "169.254.169.254",  # the cloud metadata service
    "::ffff:127.0.0.1": "[::ffff:127.0.0.1]",
    "2130706433": "2130706433",  # the resolver makes it 127.0.0.1
    "localhost": "localhost",  # a name that resolves to a loopback address
}


def test_every_attempt_checks_the_url_again_after_resolution(
    backend: str, make_server: Callable[..., LiveServer], listener: Listener
) -> None:
    if backend != "sqlite+local":
        pytest.skip("the audit hook sees Python's sockets; PostgreSQL's libpq connects in C: sqlite+local only")
    server = make_server(**WEBHOOK_SETTINGS | {"webhook_allowed_hosts": ",".join(SPELLINGS)})
    tenant = server.tenant()
    ids = {}
    for host, spelled in SPELLINGS.items():
        ids[host] = register(server, tenant, f"https://{spelled}:{listener.port}/hook", ["key.revoked"])["id"]
    revoke_a_key(server, tenant)
    worker, ctx = worker_without_allowlist(server)
    try:
        with _WATCH:
            while count(server, "webhook_attempts") < len(SPELLINGS):
                worker.run_one()
    finally:
        ctx.close()
    assert _WATCH.connects == [] and listener.connections() == 0
    attempts = first_attempts(server, tenant, list(ids.values()))
    for host, webhook_id in ids.items():
        assert attempts[webhook_id]["error"] == "webhook_url_not_public" and attempts[webhook_id]["response_status"] is None, host
    assert "2130706433 resolves to 127.0.0.1, a loopback address" in attempts[ids["2130706433"]]["detail"]
    assert "localhost resolves to 127.0.0.1" in attempts[ids["localhost"]]["detail"]
    assert "IPv4-mapped" in attempts[ids["::ffff:127.0.0.1"]]["detail"]
    assert "link-local" in attempts[ids["169.254.169.254"]]["detail"]
    looked_up = {host for host, _port in _WATCH.lookups}
    assert {"2130706433", "localhost"} <= looked_up  # refused after resolution, not by the way they are written
    for item in (deliveries(server, tenant, webhook_id)[0] for webhook_id in ids.values()):
        assert item["status"] == "pending" and item["error"] == "webhook_url_not_public"  # tried again on the schedule


def test_a_worker_process_refuses_a_name_that_now_resolves_inside(make_server: Callable[..., LiveServer], listener: Listener, tmp_path: Path) -> None:
    """Registered while `localhost` was allowed; the worker process allows nothing."""
    server = make_server(**WEBHOOK_SETTINGS | {"webhook_allowed_hosts": "localhost"})
    server.require("sqlite+local", "the check runs in the worker, whatever the database")
    tenant = server.tenant()
    webhook = register(server, tenant, f"https://localhost:{listener.port}/hook", ["key.revoked"])
    revoke_a_key(server, tenant)
    env = worker_env(server, worker_poll_seconds=0.05, **WEBHOOK_SETTINGS | {"webhook_allowed_hosts": ""})
    process = start_worker(env, tmp_path / "worker.log")
    try:
        wait_until(lambda: count(server, "webhook_attempts") >= 2, "the worker attempts the delivery twice")
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert listener.connections() == 0
    [item] = deliveries(server, tenant, webhook["id"])
    log = delivery(server, tenant, webhook["id"], item["id"])["attempt_log"]
    assert {a["error"] for a in log} == {"webhook_url_not_public"} and all("127.0.0.1" in a["detail"] for a in log)
    assert_none_left(server.data_dir)


def test_a_redirect_is_never_followed(backend: str, make_server: Callable[..., LiveServer], receivers: Receivers, listener: Listener) -> None:
    if backend != "sqlite+local":
        pytest.skip("the audit hook sees Python's sockets: sqlite+local only")
    server = make_server(**WEBHOOK_SETTINGS)
    tenant = server.tenant()
    targets_of = {}
    for location in (f"http://127.0.0.1:{listener.port}/inside", "https://169.254.169.254/latest/meta-data/"):
        webhook = register(server, tenant, "http://127.0.0.1:9/not-yet", ["key.revoked"])
        receiver = receivers.start([webhook["secret"]], script=f"302:{location}")
        server.client.patch(f"/webhooks/{webhook['id']}", headers=tenant.headers, json={"url": receiver.url})
        targets_of[webhook["id"]] = receiver
    revoke_a_key(server, tenant)
    worker = Worker(server.context, {DELIVER_WEBHOOK: HANDLERS[DELIVER_WEBHOOK]})
    with _WATCH:
        while count(server, "webhook_attempts") < 2:
            worker.run_one()
    assert listener.connections() == 0
    assert {port for _host, port in _WATCH.connects} == {receiver.port for receiver in targets_of.values()}
    assert {host for host, _port in _WATCH.connects} == {"127.0.0.1"}
    for webhook_id, attempt in first_attempts(server, tenant, list(targets_of)).items():
        assert attempt["response_status"] == 302 and attempt["error"] == "http_status" and "not followed" in attempt["detail"]
        assert [request["status"] for request in targets_of[webhook_id].by_delivery().popitem()[1]] == [302]


def test_the_connection_is_pinned_to_the_vetted_address(backend: str, make_server: Callable[..., LiveServer], receivers: Receivers) -> None:
    """The name is resolved once, by the check; the connection goes to that address, and the
    name travels only in the Host header."""
    if backend != "sqlite+local":
        pytest.skip("the audit hook sees Python's sockets: sqlite+local only")
    server = make_server(**WEBHOOK_SETTINGS | {"webhook_allowed_hosts": "localhost"})
    tenant = server.tenant()
    webhook = register(server, tenant, "http://localhost:9/not-yet", ["key.revoked"])
    receiver = receivers.start([webhook["secret"]])
    server.client.patch(f"/webhooks/{webhook['id']}", headers=tenant.headers, json={"url": f"http://localhost:{receiver.port}/hook"})
    revoke_a_key(server, tenant)
    worker = Worker(server.context, {DELIVER_WEBHOOK: HANDLERS[DELIVER_WEBHOOK]})
    with _WATCH:
        while count(server, "webhook_attempts") < 1:
            worker.run_one()
    by_name = [host for host, _port in _WATCH.lookups if targets._as_address(host) is None]
    assert by_name == ["localhost"]  # one resolution of the name: ours
    assert _WATCH.connects == [("127.0.0.1", receiver.port)]
    [request] = receiver.arrivals()
    assert request["host"] == f"localhost:{receiver.port}" and request["verified"] == [True]


# TLS: the certificate is checked against the name, sent as SNI, while the connection goes to the address.


def _certificates(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for `name` signed by it: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.timezone.utc)

    def build(subject: str, issuer: x509.Name | None, issuer_key: Any, key: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("patientpdf test CA", None, ca_key, ca_key, ca=True)
    leaf = build(name, ca.subject, ca_key, leaf_key, ca=False)
    paths = directory / f"ca-{name}.pem", directory / f"cert-{name}.pem", directory / f"key-{name}.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


@pytest.mark.parametrize(("certified", "outcome"), [("localhost", None), ("other.test", "tls_failed")])
def test_https_sends_the_name_as_sni_and_checks_the_certificate_against_it(
    receivers: Receivers, tmp_path: Path, certified: str, outcome: str | None
) -> None:
    ca, cert, key = _certificates(tmp_path, certified)
    secret = signing.new_secret()
    receiver = receivers.start([secret], tls=(cert, key))
    url = targets.parse_url(f"https://localhost:{receiver.port}/hook", targets.AllowedHosts.parse("localhost"))
    addresses = targets.vet(url)
    body = b'{"type":"webhook.ping","timestamp":"2030-01-01T00:00:00.000Z","data":{}}'
    headers = signing.headers([secret], "msg_test", int(dt.datetime.now(dt.timezone.utc).timestamp()), body)
    result = sender.post(url, addresses, body, headers, 5, 1024, tls=ssl.create_default_context(cafile=str(ca)))
    assert result.error == outcome, result
    if outcome is None:
        [request] = receiver.arrivals()
        assert request["sni"] == "localhost" and request["host"] == f"localhost:{receiver.port}" and request["verified"] == [True]
    else:
        assert receiver.arrivals() == []  # the handshake failed: nothing was sent
