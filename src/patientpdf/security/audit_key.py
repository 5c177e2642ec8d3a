"""The key of the audit trail's hash chain, derived from the server secret."""

from __future__ import annotations

import hashlib
import hmac


def chain_key(server_secret: bytes) -> bytes:
    return hmac.new(server_secret, b"patientpdf audit chain v1", hashlib.sha256).digest()
