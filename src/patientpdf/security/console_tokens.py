"""The console's secrets: single-use sign-in links and session cookies.

Both are 256 random bits behind a scheme prefix (`ppl_` for a link, `pps_` for a session),
stored only as their SHA-256, as API keys are (security/api_keys.py). A session's first 12
characters name it in listings and the audit trail, as a key's prefix does.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

LINK_SCHEME = "ppl_"
SESSION_SCHEME = "pps_"
PREFIX_LENGTH = 12
MAX_TOKEN_LENGTH = 200


@dataclass(frozen=True)
class NewToken:
    token: str
    prefix: str
    hash: str


def new_token(scheme: str) -> NewToken:
    token = scheme + secrets.token_urlsafe(32)
    return NewToken(token=token, prefix=token[:PREFIX_LENGTH], hash=hash_token(token))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def looks_like(token: str | None, scheme: str) -> bool:
    return token is not None and token.startswith(scheme) and PREFIX_LENGTH < len(token) <= MAX_TOKEN_LENGTH


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)
