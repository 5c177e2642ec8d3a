"""The API's bodies, as the server sends them. Fields the server may add later are kept
(these are plain dicts); fields marked "processing" come from the extraction service and are
absent on servers that do not run it."""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class Patient(TypedDict):
    id: int
    name: str
    dob: str | None
    sex: str | None
    additional_variables: dict[str, Any]
    pdf_file: str | None
    pdf_json_cache: dict[str, Any] | None


class Processing(TypedDict, total=False):
    status: str
    pages_ocr: int | None
    error: str | None
    finished_at: str | None


class _UploadedPdfFields(TypedDict):
    id: str
    url: str
    filename: str
    created_at: str
    patient_id: int
    sha256: str
    active_content: list[str]


class UploadedPdf(_UploadedPdfFields, total=False):
    duplicate_of: str | None
    replayed: bool  # added by the client: the server answered a retry with the first upload's result


class Pdf(_UploadedPdfFields, total=False):
    size: int
    content_type: str
    pages: int
    repaired: bool
    processing: Processing


class ApiKey(TypedDict):
    id: int
    name: str | None
    prefix: str
    scopes: list[str]
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class NewApiKey(ApiKey):
    key: str


class ExtractionPage(TypedDict, total=False):
    page: int
    width: float
    height: float
    rotation: int
    source: Literal["text", "ocr"]
    text: str
    words: list[list[Any]]  # [text, x1, y1, x2, y2, confidence]


class Extraction(TypedDict, total=False):
    pdf_id: str
    sha256: str
    status: str  # "done", "failed", or a pending state (the server answered 202)
    error: str | None
    page_count: int
    engines: dict[str, str]
    pages: list[ExtractionPage]


class Highlight(TypedDict):
    x1: float
    y1: float
    x2: float
    y2: float


class SearchHit(TypedDict):
    pdf_id: str
    patient_id: int
    page: int
    snippet: str
    highlights: list[Highlight]


class SearchPage(TypedDict):
    results: list[SearchHit]
    next_cursor: str | None


class Health(TypedDict, total=False):
    status: str
    checks: dict[str, str]


class Download(TypedDict):
    """What `download_pdf` wrote."""

    pdf_id: str
    size: int
    sha256: str
    path: str | None
    resumed_from: int  # bytes already there from an earlier, interrupted download
