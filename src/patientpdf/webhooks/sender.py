"""One delivery attempt over the network, to an address vetted just before (targets.py).

The connection goes to the vetted IP address itself; the name travels only in the `Host`
header and, over TLS, in the SNI, against which the certificate is verified. So a name that
resolves elsewhere a moment later (DNS rebinding) changes nothing. No redirects are followed
(a 3xx is a failed attempt), no proxy from the environment is used (it would connect by
name), the whole attempt has one deadline, and at most a few KiB of the answer are read.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import certifi
import httpx

from patientpdf.webhooks.targets import IPAddress, WebhookUrl

CONNECT_TIMEOUT_SECONDS = 5.0
USER_AGENT = "patientpdf-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the receiver's answer, if it answered
    error: str | None  # None for a 2xx; else timeout, connection_failed, tls_failed, network_error, http_status
    detail: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.error is None


@lru_cache(maxsize=1)
def default_tls() -> ssl.SSLContext:
    """Certificates checked against certifi's roots, or SSL_CERT_FILE's when it is set (a private CA)."""
    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or certifi.where())


def post(
    url: WebhookUrl,
    addresses: Sequence[IPAddress],
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    max_response_bytes: int,
    tls: ssl.SSLContext | None = None,
) -> Outcome:
    """POST the body to the first address that accepts a connection, within `timeout` in all."""
    started = time.monotonic()
    try:
        status, detail = asyncio.run(
            asyncio.wait_for(_post(url, addresses, body, headers, timeout, max_response_bytes, tls or default_tls()), timeout)
        )
    except (TimeoutError, httpx.TimeoutException):
        return _outcome(started, None, "timeout", f"no complete answer within {timeout:g} s")
    except httpx.ConnectError as exc:
        if _caused_by(exc, ssl.SSLError):
            return _outcome(started, None, "tls_failed", f"TLS failed: {_cause_text(exc)}")
        return _outcome(started, None, "connection_failed", f"could not connect: {_cause_text(exc)}")
    except httpx.TransportError as exc:
        return _outcome(started, None, "network_error", f"{type(exc).__name__}: {_cause_text(exc)}")
    if 200 <= status < 300:
        return _outcome(started, status, None, None)
    return _outcome(started, status, "http_status", detail)


async def _post(
    url: WebhookUrl,
    addresses: Sequence[IPAddress],
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    max_response_bytes: int,
    tls: ssl.SSLContext,
) -> tuple[int, str]:
    limits = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_SECONDS))
    sent_headers = {"Host": url.host_header, "User-Agent": USER_AGENT, "Content-Type": "application/json", **headers}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" and url.literal is None else {}
    async with httpx.AsyncClient(verify=tls, follow_redirects=False, trust_env=False, timeout=limits) as client:
        for index, address in enumerate(addresses):
            pinned = httpx.URL(scheme=url.scheme, host=str(address), port=url.port, raw_path=url.target)
            try:
                async with client.stream("POST", pinned, content=body, headers=sent_headers, extensions=extensions) as response:
                    received = 0
                    async for chunk in response.aiter_raw():
                        received += len(chunk)
                        if received >= max_response_bytes:
                            break  # enough: the answer's status is what counts
                    return response.status_code, _status_detail(response)
            except httpx.ConnectError:
                if index == len(addresses) - 1:
                    raise
    raise httpx.ConnectError("no address to connect to")


def _status_detail(response: httpx.Response) -> str:
    if response.is_redirect:
        return f"answered {response.status_code} (a redirect, not followed: register the final URL)"
    return f"answered {response.status_code}"


def _outcome(started: float, status: int | None, error: str | None, detail: str | None) -> Outcome:
    return Outcome(status, error, detail, int((time.monotonic() - started) * 1000))


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _cause_text(exc: BaseException) -> str:
    root: BaseException = exc
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    return (str(root) or type(root).__name__)[:300]
