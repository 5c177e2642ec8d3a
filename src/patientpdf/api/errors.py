"""Every error leaves as {"detail", "code"}: ours, the framework's 404/405/422, and crashes."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from patientpdf.api.middleware import NO_STORE
from patientpdf.allowed_methods import allowed_methods
from patientpdf.errors import ApiError

log = logging.getLogger("patientpdf.errors")

_FRAMEWORK_CODES = {
    400: ("bad_request", "The request is malformed: send a JSON body with Content-Type: application/json."),
    404: ("not_found", "No such endpoint. See /docs for the API."),
    405: ("method_not_allowed", "This method is not allowed on this path. See /docs for the API."),
}


def error_response(
    request: Request, status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    request.state.outcome_code = code  # for the audit record
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(request, exc.status, exc.code, exc.detail, exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, detail = _FRAMEWORK_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(request, exc.status_code, code, detail, headers)


def _allowed_methods(request: Request) -> list[str]:
    # A mount that was entered moved its prefix into root_path: match from the app's root again.
    scope = {**request.scope, "root_path": request.scope.get("app_root_path", request.scope.get("root_path", ""))}
    return allowed_methods(request.app.routes, scope)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "request"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return error_response(request, 422, "validation_error", "Invalid request: " + "; ".join(problems) + ".")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id", "")
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    detail = f"An internal error occurred (request id {request_id}). Nothing was stored."
    # Starlette sends this one from outside every middleware: it carries its headers itself.
    return error_response(request, 500, "internal_error", detail, dict(NO_STORE))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
