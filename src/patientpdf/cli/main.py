"""The `patientpdf` command, for operators and for scripts.

Every command takes --json and then prints exactly one JSON object on stdout. Errors go to
stderr with a non-zero exit code.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import date, datetime, timedelta
from typing import Any

import click

from patientpdf.settings import Settings

DEMO_ACCOUNT = "Demo Clinic"
DEMO_PATIENT = "Demo Patient"


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the bad variable
        raise click.ClickException(f"bad configuration: {exc}") from None


def _context() -> Any:
    from patientpdf.context import Context
    from patientpdf.db.migrate import upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    return Context.from_settings(settings)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(_jsonable(payload)) if as_json else text)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """patientpdf: upload, store and serve patients' PDFs."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="Worker processes [default: number of CPUs]")
@json_option
def serve(host: str, port: int, workers: int | None, as_json: bool) -> None:
    """Migrate the database, then serve the API."""
    from patientpdf.db.migrate import upgrade
    from patientpdf.logging import configure_logging
    from patientpdf.security.links import load_or_create_secret
    from patientpdf.server import run

    settings = _settings()
    try:
        settings.check_for_serving()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(settings.log_level)
    upgrade(settings.resolved_database_url)
    load_or_create_secret(settings.secret_key, settings.data_dir)  # once, before workers race for it
    _sweep_spool(settings.spool_dir)
    workers = workers or os.cpu_count() or 1
    _emit(as_json, {"host": host, "port": port, "workers": workers}, f"serving on http://{host}:{port} with {workers} workers")
    sys.stdout.flush()
    run(host, port, workers)


def _sweep_spool(spool_dir: Any, older_than_seconds: int = 3600) -> None:
    """Remove uploads that a crash or kill left half-received. Only old ones: another process
    sharing this data directory may be receiving right now."""
    import time

    cutoff = time.time() - older_than_seconds
    for path in spool_dir.glob("upload-*.part") if spool_dir.exists() else ():
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@json_option
def db_upgrade(as_json: bool) -> None:
    """Apply all migrations (also done by `serve`)."""
    from patientpdf.db.migrate import upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    _emit(as_json, {"status": "ok", "database": _redacted(settings.resolved_database_url)}, "database is up to date")


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@cli.group()
def accounts() -> None:
    """Accounts own patients and API keys."""


@accounts.command("create")
@click.argument("name")
@json_option
def accounts_create(name: str, as_json: bool) -> None:
    from patientpdf.services.accounts import create_account

    row = create_account(_context(), name)
    _emit(as_json, {"id": row["id"], "name": row["name"]}, f"account {row['id']}: {row['name']}")


@cli.group()
def keys() -> None:
    """API keys."""


def _duration(value: str, param_hint: str) -> timedelta:
    """`90s`, `15m`, `12h` or `30d`."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = value[:-1], value[-1:].lower()
    if unit not in units or not number.isdigit():
        raise click.BadParameter("use a number and a unit: 90s, 15m, 12h or 30d", param_hint=param_hint)
    return timedelta(seconds=int(number) * units[unit])


@keys.command("create")
@click.argument("account_id", type=int)
@click.option("--name", default=None, help="A label for the key")
@click.option("--scopes", default="upload,read,admin", show_default=True, help="Comma-separated: upload, read, admin")
@click.option("--expires-in", default=None, help="Expire the key after this long: 90s, 15m, 12h, 30d [default: never]")
@json_option
def keys_create(account_id: int, name: str | None, scopes: str, expires_in: str | None, as_json: bool) -> None:
    """Create a key; the full key is shown this once."""
    from patientpdf.services.accounts import create_key, parse_scopes
    from patientpdf.services.clock import now_utc

    try:
        chosen = parse_scopes(scopes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scopes") from None
    expires_at = now_utc() + _duration(expires_in, "--expires-in") if expires_in else None
    try:
        row = create_key(_context(), account_id, name, chosen, expires_at)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    _emit(as_json, row, f"key {row['id']} ({row['prefix']}...): {row['key']}\nStore it now: it cannot be shown again.")


@keys.command("rotate")
@click.argument("key_id", type=int)
@click.option("--grace", default="24h", show_default=True, help="How long the old key keeps working: 90s, 15m, 12h, 30d")
@json_option
def keys_rotate(key_id: int, grace: str, as_json: bool) -> None:
    """Issue a new key with the same name and scopes; the old key expires after the grace period."""
    from patientpdf.services.accounts import rotate_key

    try:
        row = rotate_key(_context(), key_id, _duration(grace, "--grace"))
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    old = row["replaces"]
    text = (
        f"key {row['id']} ({row['prefix']}...): {row['key']}\nStore it now: it cannot be shown again.\n"
        f"key {old['id']} ({old['prefix']}...) stops working at {_jsonable(old['expires_at'])}"
    )
    _emit(as_json, row, text)


@keys.command("list")
@click.argument("account_id", type=int, required=False)
@json_option
def keys_list(account_id: int | None, as_json: bool) -> None:
    from patientpdf.services.accounts import list_keys

    rows = list_keys(_context(), account_id)
    lines = [
        f"{row['id']}\taccount {row['account_id']}\t{row['prefix']}...\t{'revoked' if row['revoked_at'] else 'active'}"
        f"\t{','.join(row['scopes'])}\texpires {_jsonable(row['expires_at']) or 'never'}\t{row['name'] or ''}"
        for row in rows
    ]
    _emit(as_json, {"keys": rows}, "\n".join(lines) or "no keys")


@keys.command("revoke")
@click.argument("key_id", type=int)
@json_option
def keys_revoke(key_id: int, as_json: bool) -> None:
    from patientpdf.services.accounts import revoke_key

    try:
        row = revoke_key(_context(), key_id)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    _emit(as_json, row, f"key {row['id']} ({row['prefix']}...) revoked")


@cli.group()
def links() -> None:
    """Signed links."""


@links.command("revoke-all")
@json_option
def links_revoke_all(as_json: bool) -> None:
    """Kill every outstanding signed link at once, in every process; new links work as before."""
    from patientpdf.services.links import revoke_all

    revoke_all(_context())
    _emit(as_json, {"status": "ok"}, "every signed link issued so far is now invalid")


@cli.group()
def audit() -> None:
    """The audit trail: export it, verify its hash chain."""


@audit.command("export")
@click.option("--account", "account_id", type=int, default=None, help="Only this account's records")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"]), default=None, help="Records at or after this UTC time")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
def audit_export(account_id: int | None, since: datetime | None, fmt: str) -> None:
    """Write the records to stdout, oldest first."""
    from datetime import timezone

    from patientpdf.services.audit import export_rows, format_rows

    context = _context()
    with context.db.read() as conn:
        rows = export_rows(conn, account_id, since.replace(tzinfo=timezone.utc) if since else None)
        for chunk in format_rows(rows, fmt):
            sys.stdout.write(chunk)


@audit.command("verify")
@json_option
def audit_verify(as_json: bool) -> None:
    """Recompute the hash chain; name every record that was altered or removed. Exit 1 on any."""
    from dataclasses import asdict

    from patientpdf.services.audit import verify

    context = _context()
    with context.db.read() as conn:
        count, problems = verify(conn, context.audit_key)
    text = f"checked {count} audit records: " + ("the chain is intact" if not problems else "")
    text += "; ".join(f"record {problem.seq} {problem.problem}" for problem in problems)
    _emit(as_json, {"checked": count, "ok": not problems, "problems": [asdict(p) for p in problems]}, text)
    if problems:
        sys.exit(1)


@cli.group()
def patients() -> None:
    """Patients."""


@patients.command("create")
@click.argument("account_id", type=int)
@click.option("--name", required=True)
@click.option("--dob", default=None, help="Date of birth, YYYY-MM-DD")
@click.option("--sex", default=None)
@json_option
def patients_create(account_id: int, name: str, dob: str | None, sex: str | None, as_json: bool) -> None:
    from patientpdf.services.patients import create_patient

    if dob is not None:
        try:
            dob = date.fromisoformat(dob).isoformat()
        except ValueError:
            raise click.BadParameter("use YYYY-MM-DD", param_hint="--dob") from None
    try:
        row = create_patient(_context(), account_id, {"name": name, "dob": dob, "sex": sex, "additional_variables": {}})
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    payload = {key: row[key] for key in ("id", "name", "dob", "sex", "additional_variables")}
    _emit(as_json, payload, f"patient {row['id']}: {row['name']}")


@cli.group()
def storage() -> None:
    """Stored bytes: check them, move them."""


@storage.command("check")
@click.option("--no-hash", is_flag=True, help="Compare sizes only (skip reading every blob)")
@json_option
def storage_check(no_hash: bool, as_json: bool) -> None:
    """Every row has its bytes (size, SHA-256); list bytes without a row. Exit 1 on any finding."""
    from patientpdf.services.storage_ops import check_storage

    report = check_storage(_context(), verify_hash=not no_hash)
    findings = {name: report[name] for name in ("missing", "size_mismatch", "hash_mismatch", "unreadable", "extra_blobs") if report[name]}
    text = f"checked {report['checked']} PDFs: " + ("all present and intact" if report["ok"] else "")
    text += "; ".join(f"{name}: {', '.join(items)}" for name, items in findings.items())
    _emit(as_json, report, text)
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

    context = _context()
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
    _emit(as_json, {**counts, "failures": failures, "target": target_url}, f"copied {counts['copied']}, skipped {counts['skipped']}, failed {counts['failed']}")
    if failures:
        click.echo(f"{len(failures)} PDFs were not copied; run the command again to retry them", err=True)
        sys.exit(1)


@cli.command()
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True, help="Where the API will be served")
@json_option
def demo(base_url: str, as_json: bool) -> None:
    """Create (once) a demo account, key and patient, and print them with a curl upload."""
    from patientpdf.db import repositories as repo
    from patientpdf.services.accounts import create_account, create_key
    from patientpdf.services.patients import create_patient

    context = _context()
    key_file = context.settings.data_dir / "demo_key"
    with context.db.read() as conn:
        account = repo.get_account_by_name(conn, DEMO_ACCOUNT)
        patient = repo.list_patients(conn, account["id"])[0] if account else None
    if account is None or patient is None or not key_file.exists():
        account = account or create_account(context, DEMO_ACCOUNT)
        patient = patient or create_patient(
            context, account["id"], {"name": DEMO_PATIENT, "dob": "1970-01-01", "sex": "F", "additional_variables": {}}
        )
        key = create_key(context, account["id"], "demo")["key"]
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
    key = key_file.read_text().strip()
    sample = _demo_pdf(context.settings.data_dir)
    curl = (
        f"curl --request POST --url {base_url}/patients/{patient['id']}/pdf/ "
        f"--header 'X-API-Key: {key}' --form file=@{shlex.quote(str(sample))} --form filename=demo.pdf"
    )
    payload = {"account_id": account["id"], "api_key": key, "patient_id": patient["id"], "sample_pdf": str(sample), "curl": curl}
    text = (
        f"demo account {account['id']}, patient {patient['id']}\n"
        f"API key (demo only; also in {key_file}): {key}\n"
        f"upload a PDF:\n  {curl}"
    )
    _emit(as_json, payload, text)


def _demo_pdf(data_dir: Any) -> Any:
    import pikepdf

    path = data_dir / "demo.pdf"
    if not path.exists():
        pdf = pikepdf.new()
        pdf.add_blank_page(page_size=(612, 792))
        pdf.save(path)
    return path.resolve()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
