"""API keys: long random tokens shown once, stored as a SHA-256 hash, looked up by a short prefix.

A key looks like `ppk_<43 url-safe characters>` (256 random bits). Its first 12 characters are
its prefix: stored in clear, shown in listings and logs, and used to find the row; the hash of
the whole key is then compared in constant time. A fast hash is right here because the key is
random, not a password: there is nothing to guess from it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_SCHEME = "ppk_"
PREFIX_LENGTH = 12


@dataclass(frozen=True)
class NewKey:
    key: str
    prefix: str
    hash: str


def generate_key() -> NewKey:
    key = KEY_SCHEME + secrets.token_urlsafe(32)
    return NewKey(key=key, prefix=key_prefix(key), hash=hash_key(key))


def key_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_SCHEME) and len(value) > PREFIX_LENGTH and len(value) <= 200
