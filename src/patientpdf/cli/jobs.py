"""`patientpdf jobs`: the background queue, for operators."""

from __future__ import annotations

import click

from patientpdf.cli.common import emit, json_option, open_context


@click.group()
def jobs() -> None:
    """Background jobs: list them, count them, retry one."""


@jobs.command("list")
@click.option("--status", type=click.Choice(["queued", "running", "done", "failed"]), default=None)
@click.option("--kind", default=None, help="e.g. process_pdf")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@json_option
def jobs_list(status: str | None, kind: str | None, limit: int, as_json: bool) -> None:
    """The newest jobs first, with their attempts, lease and last error."""
    from patientpdf.jobs import list_jobs

    rows = list_jobs(open_context(), status, kind, limit)
    lines = [
        f"{row['id']}\t{row['kind']}\t{row['subject'] or ''}\t{row['status']}\tattempt {row['attempts']}/{row['max_attempts']}"
        f"\t{row['error'] or ''}"
        for row in rows
    ]
    emit(as_json, {"jobs": rows}, "\n".join(lines) or "no jobs")


@jobs.command("stats")
@json_option
def jobs_stats(as_json: bool) -> None:
    """Jobs per status and kind; how long the oldest due job has waited."""
    from patientpdf.jobs import stats

    counts = stats(open_context())
    waited = counts["oldest_queued_seconds"]
    text = ", ".join(f"{counts[status]} {status}" for status in ("queued", "running", "done", "failed"))
    if waited is not None:
        text += f"; the oldest queued job is due since {waited:.0f} s"
    emit(as_json, counts, text)


@jobs.command("retry")
@click.argument("job_id", type=int)
@json_option
def jobs_retry(job_id: int, as_json: bool) -> None:
    """Queue a job again from its first attempt (a failed one, typically)."""
    from patientpdf.jobs import retry

    try:
        row = retry(open_context(), job_id)
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    emit(as_json, row, f"job {row['id']} ({row['kind']}) queued again")
