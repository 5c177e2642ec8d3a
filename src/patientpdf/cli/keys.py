"""`patientpdf keys`: create, rotate, list, revoke."""

from __future__ import annotations

import click

from patientpdf.cli.common import duration, emit, json_option, jsonable, open_context


@click.group()
def keys() -> None:
    """API keys."""


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
    expires_at = now_utc() + duration(expires_in, "--expires-in") if expires_in else None
    try:
        row = create_key(open_context(), account_id, name, chosen, expires_at)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    emit(as_json, row, f"key {row['id']} ({row['prefix']}...): {row['key']}\nStore it now: it cannot be shown again.")


@keys.command("rotate")
@click.argument("key_id", type=int)
@click.option("--grace", default="24h", show_default=True, help="How long the old key keeps working: 90s, 15m, 12h, 30d")
@json_option
def keys_rotate(key_id: int, grace: str, as_json: bool) -> None:
    """Issue a new key with the same name and scopes; the old key expires after the grace period."""
    from patientpdf.services.accounts import rotate_key

    try:
        row = rotate_key(open_context(), key_id, duration(grace, "--grace"))
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    old = row["replaces"]
    text = (
        f"key {row['id']} ({row['prefix']}...): {row['key']}\nStore it now: it cannot be shown again.\n"
        f"key {old['id']} ({old['prefix']}...) stops working at {jsonable(old['expires_at'])}"
    )
    emit(as_json, row, text)


@keys.command("list")
@click.argument("account_id", type=int, required=False)
@json_option
def keys_list(account_id: int | None, as_json: bool) -> None:
    from patientpdf.services.accounts import list_keys

    rows = list_keys(open_context(), account_id)
    lines = [
        f"{row['id']}\taccount {row['account_id']}\t{row['prefix']}...\t{'revoked' if row['revoked_at'] else 'active'}"
        f"\t{','.join(row['scopes'])}\texpires {jsonable(row['expires_at']) or 'never'}\t{row['name'] or ''}"
        for row in rows
    ]
    emit(as_json, {"keys": rows}, "\n".join(lines) or "no keys")


@keys.command("revoke")
@click.argument("key_id", type=int)
@json_option
def keys_revoke(key_id: int, as_json: bool) -> None:
    from patientpdf.services.accounts import revoke_key

    try:
        row = revoke_key(open_context(), key_id)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    emit(as_json, row, f"key {row['id']} ({row['prefix']}...) revoked")
