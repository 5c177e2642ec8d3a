"""Rate limits on failed authentication (per client address) and on requests (per API key).

The `limits` library keeps the counters, in this process (`memory://`) or in Redis
(`redis://…`) so that every API process counts together. Moving windows: no burst is allowed
at a window's edge. If the counter store is down, requests pass (and a warning is logged):
the limits protect availability, so they must not take it away.
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
    def __init__(self, storage_uri: str, failed_auth_limit: str, key_rate_limit: str | None) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self.failed_auth = parse(failed_auth_limit)
        self.per_key = parse(key_rate_limit) if key_rate_limit else None

    def _retry_after(self, item: RateLimitItem, *identifiers: str) -> int:
        reset_at = self._limiter.get_window_stats(item, *identifiers).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def address_blocked(self, client: str) -> int | None:
        """Seconds until `client` may try again, if its failed authentications used up the limit."""
        try:
            if self._limiter.test(self.failed_auth, "failed-auth", client):
                return None
            return self._retry_after(self.failed_auth, "failed-auth", client)
        except Exception:
            log.warning("rate-limit store unavailable; failed-authentication limit not checked", exc_info=True)
            return None

    def note_failed_auth(self, client: str) -> None:
        try:
            self._limiter.hit(self.failed_auth, "failed-auth", client)
        except Exception:
            log.warning("rate-limit store unavailable; failed authentication not counted", exc_info=True)

    def key_request(self, key_prefix: str) -> int | None:
        """Count one request of the key; seconds to wait if it is over its rate."""
        if self.per_key is None:
            return None
        try:
            if self._limiter.hit(self.per_key, "key", key_prefix):
                return None
            return self._retry_after(self.per_key, "key", key_prefix)
        except Exception:
            log.warning("rate-limit store unavailable; key rate not checked", exc_info=True)
            return None
