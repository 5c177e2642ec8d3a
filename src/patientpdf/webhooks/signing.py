"""Standard Webhooks 1.0 signatures.

    secret             whsec_ + base64(32 random bytes); the key is the base64-decoded part
    webhook-id         the delivery's id (msg_…), the same on every attempt
    webhook-timestamp  the attempt's time, integer seconds since the epoch
    webhook-signature  v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>, one per live
                       secret, separated by spaces (two during a rotation's grace period)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest()).decode()


def headers(secrets_in_use: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(secret, msg_id, timestamp, body) for secret in secrets_in_use),
    }
