"""Typed settings read from PATIENTPDF_* environment variables, validated once at start."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024
ServerName = Literal["uvicorn", "granian"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATIENTPDF_", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Where the SQLite database, the stored PDFs and the generated secret live.")
    database_url: str | None = Field(None, description="SQLAlchemy URL of the metadata database; default: SQLite file `patientpdf.db` in the data directory.")
    storage_url: str | None = Field(None, description="Where PDF bytes are kept: `file:///path` or `s3://bucket/prefix`; default: `file://<data dir>/blobs`.")
    max_upload_bytes: int = Field(100 * MIB, gt=0, description="Largest PDF accepted, in bytes.")
    public_base_url: str | None = Field(None, description="Scheme, host and port used to build absolute links; default: taken from the request.")
    url_ttl_seconds: int = Field(3600, gt=0, description="Lifetime of the signed link returned as `url`, and the longest a caller may ask for with `?url_ttl=`.")
    secret_key: str | None = Field(None, description="Secret that signs links; default: generated once and kept in `<data dir>/secret_key`.")
    server: ServerName = Field("granian", description="HTTP server that `serve` runs the API under: `granian` or `uvicorn` (same app, workers, embedded job worker and start-up work; bench/README.md says why granian).")
    log_level: str = Field("INFO", description="Log level of the logs on stderr.")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="`text`: one readable line per request; `json`: JSON lines; `auto`: text on a terminal, else JSON."
    )
    active_content: Literal["flag", "reject"] = Field("flag", description="PDFs with JavaScript, launch actions, embedded files, XFA or rich media: `flag` stores them and lists what was found in `active_content`; `reject` refuses them (400 `pdf_active_content`).")
    body_idle_timeout_seconds: float = Field(30, gt=0, description="An upload whose body sends nothing for this long is refused (408).")
    body_timeout_seconds: float = Field(900, gt=0, description="An upload whose body takes longer than this in total is refused (408).")
    idempotency_ttl_seconds: int = Field(86400, ge=86400, description="How long an `Idempotency-Key` and its response are kept (at least 24 hours).")
    failed_auth_limit: str = Field("30/minute", description="Failed authentications allowed per client address, e.g. `30/minute`; beyond it further failed attempts from that address get 429 (a valid key is still served).")
    key_rate_limit: str | None = Field(None, description="Requests allowed per API key, e.g. `600/minute`; default: no limit.")
    rate_limit_storage: str = Field("memory://", description="Where rate-limit counters live: `memory://` (per process) or `redis://host:port` (shared by every process).")
    rate_limit_prefix: str = Field("patientpdf", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Namespace of the rate-limit counters; deployments that share one Redis but must count apart use different prefixes.")
    console_idle_timeout_seconds: int = Field(1800, gt=0, description="A console session unused for this long ends; the user signs in again with a new link.")
    console_session_max_seconds: int = Field(43200, gt=0, description="A console session ends this long after sign-in, however active.")
    # S3-compatible storage; each falls back to the standard AWS_* variable when unset.
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, SeaweedFS, Ceph); else AWS_ENDPOINT_URL, else AWS.")
    s3_region: str | None = Field(None, description="S3 region; else AWS_REGION / AWS_DEFAULT_REGION.")
    s3_access_key_id: str | None = Field(None, description="S3 access key; else AWS_ACCESS_KEY_ID (or the AWS credential chain).")
    s3_secret_access_key: str | None = Field(None, description="S3 secret key; else AWS_SECRET_ACCESS_KEY.")
    s3_presign: bool = Field(False, description="Return the store's own presigned URL as `url`, so downloads bypass the API.")
    s3_abandoned_upload_seconds: int = Field(3600, gt=0, description="An S3 multipart upload under our prefix that started longer ago than this is abandoned: `serve` aborts it at start, `storage check` lists it, `storage repair` aborts it. Keep it above the longest upload.")
    # Background jobs (jobs/): processing every stored PDF.
    embedded_worker: bool = Field(True, description="`serve` also runs one job worker process (false: run `patientpdf worker` yourself).")
    worker_poll_seconds: float = Field(1.0, gt=0, description="How often an idle worker looks for due jobs.")
    job_lease_seconds: float = Field(60.0, gt=0, description="How long a claimed job stays a worker's without renewal; the worker renews it every third of this while it works, and a job whose worker stopped is claimable again after it.")
    job_max_attempts: int = Field(5, ge=1, description="Attempts of a job (claims, including ones whose worker died) before it is `failed`.")
    job_retry_base_seconds: float = Field(10.0, gt=0, description="Backoff after a job's first failed attempt; doubled after each further one, with jitter.")
    job_retry_max_seconds: float = Field(3600.0, gt=0, description="The longest backoff between two attempts of a job.")
    # Extraction limits (processing/): every PDF is extracted in a child process bound by these.
    extract_max_pages: int = Field(2000, gt=0, description="A PDF with more pages is not extracted: its processing fails with `too_many_pages`.")
    extract_page_timeout_seconds: float = Field(60.0, gt=0, description="Time allowed per page (rendering and OCR); a page over it is skipped and named in `note`.")
    extract_total_timeout_seconds: float = Field(900.0, gt=0, description="Time allowed per PDF; past it the PDF is `done` with the pages finished, said in `note`.")
    extract_nice: int = Field(19, ge=0, le=19, description="CPU niceness of the extraction child processes (rendering and OCR): at 19, the lowest priority, OCR on a machine shared with the API takes only the CPU that requests leave; 0 on machines that only run workers. The worker itself, which holds database locks, keeps its priority.")
    extract_max_memory_mb: int = Field(1024, ge=64, description="Address space of the extraction child process, in MiB.")
    extract_dpi: int = Field(300, ge=50, le=300, description="Resolution at which pages without a text layer are rendered for OCR.")
    extract_max_pixels: int = Field(25_000_000, ge=1_000_000, description="Pixels of one rendered page at most; the resolution is lowered to stay under it.")
    # Webhooks (webhooks/): signed deliveries of events to the accounts' endpoints.
    webhook_allowed_hosts: str = Field("", description="Comma-separated host names or addresses that may receive webhooks over plain HTTP and at any address, loopback included (development and tests); empty: none.")
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60, description="Time allowed for one delivery attempt in total (connect, send, answer); past it the attempt failed with `timeout`.")
    webhook_max_response_bytes: int = Field(16384, ge=0, description="Bytes of a receiver's answer read at most; the rest is not read.")
    webhook_retry_scale: float = Field(1.0, gt=0, description="Multiplies the retry schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); tests shrink it.")
    webhook_disable_after_seconds: float = Field(5 * 86400.0, gt=0, description="An endpoint whose deliveries have failed for this long without a success is disabled, and says so.")

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
