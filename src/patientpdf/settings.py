"""Typed settings read from PATIENTPDF_* environment variables, validated once at start."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATIENTPDF_", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Where the SQLite database, the stored PDFs and the generated secret live.")
    database_url: str | None = Field(None, description="SQLAlchemy URL of the metadata database; default: SQLite file `patientpdf.db` in the data directory.")
    storage_url: str | None = Field(None, description="Where PDF bytes are kept: `file:///path` or `s3://bucket/prefix`; default: `file://<data dir>/blobs`.")
    max_upload_bytes: int = Field(100 * MIB, gt=0, description="Largest PDF accepted, in bytes.")
    public_base_url: str | None = Field(None, description="Scheme, host and port used to build absolute links; default: taken from the request.")
    url_ttl_seconds: int = Field(3600, gt=0, description="Lifetime of the signed link returned as `url`, and the longest a caller may ask for with `?url_ttl=`.")
    secret_key: str | None = Field(None, description="Secret that signs links; default: generated once and kept in `<data dir>/secret_key`.")
    log_level: str = Field("INFO", description="Log level of the JSON logs on stderr.")
    active_content: Literal["flag", "reject"] = Field("flag", description="PDFs with JavaScript, launch actions, embedded files, XFA or rich media: `flag` stores them and lists what was found in `active_content`; `reject` refuses them (400 `pdf_active_content`).")
    body_idle_timeout_seconds: float = Field(30, gt=0, description="An upload whose body sends nothing for this long is refused (408).")
    body_timeout_seconds: float = Field(900, gt=0, description="An upload whose body takes longer than this in total is refused (408).")
    idempotency_ttl_seconds: int = Field(86400, ge=86400, description="How long an `Idempotency-Key` and its response are kept (at least 24 hours).")
    failed_auth_limit: str = Field("30/minute", description="Failed authentications allowed per client address, e.g. `30/minute`; beyond it requests from that address get 429.")
    key_rate_limit: str | None = Field(None, description="Requests allowed per API key, e.g. `600/minute`; default: no limit.")
    rate_limit_storage: str = Field("memory://", description="Where rate-limit counters live: `memory://` (per process) or `redis://host:port` (shared by every process).")
    console_idle_timeout_seconds: int = Field(1800, gt=0, description="A console session unused for this long ends; the user signs in again with a new link.")
    console_session_max_seconds: int = Field(43200, gt=0, description="A console session ends this long after sign-in, however active.")
    # S3-compatible storage; each falls back to the standard AWS_* variable when unset.
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, SeaweedFS, Ceph); else AWS_ENDPOINT_URL, else AWS.")
    s3_region: str | None = Field(None, description="S3 region; else AWS_REGION / AWS_DEFAULT_REGION.")
    s3_access_key_id: str | None = Field(None, description="S3 access key; else AWS_ACCESS_KEY_ID (or the AWS credential chain).")
    s3_secret_access_key: str | None = Field(None, description="S3 secret key; else AWS_SECRET_ACCESS_KEY.")
    s3_presign: bool = Field(False, description="Return the store's own presigned URL as `url`, so downloads bypass the API.")

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def check_for_serving(self) -> None:
        """Refuse configurations that would break several processes sharing one database."""
        if not self.is_sqlite and not self.secret_key:
            raise ValueError(
                "PATIENTPDF_SECRET_KEY is required with a shared database: every API process must sign "
                "links with the same secret. Generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if self.secret_key is not None and len(self.secret_key) < 32:
            raise ValueError("PATIENTPDF_SECRET_KEY must be at least 32 characters long.")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'patientpdf.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or (self.data_dir / "blobs").resolve().as_uri()

    @property
    def spool_dir(self) -> Path:
        """Uploads are received here before they are verified and stored."""
        return self.data_dir / "spool"
