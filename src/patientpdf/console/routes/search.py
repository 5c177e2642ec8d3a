"""Search across the account's PDFs, as GET /search does (services/search.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from patientpdf.console.auth import SignedIn, context_of
from patientpdf.console.pages import render
from patientpdf.console.routes import audited
from patientpdf.services import search as search_service
from patientpdf.services import viewing

router = APIRouter()
PAGE_SIZE = 20


@router.get("/search")
@audited("search")
async def search(
    request: Request,
    session: SignedIn,
    q: Annotated[str, Query(max_length=500)] = "",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    ctx = context_of(request)
    query = q.strip()
    results: list[dict[str, object]] = []
    next_cursor = None
    if query:
        found = await run_in_threadpool(search_service.search, ctx, session.account_id, query, None, PAGE_SIZE, cursor)
        names = await run_in_threadpool(viewing.names_of, ctx, session.account_id, [result["pdf_id"] for result in found.results])
        for result in found.results:
            name = names.get(result["pdf_id"])
            results.append(
                result
                | {
                    "snippet_html": Markup(result["snippet"]),  # matching.snippet escapes the words and marks the matches
                    "filename": name["filename"] if name else "",
                    "patient_name": name["patient_name"] if name else "",
                }
            )
        next_cursor = found.next_cursor
    values = {"nav": "search", "q": query, "results": results, "next_cursor": next_cursor}
    return render(request, "search.html", values, session=session)
