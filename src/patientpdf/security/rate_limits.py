"""Rate limits on failed authentication (per client address) and on requests (per API key).

The `limits` library keeps the counters, in this process (`memory://`) or in Redis
(`redis://…`) so that every API process counts together; every counter's name starts with
the deployment's prefix, so deployments sharing one Redis count apart. Moving windows: no
burst is allowed at a window's edge. If the counter store is down, requests pass (and a
warning is logged): the limits protect availability, so they must not take it away.

The per-address limit counts failures only and refuses only failures: one client address
(a NAT, an integration engine) may carry many accounts' keys, and a bad one among them must
not lock the others out.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)


class RateLimits:
    def __init__(self, storage_uri: str, failed_auth_limit: str, key_rate_limit: str | None, prefix: str = "patientpdf") -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._prefix = prefix
        self.failed_auth = parse(failed_auth_limit)
        self.per_key = parse(key_rate_limit) if key_rate_limit else None

    def _retry_after(self, item: RateLimitItem, *identifiers: str) -> int:
        reset_at = self._limiter.get_window_stats(item, self._prefix, *identifiers).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def _hit(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Count one event; seconds to wait if it is over the limit (then it is not counted)."""
        if self._limiter.hit(item, self._prefix, *identifiers):
            return None
        return self._retry_after(item, *identifiers)

    def failed_auth_from(self, client: str) -> int | None:
        """Count a failed authentication of `client`; seconds until it may fail again, if it used up the limit."""
        try:
            return self._hit(self.failed_auth, "failed-auth", client)
        except Exception:
            log.warning("rate-limit store unavailable; failed authentication not counted", exc_info=True)
            return None

    def key_request(self, key_prefix: str) -> int | None:
        """Count one request of the key; seconds to wait if it is over its rate."""
        if self.per_key is None:
            return None
        try:
            return self._hit(self.per_key, "key", key_prefix)
        except Exception:
            log.warning("rate-limit store unavailable; key rate not checked", exc_info=True)
            return None
