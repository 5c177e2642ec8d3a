"""`patientpdf console`: sign-in links for the web console, and its sessions."""

from __future__ import annotations

from urllib.parse import urlencode

import click

from patientpdf.cli.common import duration, emit, json_option, jsonable, open_context


@click.group()
def console() -> None:
    """The web console (/console/): sign-in links and sessions."""


@console.command("login-link")
@click.argument("account_id", type=int)
@click.option("--ttl", default="10m", show_default=True, help="How long the link can be used: 90s, 15m, 12h (at most 1d)")
@click.option("--base-url", default=None, help="Where the console is served [default: PATIENTPDF_PUBLIC_BASE_URL, else http://127.0.0.1:8000]")
@json_option
def login_link(account_id: int, ttl: str, base_url: str | None, as_json: bool) -> None:
    """Print a single-use sign-in link to the account's console (only its hash is stored)."""
    from patientpdf.services.console_sessions import create_login_link

    context = open_context()
    try:
        token, row = create_login_link(context, account_id, duration(ttl, "--ttl"))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    base = (base_url or context.settings.public_base_url or "http://127.0.0.1:8000").rstrip("/")
    url = f"{base}/console/login?{urlencode({'token': token})}"
    text = f"{url}\nSigns in to account {account_id} once, until {jsonable(row['expires_at'])}."
    emit(as_json, {"url": url, "account_id": account_id, "expires_at": row["expires_at"]}, text)


@console.group("sessions")
def sessions() -> None:
    """Console sessions: list them, revoke one."""


@sessions.command("list")
@click.argument("account_id", type=int, required=False)
@click.option("--all", "include_ended", is_flag=True, help="Include sessions that have ended")
@json_option
def sessions_list(account_id: int | None, include_ended: bool, as_json: bool) -> None:
    """Sessions (all accounts, or one), never their tokens."""
    from patientpdf.services.console_sessions import list_sessions

    rows = list_sessions(open_context(), account_id, include_ended)
    lines = [
        f"{row['id']}\taccount {row['account_id']}\t{row['prefix']}...\t{row['state']}\tfrom {row['client'] or '?'}"
        f"\tsigned in {jsonable(row['created_at'])}\tlast seen {jsonable(row['last_seen_at'])}"
        for row in rows
    ]
    emit(as_json, {"sessions": rows}, "\n".join(lines) or "no sessions")


@sessions.command("revoke")
@click.argument("session_id", type=int)
@json_option
def sessions_revoke(session_id: int, as_json: bool) -> None:
    """End a session at once; its next request must sign in again."""
    from patientpdf.services.console_sessions import revoke_session

    try:
        row = revoke_session(open_context(), session_id)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    emit(as_json, row, f"session {row['id']} ({row['prefix']}...) {'revoked' if row['end_reason'] == 'revoked' else 'had already ended: ' + str(row['end_reason'])}")
