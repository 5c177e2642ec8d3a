"""The error tree. Every error a client sees is one of these, rendered as {"detail", "code"}.

ApiError
 ├── BadRequest (400)        the request or the file is wrong; the detail says how to fix it
 ├── Unauthenticated (401)   no key, unknown, revoked or expired key; carries WWW-Authenticate
 ├── Forbidden (403)         the resource belongs to another account, or the key lacks the scope
 ├── NotFound (404)
 ├── RequestTimeout (408)    the body came too slowly
 ├── Conflict (409)          the Idempotency-Key's first request is still running
 ├── PreconditionFailed (412) If-Match names no current ETag
 ├── PayloadTooLarge (413)
 ├── RangeNotSatisfiable (416)
 ├── Unprocessable (422)     the Idempotency-Key was used for a different request
 ├── TooManyRequests (429)   a rate limit; carries Retry-After
 ├── InsufficientStorage (507)
 └── Unavailable (503)       a backend is down; carries Retry-After
"""

from __future__ import annotations


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, detail: str, *, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unauthenticated(ApiError):
    status = 401
    code = "authentication_required"
    # RFC 9110 §15.5.2: a 401 names the scheme, here the header that carries the key.
    CHALLENGE = 'ApiKey realm="patientpdf", header="X-API-Key"'

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"WWW-Authenticate": self.CHALLENGE})


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class RequestTimeout(ApiError):
    status = 408
    code = "request_timeout"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class Unprocessable(ApiError):
    status = 422
    code = "unprocessable"


class TooManyRequests(ApiError):
    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, *, code: str | None = None, retry_after: int) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(retry_after)})


class PayloadTooLarge(ApiError):
    status = 413
    code = "file_too_large"


class PreconditionFailed(ApiError):
    status = 412
    code = "precondition_failed"


class RangeNotSatisfiable(ApiError):
    status = 416
    code = "range_not_satisfiable"


class InsufficientStorage(ApiError):
    status = 507
    code = "storage_full"


class Unavailable(ApiError):
    status = 503
    code = "service_unavailable"

    def __init__(self, detail: str, *, code: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(retry_after)})
