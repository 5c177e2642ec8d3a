"""API keys: long random tokens shown once, stored as a SHA-256 hash, looked up by a short prefix.

A key is `ppk_` + 43 random base62 characters (256 bits) + a 6-character checksum: the CRC32
of everything before it, in base62, as GitHub's tokens carry one. After the type prefix there
are only letters and digits, so a double click selects the whole key. The checksum lets the
server (and secret scanners) refuse a mistyped or made-up key before any database work.
Keys issued before this format (`ppk_` + 43 base64url characters, no checksum) are still
recognised and looked up until they are revoked.

A key's first 12 characters are its prefix: stored in clear, shown in listings and logs, and
used to find the row; the hash of the whole key is then compared in constant time. A fast
hash is right here because the key is random, not a password: there is nothing to guess from it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib
from dataclasses import dataclass

KEY_SCHEME = "ppk_"
PREFIX_LENGTH = 12
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
RANDOM_LENGTH = 43  # 43 * log2(62) = 256.1 bits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32: any CRC32 fits
_KEY = re.compile(f"{KEY_SCHEME}[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH}}}")
_LEGACY_KEY = re.compile(f"{KEY_SCHEME}[0-9A-Za-z_-]{{43}}")  # secrets.token_urlsafe(32), issued before


@dataclass(frozen=True)
class NewKey:
    key: str
    prefix: str
    hash: str


def checksum(text: str) -> str:
    """CRC32 of `text` in base62, zero-padded to CHECKSUM_LENGTH characters."""
    value = zlib.crc32(text.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def generate_key() -> NewKey:
    body = KEY_SCHEME + "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    key = body + checksum(body)
    return NewKey(key=key, prefix=key_prefix(key), hash=hash_key(key))


def key_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def looks_like_key(value: str) -> bool:
    """Worth a database lookup: a key of the current format whose checksum holds, or one of the old format."""
    if _KEY.fullmatch(value):
        return value[-CHECKSUM_LENGTH:] == checksum(value[:-CHECKSUM_LENGTH])
    return _LEGACY_KEY.fullmatch(value) is not None
