"""Typed settings read from PATIENTPDF_* environment variables, validated once at start."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATIENTPDF_", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Where the SQLite database, the stored PDFs and the generated secret live.")
    database_url: str | None = Field(None, description="SQLAlchemy URL of the metadata database; default: SQLite file `patientpdf.db` in the data directory.")
    storage_url: str | None = Field(None, description="Where PDF bytes are kept; default: `file://<data dir>/blobs`.")
    max_upload_bytes: int = Field(100 * MIB, gt=0, description="Largest PDF accepted, in bytes.")
    public_base_url: str | None = Field(None, description="Scheme, host and port used to build absolute links; default: taken from the request.")
    url_ttl_seconds: int = Field(3600, gt=0, description="Lifetime of the signed link returned as `url`.")
    secret_key: str | None = Field(None, description="Secret that signs links; default: generated once and kept in `<data dir>/secret_key`.")
    log_level: str = Field("INFO", description="Log level of the JSON logs on stderr.")

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

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
