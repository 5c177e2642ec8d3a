"""Where a webhook may go (SSRF): checked when an endpoint is registered or changed, and again
before every delivery, after resolution, so a name that later resolves elsewhere is caught.

A URL must be `https://` and every address its host resolves to must be globally reachable:
loopback, private, link-local (169.254.169.254, the cloud metadata service), shared
(100.64.0.0/10), multicast, reserved and unspecified addresses are refused, and so are IPv6
forms that reach IPv4 (IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, NAT64 64:ff9b::/96
and 64:ff9b:1::/48, 6to4 2002::/16, Teredo). Hosts written as integers or in octal or hex
(`2130706433`, `0x7f000001`) are names to us: the system's resolver turns them into
addresses, and those addresses are checked like any other. The connection then goes to the
vetted address itself (sender.py), never to the name again.

`PATIENTPDF_WEBHOOK_ALLOWED_HOSTS` names hosts (as written in the URL) that skip the scheme and
address checks, for development and tests. Nothing else does.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[IPAddress]]

MAX_URL_CHARS = 2000
_SHARED_V4 = ipaddress.ip_network("100.64.0.0/10")
_V6_REACHING_V4 = (
    (ipaddress.ip_network("64:ff9b::/96"), "a NAT64 address"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "a local NAT64 address"),
    (ipaddress.ip_network("::/96"), "an IPv4-compatible address"),
)


class UrlRefused(Exception):
    """The URL may not receive webhooks: `code` is the API's stable error code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def address_refusal(address: IPAddress) -> str | None:
    """Why this address may not receive webhooks, or None if it is a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        for network, what in _V6_REACHING_V4:
            if address in network and not address.is_unspecified and not address.is_loopback:
                return what
        if address.sixtofour is not None:
            return "a 6to4 address"
        if address.teredo is not None:
            return "a Teredo address"
        if address.is_site_local:
            return "a site-local address"
    checks = (
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED_V4, "a shared (carrier-grade NAT) address"),
        (not address.is_global, "not a globally reachable address"),
    )
    for refused, why in checks:
        if refused:
            return why
    return None


def _as_address(host: str) -> IPAddress | None:
    """The host as an address if it is written as one (an IPv6 literal without its brackets)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _normal_name(host: str) -> str:
    return host.strip().lower().rstrip(".")


@dataclass(frozen=True)
class AllowedHosts:
    """Hosts allowed plain HTTP and any address: names compared case-insensitively, addresses as addresses."""

    names: frozenset[str] = frozenset()
    addresses: frozenset[IPAddress] = frozenset()

    @classmethod
    def parse(cls, setting: str) -> AllowedHosts:
        names: set[str] = set()
        addresses: set[IPAddress] = set()
        for entry in (part.strip() for part in setting.split(",")):
            if not entry:
                continue
            address = _as_address(entry)
            if address is not None:
                addresses.add(address)
            else:
                names.add(_normal_name(entry))
        return cls(frozenset(names), frozenset(addresses))

    def allows(self, host: str) -> bool:
        address = _as_address(host)
        return address in self.addresses if address is not None else _normal_name(host) in self.names


@dataclass(frozen=True)
class WebhookUrl:
    url: str  # as registered
    scheme: str  # https, or http for an allowed host
    host: str  # as the URL names it (IDNA-encoded, lower case; an IPv6 address without brackets)
    port: int
    target: bytes  # path and query, as sent
    allowed_host: bool  # named in PATIENTPDF_WEBHOOK_ALLOWED_HOSTS

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def literal(self) -> IPAddress | None:
        return _as_address(self.host)


def parse_url(url: str, allowed: AllowedHosts) -> WebhookUrl:
    """The URL's parts, or UrlRefused: not a URL, credentials in it, or not HTTPS."""
    if len(url) > MAX_URL_CHARS:
        raise UrlRefused("webhook_url_invalid", f"The URL is longer than {MAX_URL_CHARS} characters.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise UrlRefused("webhook_url_invalid", f"This is not a valid URL ({exc}). Send an absolute https:// URL.") from None
    if parsed.scheme not in ("https", "http") or not parsed.host:
        raise UrlRefused("webhook_url_invalid", "The URL must be absolute, https://host/path.")
    if parsed.userinfo:
        raise UrlRefused("webhook_url_invalid", "The URL may not carry a user name or password; authenticate deliveries by their signature.")
    host = parsed.raw_host.decode("ascii").lower()
    allowed_host = allowed.allows(host)
    if parsed.scheme != "https" and not allowed_host:
        raise UrlRefused("webhook_url_not_https", "Webhooks are sent only over HTTPS: use an https:// URL.")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return WebhookUrl(url=url, scheme=parsed.scheme, host=host, port=port, target=parsed.raw_path or b"/", allowed_host=allowed_host)


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system's resolver gives for the name, in its order, without duplicates."""
    found: list[IPAddress] = []
    for _family, _type, _proto, _canonical, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def vet(url: WebhookUrl, resolve: Resolver = system_resolver) -> list[IPAddress]:
    """The addresses to connect to: every one the host resolves to, each a public address
    (any address for an allowed host). UrlRefused if the name does not resolve, or if any of
    its addresses is not public: a name with one private address among public ones is refused."""
    literal = url.literal
    if literal is not None:
        addresses: Sequence[IPAddress] = [literal]
    else:
        try:
            addresses = resolve(url.host, url.port)
        except (OSError, UnicodeError) as exc:
            raise UrlRefused("webhook_url_unresolvable", f"The host {url.host} does not resolve ({exc}).") from None
        if not addresses:
            raise UrlRefused("webhook_url_unresolvable", f"The host {url.host} resolves to no address.")
    if url.allowed_host:
        return list(addresses)
    for address in addresses:
        why = address_refusal(address)
        if why is not None:
            where = f"{url.host} is {why}" if literal is not None else f"{url.host} resolves to {address}, {why}"
            raise UrlRefused("webhook_url_not_public", f"{where}: webhooks are sent only to public addresses.")
    return list(addresses)


def check(url: str, allowed: AllowedHosts, resolve: Resolver = system_resolver) -> WebhookUrl:
    """Registration's check: parse, resolve, vet."""
    parsed = parse_url(url, allowed)
    vet(parsed, resolve)
    return parsed
