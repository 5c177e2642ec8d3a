"""What a running service holds: settings, database, storage, link signer, limiter, secret box. Built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field

from patientpdf.db.engine import Database
from patientpdf.security.audit_key import chain_key
from patientpdf.security.links import LinkSigner, load_or_create_secret
from patientpdf.security.rate_limits import RateLimits
from patientpdf.security.secret_box import SecretBox
from patientpdf.settings import Settings
from patientpdf.storage import BlobStorage, open_storage


@dataclass
class Context:
    settings: Settings
    db: Database
    storage: BlobStorage
    signer: LinkSigner
    audit_key: bytes
    rate_limits: RateLimits
    secret_box: SecretBox  # seals the webhook endpoints' signing secrets
    # (loaded at, salt): this process's copy of the newest link salt, for signing (services/links.py)
    link_salt: tuple[float, str] = field(default=(float("-inf"), ""))

    @classmethod
    def from_settings(cls, settings: Settings) -> "Context":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.check_for_serving()
        secret = load_or_create_secret(settings.secret_key, settings.data_dir)
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            storage=open_storage(settings.resolved_storage_url, settings),
            signer=LinkSigner(secret),
            audit_key=chain_key(secret),
            rate_limits=RateLimits(
                settings.rate_limit_storage, settings.failed_auth_limit, settings.key_rate_limit, settings.rate_limit_prefix
            ),
            secret_box=SecretBox(secret),
        )

    def close(self) -> None:
        self.storage.close()
        self.db.dispose()
