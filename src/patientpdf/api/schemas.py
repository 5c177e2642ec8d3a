"""Response and request bodies, and how rows become them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import RowMapping


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong and how to fix it.")
    code: str = Field(description="Stable snake_case error code.")


class UploadedPdf(BaseModel):
    id: str = Field(description="The unique identifier of the uploaded PDF", examples=["pdf_01jd3v0k7q9n8m2x4c6b5a3z1y0wv"])
    url: str = Field(description="The URL where the PDF can be accessed (signed, expires; no API key needed)")
    filename: str = Field(description="The name of the uploaded file", examples=["medical_record.pdf"])
    created_at: datetime = Field(description="The timestamp when the file was uploaded", examples=["2024-03-20T10:30:00Z"])
    patient_id: int = Field(description="The ID of the patient the PDF was uploaded for", examples=[123])


class PdfMetadata(UploadedPdf):
    size: int = Field(description="Size of the PDF in bytes")
    sha256: str = Field(description="SHA-256 of the PDF's bytes, lowercase hex")
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
    }


def pdf_metadata_body(row: RowMapping | dict[str, Any], url: str) -> dict[str, Any]:
    return {
        **uploaded_pdf_body(row, url),
        "size": row["size"],
        "sha256": row["sha256"],
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
