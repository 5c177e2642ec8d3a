"""`patientpdf storage`: check the stored bytes against the rows, move them."""

from __future__ import annotations

import sys

import click

from patientpdf.cli.common import emit, json_option, open_context


@click.group()
def storage() -> None:
    """Stored bytes: check them, move them."""


@storage.command("check")
@click.option("--no-hash", is_flag=True, help="Compare sizes only (skip reading every blob)")
@json_option
def storage_check(no_hash: bool, as_json: bool) -> None:
    """Every row has its bytes (size, SHA-256); list bytes without a row. Exit 1 on any finding."""
    from patientpdf.services.storage_ops import check_storage

    report = check_storage(open_context(), verify_hash=not no_hash)
    findings = {name: report[name] for name in ("missing", "size_mismatch", "hash_mismatch", "unreadable", "extra_blobs") if report[name]}
    text = f"checked {report['checked']} PDFs: " + ("all present and intact" if report["ok"] else "")
    text += "; ".join(f"{name}: {', '.join(items)}" for name, items in findings.items())
    emit(as_json, report, text)
    if not report["ok"]:
        click.echo(f"storage check found problems: {', '.join(f'{len(v)} {k}' for k, v in findings.items())}", err=True)
        sys.exit(1)


@storage.command("migrate")
@click.option("--to", "target_url", required=True, help="Target storage URL: file:///path or s3://bucket/prefix")
@json_option
def storage_migrate(target_url: str, as_json: bool) -> None:
    """Copy every PDF to another backend, verified by SHA-256; safe to run again to resume."""
    from patientpdf.services.storage_ops import migrate_storage
    from patientpdf.storage import open_storage

    context = open_context()
    try:
        target = open_storage(target_url, context.settings)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None
    counts = {"copied": 0, "skipped": 0, "failed": 0}
    failures = []
    for event in migrate_storage(context, target):
        counts[event["result"]] += 1
        if event["result"] == "failed":
            failures.append(event)
        if not as_json:
            click.echo(f"{event['id']}: {event['result']}" + (f" ({event['reason']})" if "reason" in event else ""))
    emit(as_json, {**counts, "failures": failures, "target": target_url}, f"copied {counts['copied']}, skipped {counts['skipped']}, failed {counts['failed']}")
    if failures:
        click.echo(f"{len(failures)} PDFs were not copied; run the command again to retry them", err=True)
        sys.exit(1)
