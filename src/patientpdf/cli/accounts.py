"""`patientpdf accounts`."""

from __future__ import annotations

import click

from patientpdf.cli.common import emit, json_option, open_context


@click.group()
def accounts() -> None:
    """Accounts own patients and API keys."""


@accounts.command("create")
@click.argument("name")
@json_option
def accounts_create(name: str, as_json: bool) -> None:
    from patientpdf.services.accounts import create_account

    row = create_account(open_context(), name)
    emit(as_json, {"id": row["id"], "name": row["name"]}, f"account {row['id']}: {row['name']}")
