"""The page search index, in the same database and transaction as the pages it indexes.

SQLite: an FTS5 table (`page_search`, rowid = pdf_pages.id), ranked by bm25. PostgreSQL: a
`tsvector` per page with a GIN index, ranked by ts_rank_cd. Both receive terms already folded
by services/matching.py, so neither database's own word rules decide what matches: the FTS5
expression and the tsvector/tsquery are built here from those terms (letters and digits only,
so quoting them is safe), never parsed from the client's text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Connection, RowMapping, text

MAX_POSITION = 16383  # PostgreSQL's largest tsvector position


def add_page(conn: Connection, page_id: int, account_id: int, terms: Sequence[str]) -> None:
    if conn.dialect.name == "postgresql":
        vector = " ".join(f"{_quoted(term)}:{min(position, MAX_POSITION)}" for position, term in enumerate(terms, 1))
        conn.execute(
            text("INSERT INTO page_search (page_id, account_id, terms) VALUES (:id, :account_id, CAST(:terms AS tsvector))"),
            {"id": page_id, "account_id": account_id, "terms": vector},
        )
    else:
        conn.execute(text("INSERT INTO page_search (rowid, terms) VALUES (:id, :terms)"), {"id": page_id, "terms": " ".join(terms)})


def remove_pdf(conn: Connection, account_id: int, pdf_id: str) -> None:
    """The index entries of a PDF's pages (call before the pages themselves go)."""
    key = "page_id" if conn.dialect.name == "postgresql" else "rowid"
    conn.execute(
        text(f"DELETE FROM page_search WHERE {key} IN (SELECT id FROM pdf_pages WHERE pdf_id = :pdf_id AND account_id = :account_id)"),
        {"pdf_id": pdf_id, "account_id": account_id},
    )


def search(
    conn: Connection, account_id: int, patient_id: int | None, phrases: Sequence[Sequence[str]], limit: int, offset: int
) -> Sequence[RowMapping]:
    """The account's pages that hold every phrase, best first: pdf_id, patient_id, page, width,
    height, words."""
    params: dict[str, Any] = {"account_id": account_id, "limit": limit, "offset": offset}
    patient_filter = ""
    if patient_id is not None:
        patient_filter = "AND p.patient_id = :patient_id"
        params["patient_id"] = patient_id
    columns = "p.pdf_id, p.patient_id, p.page, p.width, p.height, p.words"
    if conn.dialect.name == "postgresql":
        params["query"] = " & ".join("(" + " <-> ".join(_quoted(term) for term in phrase) + ")" for phrase in phrases)
        sql = f"""
            SELECT {columns}, ts_rank_cd(s.terms, q.query) AS score
            FROM page_search s CROSS JOIN (SELECT CAST(:query AS tsquery) AS query) q
            JOIN pdf_pages p ON p.id = s.page_id
            WHERE s.account_id = :account_id AND s.terms @@ q.query {patient_filter}
            ORDER BY score DESC, p.pdf_id DESC, p.page
            LIMIT :limit OFFSET :offset
        """
    else:
        params["query"] = " AND ".join('"' + " ".join(phrase) + '"' for phrase in phrases)
        sql = f"""
            SELECT {columns}, bm25(page_search) AS score
            FROM page_search JOIN pdf_pages p ON p.id = page_search.rowid
            WHERE page_search MATCH :query AND p.account_id = :account_id {patient_filter}
            ORDER BY score, p.pdf_id DESC, p.page
            LIMIT :limit OFFSET :offset
        """
    return conn.execute(text(sql).columns(words=JSON), params).mappings().all()


def _quoted(term: str) -> str:
    # terms are letters and digits (services/matching.py); quoting keeps PostgreSQL from reading
    # one as an operator or a weight all the same
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"
