"""Response and request bodies, and how rows become them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import RowMapping

from patientpdf.errors import Unauthenticated


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


class PdfMetadata(UploadedPdf):
    size: int = Field(description="Size of the PDF in bytes")
    content_type: str = Field(description="Always application/pdf")
    pages: int = Field(description="Number of pages")
    repaired: bool = Field(description="True if the PDF had small cross-reference damage that viewers repair silently")


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


def pdf_metadata_body(row: RowMapping | dict[str, Any], url: str) -> dict[str, Any]:
    body = uploaded_pdf_body(row, url)
    del body["duplicate_of"]  # a fact about one upload, not about the PDF
    return {
        **body,
        "size": row["size"],
        "content_type": row["content_type"],
        "pages": row["page_count"],
        "repaired": row["repaired"],
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
    pdf_json_cache: dict[str, Any] | None = Field(description="JSON extracted from the PDF, or null (not yet extracted)")


def patient_body(row: RowMapping, pdf_url: str | None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "dob": row["dob"],
        "sex": row["sex"],
        "additional_variables": row["additional_variables"],
        "pdf_file": pdf_url,
        "pdf_json_cache": None,
    }


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
