"""Extractions and their pages (account-scoped), kept in step with the search index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select
from sqlalchemy import delete as sql_delete

from patientpdf.db import search_index
from patientpdf.db.schema import pdf_extractions, pdf_pages

_PAGE_COLUMNS_WITHOUT_WORDS = [pdf_pages.c[name] for name in ("page", "width", "height", "rotation", "source", "text")]


def replace(conn: Connection, extraction: dict[str, Any], pages: Sequence[dict[str, Any]], terms: Sequence[Sequence[str]]) -> None:
    """Write a PDF's extraction, its pages and their index entries, replacing any earlier ones
    (so running the job twice leaves one copy). `terms[i]` are the index terms of `pages[i]`."""
    account_id, pdf_id = extraction["account_id"], extraction["pdf_id"]
    delete(conn, account_id, pdf_id)
    conn.execute(insert(pdf_extractions), extraction)
    for page, page_terms in zip(pages, terms, strict=True):
        page_id = conn.execute(insert(pdf_pages).values(**page).returning(pdf_pages.c.id)).scalar_one()
        if page_terms:
            search_index.add_page(conn, page_id, account_id, page_terms)


def delete(conn: Connection, account_id: int, pdf_id: str) -> None:
    search_index.remove_pdf(conn, account_id, pdf_id)
    conn.execute(sql_delete(pdf_pages).where(pdf_pages.c.pdf_id == pdf_id, pdf_pages.c.account_id == account_id))
    conn.execute(sql_delete(pdf_extractions).where(pdf_extractions.c.pdf_id == pdf_id, pdf_extractions.c.account_id == account_id))


def get(conn: Connection, account_id: int, pdf_id: str) -> RowMapping | None:
    query = select(pdf_extractions).where(pdf_extractions.c.pdf_id == pdf_id, pdf_extractions.c.account_id == account_id)
    return conn.execute(query).mappings().first()


def of_pdfs(conn: Connection, account_id: int, pdf_ids: Sequence[str]) -> dict[str, RowMapping]:
    if not pdf_ids:
        return {}
    query = select(pdf_extractions).where(pdf_extractions.c.account_id == account_id, pdf_extractions.c.pdf_id.in_(pdf_ids))
    return {row["pdf_id"]: row for row in conn.execute(query).mappings()}


def pages(conn: Connection, account_id: int, pdf_id: str, with_words: bool) -> Sequence[RowMapping]:
    columns = [*_PAGE_COLUMNS_WITHOUT_WORDS, pdf_pages.c.words] if with_words else _PAGE_COLUMNS_WITHOUT_WORDS
    query = select(*columns).where(pdf_pages.c.pdf_id == pdf_id, pdf_pages.c.account_id == account_id).order_by(pdf_pages.c.page)
    return conn.execute(query).mappings().all()


def newest_of_patient(conn: Connection, account_id: int, patient_id: int) -> RowMapping | None:
    """The extraction of the patient's newest processed PDF (PDF ids sort by upload time)."""
    e = pdf_extractions.c
    newest = select(func.max(e.pdf_id)).where(e.account_id == account_id, e.patient_id == patient_id).scalar_subquery()
    return conn.execute(select(pdf_extractions).where(e.pdf_id == newest, e.account_id == account_id)).mappings().first()
