"""`patientpdf patients`."""

from __future__ import annotations

from datetime import date

import click

from patientpdf.cli.common import emit, json_option, open_context


@click.group()
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
        row = create_patient(open_context(), account_id, {"name": name, "dob": dob, "sex": sex, "additional_variables": {}})
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    payload = {key: row[key] for key in ("id", "name", "dob", "sex", "additional_variables")}
    emit(as_json, payload, f"patient {row['id']}: {row['name']}")
