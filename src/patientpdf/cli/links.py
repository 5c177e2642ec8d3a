"""`patientpdf links`."""

from __future__ import annotations

import click

from patientpdf.cli.common import emit, json_option, open_context


@click.group()
def links() -> None:
    """Signed links."""


@links.command("revoke-all")
@json_option
def links_revoke_all(as_json: bool) -> None:
    """Kill every outstanding signed link at once, in every process; new links work as before."""
    from patientpdf.services.links import revoke_all

    revoke_all(open_context())
    emit(as_json, {"status": "ok"}, "every signed link issued so far is now invalid")
