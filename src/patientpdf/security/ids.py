"""Identifiers: PDF ids that sort by creation time and cannot be guessed; row ids as paths write them."""

from __future__ import annotations

import re
import secrets
import time

# Crockford's base32 in lowercase: its characters sort in the same order as their values.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_BITS = 48  # milliseconds since the epoch, good until the year 10889
_RANDOM_BITS = 96
_LENGTH = (_TIME_BITS + _RANDOM_BITS + 4) // 5  # 29 characters


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """`prefix` + "_" + 29 characters: e.g. pdf_…, and the webhooks' evt_… and msg_…"""
    millis = time.time_ns() // 1_000_000
    value = (millis << _RANDOM_BITS) | secrets.randbits(_RANDOM_BITS)
    return f"{prefix}_" + _encode(value, _LENGTH)


def is_id(value: str, prefix: str) -> bool:
    head = f"{prefix}_"
    return len(value) == len(head) + _LENGTH and value.startswith(head) and all(c in _ALPHABET for c in value[len(head) :])


def new_pdf_id() -> str:
    return new_id("pdf")


def is_pdf_id(value: str) -> bool:
    return is_id(value, "pdf")


# Patients, keys and accounts have INTEGER ids (32-bit in PostgreSQL), counted from 1.
MAX_ROW_ID = 2**31 - 1
_ROW_ID = re.compile(r"[1-9][0-9]{0,9}")


def parse_row_id(raw: str) -> int | None:
    """The id a path segment names, or None if it names none.

    The one rule for ids in paths: canonical decimal, ASCII digits only, no sign, no space, no
    leading zero, no `_`, `.`, exponent or other script's digits, from 1 to MAX_ROW_ID. Python's
    int() and pydantic accept `+1`, ` 1`, `1_0`, `01` and `١` as 1; here they name nothing.
    """
    if not _ROW_ID.fullmatch(raw):
        return None
    value = int(raw)
    return value if value <= MAX_ROW_ID else None
