"""Errors, keyed on the server's stable `code` (then on the HTTP status for codes this client
does not know yet). Every error carries `status`, `code`, `detail` and the `request_id` to
quote when you ask the service's operators.

PatientPdfError
 ├── ConnectionFailed          no answer after every retry (status None)
 ├── UnexpectedResponse        an answer that is not the API's (a proxy's HTML page, say)
 ├── DownloadCorrupted         the bytes received do not have the PDF's SHA-256
 ├── BadRequest (400)
 │    ├── InvalidPdf           not_a_pdf, pdf_truncated, invalid_pdf, pdf_encrypted, pdf_no_pages, empty_file, pdf_active_content
 │    ├── InvalidFilename      missing_filename, invalid_filename, filename_too_long
 │    ├── DigestMismatch       digest_mismatch: the file changed on its way
 │    └── InvalidCursor        bad_cursor
 ├── AuthenticationError (401) api_key_missing, api_key_invalid, api_key_revoked, api_key_expired
 ├── PermissionDenied (403)    patient_forbidden, insufficient_scope, link_expired, link_invalid
 ├── NotFound (404)            patient_not_found, pdf_not_found, key_not_found
 ├── RequestTimeout (408)      retried
 ├── Conflict (409)
 │    └── IdempotencyKeyInProgress   retried
 ├── FileTooLarge (413)
 ├── RangeNotSatisfiable (416)
 ├── Unprocessable (422)
 │    ├── ValidationError      validation_error
 │    └── IdempotencyKeyReused idempotency_key_reused
 ├── RateLimited (429)         retried after Retry-After
 ├── ServerError (500)
 ├── Unavailable (503)         database_unavailable, storage_unavailable; retried after Retry-After
 └── StorageFull (507)
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class PatientPdfError(Exception):
    """Base of every error this client raises."""

    status: int | None = None
    default_code = "error"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.code = code or self.default_code
        self.request_id = request_id
        self.retry_after = retry_after
        self.headers = headers or {}

    def __str__(self) -> str:
        where = f" (request id {self.request_id})" if self.request_id else ""
        status = f"{self.status} " if self.status else ""
        return f"{status}{self.code}: {self.detail}{where}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, request_id={self.request_id!r})"


class ConnectionFailed(PatientPdfError):
    default_code = "connection_failed"


class UnexpectedResponse(PatientPdfError):
    default_code = "unexpected_response"


class DownloadCorrupted(PatientPdfError):
    default_code = "download_corrupted"


class BadRequest(PatientPdfError):
    status = 400
    default_code = "bad_request"


class InvalidPdf(BadRequest):
    default_code = "invalid_pdf"


class InvalidFilename(BadRequest):
    default_code = "invalid_filename"


class DigestMismatch(BadRequest):
    default_code = "digest_mismatch"


class InvalidCursor(BadRequest):
    default_code = "bad_cursor"


class AuthenticationError(PatientPdfError):
    status = 401
    default_code = "authentication_required"


class PermissionDenied(PatientPdfError):
    status = 403
    default_code = "forbidden"


class NotFound(PatientPdfError):
    status = 404
    default_code = "not_found"


class RequestTimeout(PatientPdfError):
    status = 408
    default_code = "request_timeout"


class Conflict(PatientPdfError):
    status = 409
    default_code = "conflict"


class IdempotencyKeyInProgress(Conflict):
    default_code = "idempotency_key_in_progress"


class FileTooLarge(PatientPdfError):
    status = 413
    default_code = "file_too_large"


class RangeNotSatisfiable(PatientPdfError):
    status = 416
    default_code = "range_not_satisfiable"


class Unprocessable(PatientPdfError):
    status = 422
    default_code = "unprocessable"


class ValidationError(Unprocessable):
    default_code = "validation_error"


class IdempotencyKeyReused(Unprocessable):
    default_code = "idempotency_key_reused"


class RateLimited(PatientPdfError):
    status = 429
    default_code = "rate_limited"


class ServerError(PatientPdfError):
    status = 500
    default_code = "internal_error"


class Unavailable(PatientPdfError):
    status = 503
    default_code = "service_unavailable"


class StorageFull(PatientPdfError):
    status = 507
    default_code = "storage_full"


BY_CODE: dict[str, type[PatientPdfError]] = {
    **dict.fromkeys(
        ("not_a_pdf", "pdf_truncated", "invalid_pdf", "pdf_encrypted", "pdf_no_pages", "empty_file", "pdf_active_content"), InvalidPdf
    ),
    **dict.fromkeys(("missing_filename", "invalid_filename", "filename_too_long"), InvalidFilename),
    "digest_mismatch": DigestMismatch,
    "bad_cursor": InvalidCursor,
    "idempotency_key_in_progress": IdempotencyKeyInProgress,
    "idempotency_key_reused": IdempotencyKeyReused,
    "validation_error": ValidationError,
}

BY_STATUS: dict[int, type[PatientPdfError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    408: RequestTimeout,
    409: Conflict,
    413: FileTooLarge,
    416: RangeNotSatisfiable,
    422: Unprocessable,
    429: RateLimited,
    500: ServerError,
    503: Unavailable,
    507: StorageFull,
}


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def error_from_response(response: httpx.Response) -> PatientPdfError:
    """The exception for an error response (its body must have been read)."""
    body: Any = None
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        pass
    headers = {name.lower(): value for name, value in response.headers.items()}
    common: dict[str, Any] = {
        "status": response.status_code,
        "request_id": response.headers.get("x-request-id"),
        "retry_after": retry_after_seconds(response.headers.get("retry-after")),
        "headers": headers,
    }
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        # A proxy's own page: the status still tells whether waiting helps (retries look at it).
        transient = response.status_code >= 500 or response.status_code in (408, 429)
        kind = BY_STATUS.get(response.status_code, UnexpectedResponse) if transient else UnexpectedResponse
        text = response.text[:200] if response.content else ""
        return kind(f"HTTP {response.status_code} without the API's error body: {text!r}", **common)
    code = body["code"]
    detail = str(body.get("detail", ""))
    kind = BY_CODE.get(code) or BY_STATUS.get(response.status_code) or (ServerError if response.status_code >= 500 else PatientPdfError)
    return kind(detail, code=code, **common)
