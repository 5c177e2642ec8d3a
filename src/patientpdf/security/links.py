"""Signed, expiring links: HMAC-SHA256 over the PDF id and the expiry time.

The HMAC key is derived from the server secret and a salt kept in the database: replacing the
salt (`patientpdf links revoke-all`) kills every link signed before, in every process at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from enum import Enum
from pathlib import Path


class LinkCheck(Enum):
    VALID = "valid"
    INVALID = "invalid"
    EXPIRED = "expired"


class LinkSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _signature(self, pdf_id: str, expires: int, salt: str) -> str:
        key = hmac.new(self._secret, b"patientpdf links v1:" + salt.encode(), hashlib.sha256).digest()
        mac = hmac.new(key, f"{pdf_id}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def sign(self, pdf_id: str, ttl_seconds: int, salt: str = "", now: float | None = None) -> tuple[int, str]:
        expires = int(now if now is not None else time.time()) + ttl_seconds
        return expires, self._signature(pdf_id, expires, salt)

    def check(self, pdf_id: str, expires: str, signature: str, salt: str = "", now: float | None = None) -> LinkCheck:
        if not expires.isdigit() or len(expires) > 12:
            return LinkCheck.INVALID
        expected = self._signature(pdf_id, int(expires), salt)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogateescape")):
            return LinkCheck.INVALID
        if int(expires) < (now if now is not None else time.time()):
            return LinkCheck.EXPIRED
        return LinkCheck.VALID


def load_or_create_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, else the one kept in the data directory, created once.

    The new secret is written to a private temporary file and hard-linked into place, which
    fails if the file exists: several workers starting together end up agreeing on one secret.
    """
    if configured:
        return configured.encode()
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        candidate = data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    return path.read_text().strip().encode()
