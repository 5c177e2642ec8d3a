"""Searching the account's pages: the database finds and ranks, matching.py marks the words."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from patientpdf.context import Context
from patientpdf.db import search_index
from patientpdf.errors import BadRequest
from patientpdf.services import matching
from patientpdf.services.patients import owned_patient_in

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OFFSET = 10_000  # deeper pages of a ranked result are not worth their cost


@dataclass(frozen=True)
class SearchPage:
    results: list[dict[str, Any]]
    next_cursor: str | None


def search(ctx: Context, account_id: int, q: str, patient_id: int | None, limit: int, cursor: str | None) -> SearchPage:
    try:
        query = matching.parse_query(q)
    except matching.BadQuery as exc:
        raise BadRequest(f"Invalid search: {exc}.", code="bad_query") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}.", code="bad_limit")
    fingerprint = _fingerprint(query, patient_id)
    offset = _offset(cursor, fingerprint) if cursor else 0
    with ctx.db.read() as conn:
        if patient_id is not None:
            owned_patient_in(conn, account_id, patient_id)
        rows = search_index.search(conn, account_id, patient_id, query.phrases, limit + 1, offset)
    results = []
    for row in rows[:limit]:
        words = row["words"]
        matched = matching.matched_words(words, query)
        results.append(
            {
                "pdf_id": row["pdf_id"],
                "patient_id": row["patient_id"],
                "page": row["page"],
                "width": row["width"],
                "height": row["height"],
                "snippet": matching.snippet(words, matched),
                "highlights": matching.highlights(words, matched),
            }
        )
    more = len(rows) > limit and offset + limit < MAX_OFFSET
    return SearchPage(results, _cursor(offset + limit, fingerprint) if more else None)


def _fingerprint(query: matching.Query, patient_id: int | None) -> str:
    return hashlib.sha256(json.dumps([query.phrases, patient_id]).encode()).hexdigest()[:16]


def _cursor(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "q": fingerprint}).encode()).decode().rstrip("=")


def _offset(cursor: str, fingerprint: str) -> int:
    """A cursor continues the search it came from, and no other."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, made_for = data["o"], data["q"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise BadRequest("The cursor is not one this search returned; start again without it.", code="bad_cursor") from None
    if not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET or made_for != fingerprint:
        raise BadRequest("The cursor belongs to another search (q and patient_id must stay the same).", code="bad_cursor")
    return offset
