"""`patientpdf storage`: check the stored bytes against the rows, repair, move them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from patientpdf.cli.common import emit, json_option, open_context


@click.group()
def storage() -> None:
    """Stored bytes: check them, repair them, move them."""


@contextmanager
def _storage_reachable() -> Iterator[None]:
    from patientpdf.storage import StorageError

    try:
        yield
    except StorageError as exc:
        raise click.ClickException(f"the storage cannot be read ({exc}); check PATIENTPDF_STORAGE_URL and the store, then run again") from None


def _item_text(item: Any) -> str:
    if isinstance(item, dict):  # an abandoned multipart upload
        return f"{item['key']} (started {item['initiated']:%Y-%m-%dT%H:%M:%SZ})"
    return str(item)


@storage.command("check")
@click.option("--no-hash", is_flag=True, help="Compare sizes only (skip reading every blob)")
@json_option
def storage_check(no_hash: bool, as_json: bool) -> None:
    """Every row has its bytes (size, SHA-256) and download headers; list bytes without a row
    and abandoned multipart uploads. Exit 1 on any finding."""
    from patientpdf.services.storage_ops import FINDINGS, check_storage

    with _storage_reachable():
        report = check_storage(open_context(), verify_hash=not no_hash)
    findings = {name: report[name] for name in FINDINGS if report[name]}
    text = f"checked {report['checked']} PDFs: " + ("all present and intact" if report["ok"] else "")
    text += "; ".join(f"{name}: {', '.join(map(_item_text, items))}" for name, items in findings.items())
    emit(as_json, report, text)
    if not report["ok"]:
        repairable = " (`patientpdf storage repair` fixes metadata_missing and abandoned_uploads)" if {"metadata_missing", "abandoned_uploads"} & set(findings) else ""
        click.echo(f"storage check found problems: {', '.join(f'{len(v)} {k}' for k, v in findings.items())}{repairable}", err=True)
        sys.exit(1)


@storage.command("repair")
@json_option
def storage_repair(as_json: bool) -> None:
    """Rewrite the download headers of objects stored without them (verified by SHA-256) and
    abort abandoned multipart uploads. Missing, damaged or extra blobs are left to you."""
    from patientpdf.services.storage_ops import repair_storage

    with _storage_reachable():
        report = repair_storage(open_context())
    lines = [f"{item['id']}: headers {item['result']}" + (f" ({item['reason']})" if "reason" in item else "") for item in report["metadata"]]
    lines += [f"{item['key']}: multipart upload {item['result']}" + (f" ({item['reason']})" if "reason" in item else "") for item in report["abandoned_uploads"]]
    emit(as_json, report, "\n".join(lines) or "nothing to repair")
    if not report["ok"]:
        failed = sum(item["result"] == "failed" for item in report["metadata"] + report["abandoned_uploads"])
        click.echo(f"{failed} repairs failed; `patientpdf storage check` shows what is left", err=True)
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
