"""The webhooks' pure parts: which addresses may receive, the vetting of a resolution, the
allowed hosts, our signatures against the reference implementation's, the retry schedule,
and the sealing of secrets at rest."""

from __future__ import annotations

import ipaddress
import socket
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook

from patientpdf.security.secret_box import SealedSecretUnreadable, SecretBox
from patientpdf.settings import Settings
from patientpdf.webhooks import RETRY_SCHEDULE_SECONDS, retry_delay, signing, targets


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.255.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.127.255.254",
        "0.0.0.0", "255.255.255.255", "224.0.0.1", "239.255.255.250", "240.0.0.1", "198.18.0.1", "192.0.2.1",
        "::1", "::", "::ffff:127.0.0.1", "::ffff:8.8.8.8", "64:ff9b::7f00:1", "64:ff9b::808:808", "64:ff9b:1::1",
        "2002:7f00:1::1", "2002:808:808::1", "2001::1", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "fec0::1",
        "::127.0.0.1", "2001:db8::1",
    ],
)  # fmt: skip
def test_addresses_that_may_not_receive(address: str) -> None:
    """IPv4-mapped, NAT64 and 6to4 forms are refused even when the IPv4 inside is public: they
    are ways to reach IPv4 that the checks of IPv4 would not see."""
    assert targets.address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "2a00:1450:4001::200e"])
def test_public_addresses_may(address: str) -> None:
    assert targets.address_refusal(ipaddress.ip_address(address)) is None


def test_a_name_is_refused_if_any_of_its_addresses_is_not_public() -> None:
    url = targets.parse_url("https://hooks.example.com/x", targets.AllowedHosts())
    public, private = ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.8")
    assert targets.vet(url, lambda _host, _port: [public]) == [public]
    with pytest.raises(targets.UrlRefused) as refused:
        targets.vet(url, lambda _host, _port: [public, private])
    assert refused.value.code == "webhook_url_not_public" and "10.0.0.8" in refused.value.detail

    def fails(_host: str, _port: int) -> list[targets.IPAddress]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(targets.UrlRefused) as unresolvable:
        targets.vet(url, fails)
    assert unresolvable.value.code == "webhook_url_unresolvable"
    with pytest.raises(targets.UrlRefused):
        targets.vet(url, lambda _host, _port: [])


def test_allowed_hosts_match_names_and_addresses_as_written() -> None:
    allowed = targets.AllowedHosts.parse(" Receiver.Test. , 127.0.0.1,[::1],  ")
    assert allowed.allows("receiver.test") and allowed.allows("RECEIVER.TEST.") and allowed.allows("127.0.0.1") and allowed.allows("::1")
    assert not allowed.allows("other.test") and not allowed.allows("127.0.0.2") and not allowed.allows("2130706433")
    assert targets.AllowedHosts.parse("") == targets.AllowedHosts()
    url = targets.parse_url("http://receiver.test:8080/a?b=1", allowed)
    assert url.allowed_host and url.host_header == "receiver.test:8080" and url.target == b"/a?b=1"
    assert targets.parse_url("https://[2606:4700::1]/", allowed).host_header == "[2606:4700::1]"


def test_signatures_are_the_reference_implementations() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(signing.secret_key(secret)) == 32
    body = b'{"type":"pdf.uploaded","timestamp":"2030-01-01T00:00:00.000Z","data":{"pdf_id":"pdf_x"}}'
    now = int(datetime.now(timezone.utc).timestamp())
    reference = Webhook(secret).sign("msg_1", datetime.fromtimestamp(now, timezone.utc), body.decode())
    assert signing.signature(secret, "msg_1", now, body) == reference
    other = signing.new_secret()
    headers = signing.headers([secret, other], "msg_1", now, body)
    assert headers["webhook-signature"].split(" ")[0] == reference
    for held in (secret, other):
        assert Webhook(held).verify(body, headers) == {"type": "pdf.uploaded", "timestamp": "2030-01-01T00:00:00.000Z", "data": {"pdf_id": "pdf_x"}}


def test_the_retry_schedule_is_the_specifications_scaled_and_jittered() -> None:
    assert RETRY_SCHEDULE_SECONDS == (5, 300, 1800, 7200, 18000, 36000, 36000)
    settings = Settings(webhook_retry_scale=1.0)
    for attempts, wait in enumerate(RETRY_SCHEDULE_SECONDS, start=1):
        assert retry_delay(settings, attempts, rng=lambda: 0.0) == pytest.approx(wait * 0.9)
        assert retry_delay(settings, attempts, rng=lambda: 1.0) == pytest.approx(wait * 1.1)
    assert retry_delay(Settings(webhook_retry_scale=0.001), 2, rng=lambda: 0.5) == pytest.approx(0.3)


def test_secrets_are_sealed_for_their_account_under_the_server_secret() -> None:
    box = SecretBox(b"s" * 40)
    sealed = box.seal("whsec_abc", "webhook:1")
    assert "whsec_abc" not in sealed and box.open(sealed, "webhook:1") == "whsec_abc"
    assert box.seal("whsec_abc", "webhook:1") != sealed  # a fresh nonce each time
    with pytest.raises(SealedSecretUnreadable):
        box.open(sealed, "webhook:2")
    with pytest.raises(SealedSecretUnreadable):
        SecretBox(b"t" * 40).open(sealed, "webhook:1")
