"""What a running service holds: settings, database, storage, link signer. Built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from patientpdf.db.engine import Database
from patientpdf.security.links import LinkSigner, load_or_create_secret
from patientpdf.settings import Settings
from patientpdf.storage import BlobStorage, open_storage


@dataclass
class Context:
    settings: Settings
    db: Database
    storage: BlobStorage
    signer: LinkSigner

    @classmethod
    def from_settings(cls, settings: Settings) -> "Context":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.check_for_serving()
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            storage=open_storage(settings.resolved_storage_url, settings),
            signer=LinkSigner(load_or_create_secret(settings.secret_key, settings.data_dir)),
        )

    def close(self) -> None:
        self.db.dispose()
