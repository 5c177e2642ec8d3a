"""`patientpdf serve` and `patientpdf db`: the schema, then the API."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from patientpdf.cli.common import emit, json_option, load_settings, redacted


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="Worker processes [default: number of CPUs]")
@json_option
def serve(host: str, port: int, workers: int | None, as_json: bool) -> None:
    """Migrate the database, then serve the API (and, unless PATIENTPDF_EMBEDDED_WORKER=false, one job worker)."""
    from patientpdf.db.migrate import upgrade
    from patientpdf.logging import configure_logging
    from patientpdf.security.links import load_or_create_secret
    from patientpdf.server import run
    from patientpdf.services.storage_ops import sweep_abandoned_uploads_in_background

    settings = load_settings()
    try:
        settings.check_for_serving()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(settings.log_level, settings.log_format)
    upgrade(settings.resolved_database_url)
    load_or_create_secret(settings.secret_key, settings.data_dir)  # once, before workers race for it
    sweep_spool(settings.spool_dir)
    sweep_abandoned_uploads_in_background(settings)  # multipart uploads a killed process left open
    workers = workers or os.cpu_count() or 1
    embedded = settings.embedded_worker
    text = f"serving on http://{host}:{port} with {workers} {settings.server} workers" + (" and an embedded job worker" if embedded else "")
    emit(as_json, {"host": host, "port": port, "workers": workers, "server": settings.server, "embedded_worker": embedded}, text)
    sys.stdout.flush()
    run(host, port, workers, embedded_worker=embedded, server=settings.server)


def sweep_spool(spool_dir: Path, older_than_seconds: int = 3600) -> None:
    """Remove uploads that a crash or kill left half-received. Only old ones: another process
    sharing this data directory may be receiving right now."""
    import time

    cutoff = time.time() - older_than_seconds
    for path in spool_dir.glob("upload-*.part") if spool_dir.exists() else ():
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@json_option
def db_upgrade(as_json: bool) -> None:
    """Apply all migrations (also done by `serve`)."""
    from patientpdf.db.migrate import upgrade

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    emit(as_json, {"status": "ok", "database": redacted(settings.resolved_database_url)}, "database is up to date")
