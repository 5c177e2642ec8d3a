"""`patientpdf audit`: export the trail, verify its chain."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from patientpdf.cli.common import emit, json_option, open_context


@click.group()
def audit() -> None:
    """The audit trail: export it, verify its hash chain."""


@audit.command("export")
@click.option("--account", "account_id", type=int, default=None, help="Only this account's records")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"]), default=None, help="Records at or after this UTC time")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
def audit_export(account_id: int | None, since: datetime | None, fmt: str) -> None:
    """Write the records to stdout, oldest first."""
    from datetime import timezone

    from patientpdf.services.audit import AuditFilter, export

    selection = AuditFilter(account_id=account_id, since=since.replace(tzinfo=timezone.utc) if since else None)
    for chunk in export(open_context(), selection, fmt):
        sys.stdout.write(chunk)


@audit.command("verify")
@json_option
def audit_verify(as_json: bool) -> None:
    """Recompute the hash chain; name every record that was altered or removed. Exit 1 on any."""
    from dataclasses import asdict

    from patientpdf.services.audit import verify

    context = open_context()
    with context.db.read() as conn:
        count, problems = verify(conn, context.audit_key)
    text = f"checked {count} audit records: " + ("the chain is intact" if not problems else "")
    text += "; ".join(f"record {problem.seq} {problem.problem}" for problem in problems)
    emit(as_json, {"checked": count, "ok": not problems, "problems": [asdict(p) for p in problems]}, text)
    if problems:
        sys.exit(1)
