"""Terms, queries and matches: the one place that decides which words of a page a query hits.

Both databases index the terms made here, and the query's terms are made the same way, so the
database finds exactly the pages on which `matched_words` finds the words to highlight.

A term is a run of letters and digits after folding: case folded, accents removed (NFKD,
combining marks dropped), so "Müller", "MULLER" and "muller" are the same term. Everything
else separates terms: "O'Brien" is the phrase "o brien", "12/03/2024" is "12 03 2024".
A query is words and "quoted phrases"; a page matches if it holds every one of them (a
phrase as consecutive terms, across word boundaries).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_QUERY_CHARS = 500
MAX_QUERY_TERMS = 32
MAX_INDEXED_TERMS = 100_000  # per page; PostgreSQL keeps at most 1 MB of tsvector per row
SNIPPET_WORDS_BEFORE = 8
SNIPPET_WORDS = 30
_TERM = re.compile(r"[^\W_]+")

# A stored word: [text, x1, y1, x2, y2, confidence or None]
Word = Sequence[Any]


def fold(text: str) -> str:
    # casefold first: it can produce combining marks ("İ" -> "i̇") that the next step removes
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.category(char).startswith("M"))


def terms_of(text: str) -> list[str]:
    return _TERM.findall(fold(text))


def page_terms(words: Sequence[Word]) -> list[str]:
    """The terms of a page in reading order, as the search index stores them."""
    terms: list[str] = []
    for word in words:
        terms += terms_of(str(word[0]))
        if len(terms) >= MAX_INDEXED_TERMS:
            return terms[:MAX_INDEXED_TERMS]
    return terms


@dataclass(frozen=True)
class Query:
    phrases: tuple[tuple[str, ...], ...]  # each a word's or a quoted phrase's terms; all must match


class BadQuery(ValueError):
    pass


def parse_query(raw: str) -> Query:
    """Words and "quoted phrases" (an unclosed quote runs to the end)."""
    if len(raw) > MAX_QUERY_CHARS:
        raise BadQuery(f"the query is {len(raw)} characters long; at most {MAX_QUERY_CHARS} are allowed")
    phrases: list[tuple[str, ...]] = []
    for index, part in enumerate(raw.split('"')):
        quoted = index % 2 == 1
        pieces = [part] if quoted else part.split()
        for piece in pieces:
            terms = tuple(terms_of(piece))
            if terms and terms not in phrases:
                phrases.append(terms)
    if not phrases:
        raise BadQuery("the query has no words to search for (letters or digits)")
    if sum(len(phrase) for phrase in phrases) > MAX_QUERY_TERMS:
        raise BadQuery(f"the query has more than {MAX_QUERY_TERMS} words")
    return Query(tuple(phrases))


def matched_words(words: Sequence[Word], query: Query) -> list[int]:
    """Indices of the words that the query's words and phrases hit, in page order."""
    flat: list[tuple[str, int]] = [(term, index) for index, word in enumerate(words) for term in terms_of(str(word[0]))]
    terms = [term for term, _ in flat]
    hit: set[int] = set()
    for phrase in query.phrases:
        size = len(phrase)
        for start in range(len(terms) - size + 1):
            if tuple(terms[start : start + size]) == phrase:
                hit.update(index for _, index in flat[start : start + size])
    return sorted(hit)


def highlights(words: Sequence[Word], matched: Sequence[int]) -> list[dict[str, float]]:
    """The matched words' boxes, in the extraction's units (PDF points, top-left origin)."""
    return [{"x1": words[i][1], "y1": words[i][2], "x2": words[i][3], "y2": words[i][4]} for i in matched]


def snippet(words: Sequence[Word], matched: Sequence[int]) -> str:
    """HTML: the words around the first match, escaped, with matched words in <mark>…</mark>."""
    if not words:
        return ""
    first = matched[0] if matched else 0
    start = max(0, first - SNIPPET_WORDS_BEFORE)
    end = min(len(words), start + SNIPPET_WORDS)
    marked = set(matched)
    parts: list[str] = ["…"] if start > 0 else []
    index = start
    while index < end:
        if index in marked:
            run = index
            while run < end and run in marked:
                run += 1
            parts.append("<mark>" + " ".join(html.escape(str(words[i][0])) for i in range(index, run)) + "</mark>")
            index = run
        else:
            parts.append(html.escape(str(words[index][0])))
            index += 1
    if end < len(words):
        parts.append("…")
    return " ".join(parts)
