"""Full-text search over the account's processed pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from patientpdf.api.audit import audited
from patientpdf.api.deps import ReadPrincipal, ServiceContext
from patientpdf.api.routes.pdfs import AUTH
from patientpdf.api.schemas import ErrorBody, SearchResults
from patientpdf.security.ids import MAX_ROW_ID
from patientpdf.services import search as search_service

router = APIRouter(tags=["Search"])


@router.get(
    "/search",
    response_model=SearchResults,
    responses=AUTH | {400: {"model": ErrorBody, "description": "Bad query, limit or cursor"}, 404: {"model": ErrorBody}},
    summary="Find pages by their words",
)
@audited("search")
async def search(
    request: Request,
    principal: ReadPrincipal,
    context: ServiceContext,
    q: Annotated[str, Query(description='Words and "quoted phrases"; a page must hold all of them. Case and accents do not matter.')],
    patient_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="Only this patient's PDFs")] = None,
    limit: Annotated[int, Query(description="Results per page, 1-100")] = search_service.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> JSONResponse:
    """The account's pages that match, best first. `snippet` is HTML (the page's words, escaped, matched
    words in `<mark>`); `highlights` are the matched words' boxes, in the extraction's units."""
    request.state.patient_id = patient_id
    found = await run_in_threadpool(search_service.search, context, principal.account_id, q, patient_id, limit, cursor)
    return JSONResponse({"results": found.results, "next_cursor": found.next_cursor})
