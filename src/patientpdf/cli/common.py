"""What every command shares: settings, the context, the --json output."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from patientpdf.settings import Settings

if TYPE_CHECKING:
    from patientpdf.context import Context


def load_settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the bad variable
        raise click.ClickException(f"bad configuration: {exc}") from None


def open_context() -> Context:
    from patientpdf.context import Context
    from patientpdf.db.migrate import upgrade

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    return Context.from_settings(settings)


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(jsonable(payload)) if as_json else text)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


def duration(value: str, param_hint: str) -> timedelta:
    """`90s`, `15m`, `12h` or `30d`."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = value[:-1], value[-1:].lower()
    if unit not in units or not number.isdigit():
        raise click.BadParameter("use a number and a unit: 90s, 15m, 12h or 30d", param_hint=param_hint)
    return timedelta(seconds=int(number) * units[unit])


def redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
