"""`?limit=` and `?cursor=` on the list endpoints, and the next page in a `Link` header (RFC 8288)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse

from patientpdf.api.deps import base_url, get_context
from patientpdf.api.schemas import ErrorBody, Responses
from patientpdf.services.paging import DEFAULT_LIMIT, MAX_LIMIT, PageRequest


async def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, at most {MAX_LIMIT}")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=200, description='Where the page starts: from the previous page\'s Link rel="next"')
    ] = None,
) -> PageRequest:
    return PageRequest(limit=limit, cursor=cursor)


Page = Annotated[PageRequest, Depends(page_request)]

PAGED: Responses = {
    200: {
        "headers": {
            "Link": {
                "description": 'The next page, `<URL>; rel="next"` (RFC 8288); absent on the last page',
                "schema": {"type": "string"},
            }
        }
    },
    400: {"model": ErrorBody, "description": "The cursor was altered or belongs to another listing (bad_cursor)"},
}


def paged_response(request: Request, body: list[Any], next_cursor: str | None, page: PageRequest) -> JSONResponse:
    """The page as the JSON array it always was; the next one named in `Link`, with the same query."""
    response = JSONResponse(body)
    if next_cursor is not None:
        query = [(name, value) for name, value in request.query_params.multi_items() if name not in ("cursor", "limit")]
        query += [("limit", str(page.limit)), ("cursor", next_cursor)]
        url = f"{base_url(request, get_context(request))}{request.url.path}?{urlencode(query)}"
        response.headers["Link"] = f'<{url}>; rel="next"'
    return response
