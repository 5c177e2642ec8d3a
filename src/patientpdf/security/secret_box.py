"""Secrets we must be able to read back (webhook signing secrets), sealed at rest.

AES-256-GCM with a key derived from the server secret, bound to what the secret belongs to
(`context`, e.g. the account): a copy of the database alone does not let anyone sign
deliveries, and a sealed value moved to another account does not open. Changing
PATIENTPDF_SECRET_KEY makes the sealed values unreadable (the endpoints need new secrets).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1."
_NONCE_BYTES = 12


class SealedSecretUnreadable(Exception):
    """The value was sealed under another server secret or for another owner, or altered."""


class SecretBox:
    def __init__(self, server_secret: bytes) -> None:
        key = hmac.new(server_secret, b"patientpdf sealed secrets v1", hashlib.sha256).digest()
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return _VERSION + base64.urlsafe_b64encode(sealed).decode()

    def open(self, sealed: str, context: str) -> str:
        if not sealed.startswith(_VERSION):
            raise SealedSecretUnreadable("unknown sealing version")
        raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
        try:
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode()).decode()
        except InvalidTag as exc:
            raise SealedSecretUnreadable("sealed under another server secret, for another owner, or altered") from exc
