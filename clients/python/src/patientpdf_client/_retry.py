"""When to retry and how long to wait: shared by Client and AsyncClient."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from patientpdf_client.errors import PatientPdfError

# Statuses that say "nothing was done, try again later": safe to retry for any request.
RETRY_ALWAYS = frozenset({408, 429, 503})
# A proxy's timeout or bad gateway: the request may have reached the API; only for retry-safe requests.
RETRY_IF_SAFE = frozenset({502, 504})
# The request never left: the connection was not made, or no pooled connection was free.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` tries in all. Waits grow `backoff` × 2ⁿ up to `max_backoff`, with jitter;
    a `Retry-After` from the server is honoured (up to `max_retry_after`) plus a little jitter."""

    max_attempts: int = 8
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        exponential = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        if retry_after is not None:
            # Many clients get the same Retry-After: a little spread keeps them from coming back at once.
            return min(retry_after, self.max_retry_after) + random.uniform(0, min(1.0, exponential))
        return exponential / 2 + random.uniform(0, exponential / 2)

    def after_transport_error(self, error: httpx.TransportError, attempt: int, retry_safe: bool) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if attempt >= self.max_attempts or not (retry_safe or isinstance(error, NOT_SENT)):
            return None
        return self.delay(attempt)

    def after_error(self, error: PatientPdfError, attempt: int, retry_safe: bool) -> float | None:
        if attempt >= self.max_attempts or error.status is None:
            return None
        retry = (
            error.status in RETRY_ALWAYS
            or (error.status == 409 and error.code == "idempotency_key_in_progress")
            or (retry_safe and error.status in RETRY_IF_SAFE)
        )
        return self.delay(attempt, error.retry_after) if retry else None


NO_RETRIES = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class RetryEvent:
    """Told to `on_retry` before each wait: what went wrong and how long the client waits."""

    attempt: int
    wait: float
    status: int | None
    code: str


OnRetry = Callable[[RetryEvent], None]


def transport_code(error: httpx.TransportError) -> str:
    return "connect_failed" if isinstance(error, NOT_SENT) else "connection_lost"
