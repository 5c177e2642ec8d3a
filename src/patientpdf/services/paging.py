"""Cursor paging for the list endpoints.

A cursor is opaque to clients: base64url of `<listing>:<last key of the page>`. The next page
starts after that key in the listing's order, so rows added meanwhile never shift a page.
A cursor from another listing, or one that was altered, is `400 bad_cursor`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from patientpdf.errors import BadRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

Row = TypeVar("Row")


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


FIRST_PAGE = PageRequest()


def encode_cursor(listing: str, last: int | str) -> str:
    return base64.urlsafe_b64encode(f"{listing}:{last}".encode()).decode().rstrip("=")


def decode_cursor(listing: str, cursor: str, parse: Callable[[str], Any]) -> Any:
    """The key the cursor names, checked by `parse` (which raises ValueError on a bad one)."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode("ascii")
        named, _, last = raw.partition(":")
        if named != listing:
            raise ValueError(named)
        return parse(last)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest(
            "The cursor is not one this listing gave out. Use the URL of the Link header's rel=\"next\" as it is, "
            "or leave the cursor out to start from the first page.",
            code="bad_cursor",
        ) from None


def page_of(rows: Sequence[Row], page: PageRequest, listing: str, key: Callable[[Row], int | str]) -> tuple[list[Row], str | None]:
    """Rows fetched with `limit + 1` -> the page and the cursor of the next one (None on the last)."""
    if len(rows) <= page.limit:
        return list(rows), None
    kept = list(rows[: page.limit])
    return kept, encode_cursor(listing, key(kept[-1]))


def positive_id(raw: str) -> int:
    value = int(raw)
    if not raw.isdigit() or value > 2**31 - 1:
        raise ValueError(raw)
    return value
