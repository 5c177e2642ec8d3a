"""Response and request bodies, and how rows become them."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import RowMapping

from patientpdf.errors import Unauthenticated
if TYPE_CHECKING:
    from patientpdf.services.processing import Extraction, Processing


# The `responses=` of a route: status (or "default") -> OpenAPI response object
Responses = dict[int | str, dict[str, Any]]

def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# Every 401 carries it (errors.Unauthenticated); documented on each 401 response.
WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with (RFC 9110 §15.5.2): the key goes in the X-API-Key header",
        "schema": {"type": "string", "const": Unauthenticated.CHALLENGE},
    }
}


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong and how to fix it.")
    code: str = Field(description="Stable snake_case error code.")


class UploadedPdf(BaseModel):
    id: str = Field(description="The unique identifier of the uploaded PDF", examples=["pdf_01jd3v0k7q9n8m2x4c6b5a3z1y0wv"])
    url: str = Field(description="The URL where the PDF can be accessed (signed, expires; no API key needed)")
    filename: str = Field(description="The name of the uploaded file", examples=["medical_record.pdf"])
    created_at: datetime = Field(description="The timestamp when the file was uploaded", examples=["2024-03-20T10:30:00Z"])
    patient_id: int = Field(description="The ID of the patient the PDF was uploaded for", examples=[123])
    sha256: str = Field(description="SHA-256 of the PDF's bytes, lowercase hex")
    active_content: list[str] = Field(
        description="Active content found in the PDF: javascript, open_action, launch, embedded_files, xfa, rich_media"
    )
    duplicate_of: str | None = Field(
        None, description="On upload: the id of an earlier PDF of this patient with the same bytes, else null"
    )


class ProcessingState(BaseModel):
    status: Literal["queued", "running", "done", "failed"] = Field(description="Where the PDF's processing (text and word boxes) stands")
    pages_ocr: int | None = Field(description="Pages whose words came from OCR (null until extracted)")
    error: str | None = Field(description="Stable code of the failure when status is failed, else null")
    finished_at: datetime | None = Field(description="When processing last finished (done or failed)")


class PdfMetadata(UploadedPdf):
    size: int = Field(description="Size of the PDF in bytes")
    content_type: str = Field(description="Always application/pdf")
    pages: int = Field(description="Number of pages")
    repaired: bool = Field(description="True if the PDF had small cross-reference damage that viewers repair silently")
    processing: ProcessingState


def uploaded_pdf_body(row: RowMapping | dict[str, Any], url: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": url,
        "filename": row["filename"],
        "created_at": rfc3339(row["created_at"]),
        "patient_id": row["patient_id"],
        "sha256": row["sha256"],
        "active_content": row["active_content"],
        "duplicate_of": row.get("duplicate_of"),
    }


def pdf_metadata_body(row: RowMapping | dict[str, Any], url: str, processing: Processing) -> dict[str, Any]:
    body = uploaded_pdf_body(row, url)
    del body["duplicate_of"]  # a fact about one upload, not about the PDF
    return {
        **body,
        "size": row["size"],
        "content_type": row["content_type"],
        "pages": row["page_count"],
        "repaired": row["repaired"],
        "processing": processing_body(processing),
    }


def processing_body(processing: Processing) -> dict[str, Any]:
    extraction = processing.extraction
    return {
        "status": processing.status,
        "pages_ocr": extraction["pages_ocr"] if extraction is not None else None,
        "error": processing.error,
        "finished_at": rfc3339(processing.finished_at) if processing.finished_at else None,
    }


# The document JSON: words as [text, x1, y1, x2, y2, confidence] in PDF points, origin at the
# top-left of the page as displayed; confidence is Tesseract's (0-100) for OCR words, null for
# text-layer words.
class ExtractedPage(BaseModel):
    page: int
    width: float
    height: float
    rotation: int
    source: Literal["text", "ocr", "none"]
    text: str
    words: list[tuple[str, float, float, float, float, float | None]] | None = None


class ExtractionDocument(BaseModel):
    pdf_id: str
    sha256: str
    status: Literal["queued", "running", "done", "failed"]
    error: str | None = Field(None, description="When status is failed: a stable code")
    page_count: int | None = None
    engines: dict[str, str] | None = None
    complete: bool | None = Field(None, description="False when a limit or a bad page stopped part of the extraction (see note)")
    note: str | None = None
    pages: list[ExtractedPage] | None = None


def extraction_body(extraction: Extraction, with_words: bool = True) -> dict[str, Any]:
    """The document JSON; without pages while the PDF waits for its processing or if it failed."""
    pdf, processing = extraction.pdf, extraction.processing
    body: dict[str, Any] = {"pdf_id": pdf["id"], "sha256": pdf["sha256"]}
    found = processing.extraction
    if found is None:
        body["status"] = processing.status
        if processing.status == "failed":
            body["error"] = processing.error
        return body
    pages = []
    for page in extraction.pages:
        item = {name: page[name] for name in ("page", "width", "height", "rotation", "source", "text")}
        if with_words:
            item["words"] = page["words"]
        pages.append(item)
    return body | {
        "status": "done",
        "page_count": found["page_count"],
        "engines": found["engines"],
        "complete": found["complete"],
        "note": found["note"],
        "pages": pages,
    }


class PatientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=500)
    dob: date | None = Field(None, description="Date of birth, YYYY-MM-DD")
    sex: str | None = Field(None, max_length=50)
    additional_variables: dict[str, Any] = Field(default_factory=dict)

    @field_validator("dob", mode="before")
    @classmethod
    def _dob_is_text(cls, value: Any) -> Any:
        # pydantic would read a number as a Unix timestamp: 0 would become 1970-01-01
        if value is not None and not isinstance(value, str):
            raise ValueError("dob must be a date as text, YYYY-MM-DD")
        return value


class Patient(BaseModel):
    id: int
    name: str
    dob: str | None = Field(description="YYYY-MM-DD")
    sex: str | None
    additional_variables: dict[str, Any]
    pdf_file: str | None = Field(description="Signed URL of the patient's newest PDF, or null")
    pdf_json_cache: dict[str, Any] | None = Field(
        description="GET /patients/{id}/: the document JSON of the patient's newest processed PDF, pages' text without "
        "word boxes, plus `extraction_url` (the full document); null until a PDF is processed, and in lists"
    )


def patient_body(row: RowMapping, pdf_url: str | None, cache: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "dob": row["dob"],
        "sex": row["sex"],
        "additional_variables": row["additional_variables"],
        "pdf_file": pdf_url,
        "pdf_json_cache": cache,
    }


def pdf_json_cache_body(extraction: Extraction, base_url: str) -> dict[str, Any]:
    return extraction_body(extraction, with_words=False) | {"extraction_url": f"{base_url}/pdfs/{extraction.pdf['id']}/extraction"}


class Highlight(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float


class SearchResult(BaseModel):
    pdf_id: str
    patient_id: int
    page: int = Field(description="1-based page number")
    width: float = Field(description="The page's width in points, as displayed")
    height: float = Field(description="The page's height in points, as displayed")
    snippet: str = Field(description="HTML: words around the match, escaped, matched words in <mark>…</mark>")
    highlights: list[Highlight] = Field(description="Boxes of the matched words (PDF points, top-left origin)")


class SearchResults(BaseModel):
    results: list[SearchResult]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page of results; null on the last")


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
