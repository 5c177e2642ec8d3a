"""Errors as people and scripts want them: an HTML page for a browser's navigation, a fragment
for htmx (placed in the page's alert area), {"detail", "code"} JSON for the drop zone's XHR."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from patientpdf.allowed_methods import allowed_methods
from patientpdf.console.pages import is_htmx, render
from patientpdf.errors import ApiError

log = logging.getLogger("patientpdf.console")

_FRAMEWORK = {
    404: ("not_found", "There is no such page in the console."),
    405: ("method_not_allowed", "This page does not take that method."),
}


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_page(request: Request, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    request.state.outcome_code = code  # for the audit record
    if wants_json(request):
        return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)
    values = {"status": status, "code": code, "detail": detail}
    session = getattr(request.state, "console_session", None)
    if is_htmx(request):
        response = render(request, "_alert.html", values, status_code=status, session=session)
        response.headers["HX-Retarget"] = "#alerts"
        response.headers["HX-Reswap"] = "innerHTML"
    else:
        response = render(request, "error.html", values, status_code=status, session=session)
    response.headers.update(headers or {})
    return response


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_page(request, exc.status, exc.code, exc.detail, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, detail = _FRAMEWORK.get(exc.status_code, ("http_error", str(exc.detail)))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request.app.routes, request.scope))
    return error_page(request, exc.status_code, code, detail, headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{'.'.join(str(part) for part in error.get('loc', ())[1:]) or 'request'}: {error.get('msg', 'invalid')}" for error in exc.errors()]
    return error_page(request, 400, "invalid_request", "The request is not valid: " + "; ".join(problems) + ".")


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id", "")
    log.error("unhandled console error", exc_info=exc, extra={"request_id": request_id})
    return error_page(request, 500, "internal_error", f"Something went wrong on the server (request id {request_id}). Reload the page to see what was done before you retry.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
