"""Python client for the patientpdf API: `Client` (sync), `AsyncClient`, typed bodies, and errors
keyed on the server's stable codes. `ppdf` is its command line."""

from __future__ import annotations

__version__ = "0.1.0"

from patientpdf_client._body import UploadCancelled
from patientpdf_client._retry import NO_RETRIES, RetryEvent, RetryPolicy
from patientpdf_client.aio import AsyncClient
from patientpdf_client.client import Client
from patientpdf_client.errors import (
    AuthenticationError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    DigestMismatch,
    DownloadCorrupted,
    FileTooLarge,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InvalidCursor,
    InvalidFilename,
    InvalidPdf,
    NotFound,
    PatientPdfError,
    PermissionDenied,
    RangeNotSatisfiable,
    RateLimited,
    RequestTimeout,
    ServerError,
    StorageFull,
    Unavailable,
    UnexpectedResponse,
    Unprocessable,
    ValidationError,
)
from patientpdf_client.operations import OPERATIONS

__all__ = [
    "OPERATIONS", "NO_RETRIES", "AsyncClient", "AuthenticationError", "BadRequest", "Client", "Conflict", "ConnectionFailed",
    "DigestMismatch", "DownloadCorrupted", "FileTooLarge", "IdempotencyKeyInProgress", "IdempotencyKeyReused", "InvalidCursor",
    "InvalidFilename", "InvalidPdf", "NotFound", "PatientPdfError", "PermissionDenied", "RangeNotSatisfiable", "RateLimited",
    "RequestTimeout", "RetryEvent", "RetryPolicy", "ServerError", "StorageFull", "Unavailable", "UnexpectedResponse",
    "UploadCancelled", "Unprocessable", "ValidationError",
]  # fmt: skip
