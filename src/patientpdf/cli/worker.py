"""`patientpdf worker`: process queued jobs (every stored PDF's extraction)."""

from __future__ import annotations

import sys

import click

from patientpdf.cli.common import emit, json_option, load_settings


@click.command()
@click.option("--processes", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes to run")
@json_option
def worker(processes: int, as_json: bool) -> None:
    """Claim due jobs and run them until SIGTERM (the job in hand is finished first).

    Run any number of these, on any number of machines sharing the database and the storage."""
    from patientpdf.db.migrate import upgrade
    from patientpdf.jobs import run_workers

    settings = load_settings()
    try:
        settings.check_for_serving()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    emit(as_json, {"processes": processes}, f"working with {processes} worker process{'es' if processes > 1 else ''}")
    sys.stdout.flush()
    run_workers(settings, processes)
