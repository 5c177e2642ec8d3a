"""The console's sign-in: single-use links, server-side sessions, and their audit records.

An operator makes a link (`patientpdf console login-link`); opening it and confirming starts a
session whose token lives in a cookie and whose SHA-256 lives in `console_sessions`. A session
ends when its user signs out, when an operator revokes it, after
`console_idle_timeout_seconds` without a request, or `console_session_max_seconds` after
sign-in. Every change is audited like a key change: who (the session's prefix, or the CLI),
from where, about which session.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping

from patientpdf.context import Context
from patientpdf.db import repositories as repo
from patientpdf.errors import Forbidden, Unauthenticated
from patientpdf.security.console_tokens import LINK_SCHEME, SESSION_SCHEME, hash_token, looks_like, new_csrf_token, new_token
from patientpdf.services import audit
from patientpdf.services.accounts import CLI, Actor
from patientpdf.services.clock import now_utc

# last_seen_at is what the idle timeout reads; written at most this often per session so that
# a busy page is not a write per request (a tenth of the idle timeout, at most a minute).
MAX_TOUCH_INTERVAL = timedelta(seconds=60)
MAX_LINK_TTL = timedelta(days=1)


@dataclass(frozen=True)
class ConsoleSession:
    id: int
    account_id: int
    prefix: str
    csrf_token: str


@dataclass(frozen=True)
class NewSession:
    token: str  # for the cookie; stored nowhere else
    session: ConsoleSession


class LinkState(enum.Enum):
    VALID = "valid"
    USED = "used"
    EXPIRED = "expired"
    INVALID = "invalid"


_LINK_REFUSALS = {
    LinkState.USED: ("This sign-in link was already used: each link works once. Ask for a new one.", "login_link_used"),
    LinkState.EXPIRED: ("This sign-in link has expired. Ask for a new one.", "login_link_expired"),
    LinkState.INVALID: ("This sign-in link is not valid: it was altered or cut short. Ask for a new one.", "login_link_invalid"),
}


def link_refusal(state: LinkState) -> Forbidden:
    detail, code = _LINK_REFUSALS[state]
    return Forbidden(detail + " An operator makes one with: patientpdf console login-link ACCOUNT_ID", code=code)


def _audit(ctx: Context, conn: Connection, action: str, account_id: int | None, actor: Actor, subject: str | None, outcome: str = "ok") -> None:
    event = audit.AuditEvent(
        action=action,
        outcome=outcome,
        account_id=account_id,
        key_prefix=actor.key_prefix,
        client=actor.client,
        request_id=actor.request_id,
        subject=subject,
    )
    audit.append(conn, ctx.audit_key, event)


def create_login_link(ctx: Context, account_id: int, ttl: timedelta, actor: Actor = CLI) -> tuple[str, RowMapping]:
    """A single-use link token and its row; only the token's hash is stored."""
    if not timedelta(0) < ttl <= MAX_LINK_TTL:
        raise ValueError(f"a sign-in link lasts from 1 second to {int(MAX_LINK_TTL.total_seconds())} seconds (1 day)")
    new = new_token(LINK_SCHEME)
    now = now_utc()
    with ctx.db.write() as conn:
        if repo.get_account(conn, account_id) is None:
            raise LookupError(f"no account with id {account_id}")
        row = repo.insert_login_link(conn, account_id, new.hash, now, now + ttl)
        _audit(ctx, conn, "login_link.create", account_id, actor, f"link {row['id']}")
    return new.token, row


def _link_state(row: RowMapping | None, now: datetime) -> LinkState:
    if row is None:
        return LinkState.INVALID
    if row["used_at"] is not None:
        return LinkState.USED
    if row["expires_at"] <= now:
        return LinkState.EXPIRED
    return LinkState.VALID


def login_link_state(ctx: Context, token: str | None) -> tuple[LinkState, int | None]:
    """What opening the link would do, without using it: (state, account id if known)."""
    if not looks_like(token, LINK_SCHEME):
        return LinkState.INVALID, None
    assert token is not None
    with ctx.db.read() as conn:
        row = repo.find_login_link_for_sign_in(conn, hash_token(token))
    return _link_state(row, now_utc()), row["account_id"] if row else None


def sign_in(ctx: Context, token: str | None, actor: Actor) -> NewSession:
    """Use the link once and start a session; a refused link is audited too, then raised."""
    now = now_utc()
    settings = ctx.settings
    new = new_token(SESSION_SCHEME)
    refused: LinkState | None = None
    with ctx.db.write() as conn:
        row = repo.find_login_link_for_sign_in(conn, hash_token(token)) if looks_like(token, LINK_SCHEME) and token else None
        state = _link_state(row, now)
        if state is LinkState.VALID and row is not None and not repo.use_login_link(conn, row["id"], now):
            state = LinkState.USED  # another request used it between our read and our write
        account_id = row["account_id"] if row else None
        if state is not LinkState.VALID or row is None:
            refused = state
            _audit(ctx, conn, "session.create", account_id, actor, None, f"403 {link_refusal(state).code}")
        else:
            values = {
                "account_id": row["account_id"],
                "prefix": new.prefix,
                "token_hash": new.hash,
                "csrf_token": new_csrf_token(),
                "client": actor.client,
                "created_at": now,
                "last_seen_at": now,
                "expires_at": now + timedelta(seconds=settings.console_session_max_seconds),
            }
            session = repo.insert_console_session(conn, values)
            _audit(ctx, conn, "session.create", row["account_id"], Actor(new.prefix, actor.client, actor.request_id), new.prefix)
    if refused is not None:
        raise link_refusal(refused)
    return NewSession(token=new.token, session=_session(session))


def _session(row: RowMapping) -> ConsoleSession:
    return ConsoleSession(id=row["id"], account_id=row["account_id"], prefix=row["prefix"], csrf_token=row["csrf_token"])


def _timed_out(ctx: Context, row: RowMapping, now: datetime) -> str | None:
    """'expired' past the absolute limit, 'idle' past the idle limit, else None. The limits in
    force now apply, so an operator who shortens them shortens live sessions too."""
    settings = ctx.settings
    deadline = min(row["expires_at"], row["created_at"] + timedelta(seconds=settings.console_session_max_seconds))
    if now >= deadline:
        return "expired"
    if now >= row["last_seen_at"] + timedelta(seconds=settings.console_idle_timeout_seconds):
        return "idle"
    return None


_ENDED = {
    "signed_out": "You signed out of this session.",
    "revoked": "This session was revoked by an operator.",
    "idle": "This session ended after a period without use.",
    "expired": "This session reached its maximum length.",
}


def _sign_in_again(reason: str | None) -> Unauthenticated:
    why = _ENDED.get(reason or "", "You are not signed in.")
    code = {"idle": "session_expired", "expired": "session_expired", "signed_out": "session_ended", "revoked": "session_ended"}
    return Unauthenticated(
        f"{why} Sign in with a new link (an operator makes one with: patientpdf console login-link ACCOUNT_ID).",
        code=code.get(reason or "", "sign_in_required"),
    )


def authenticate(ctx: Context, token: str | None, actor: Actor) -> ConsoleSession:
    """The live session of this cookie; 401 if there is none or it has ended. A session found
    timed out is ended here (audited as session.expire) and refused."""
    if not looks_like(token, SESSION_SCHEME) or token is None:
        raise _sign_in_again(None)
    with ctx.db.read() as conn:
        row = repo.find_console_session_for_authentication(conn, hash_token(token))
    if row is None:
        raise _sign_in_again(None)
    if row["ended_at"] is not None:
        raise _sign_in_again(row["end_reason"])
    now = now_utc()
    reason = _timed_out(ctx, row, now)
    if reason is not None:
        with ctx.db.write() as conn:
            if repo.end_console_session(conn, row["id"], now, reason):
                _audit(ctx, conn, "session.expire", row["account_id"], Actor(row["prefix"], actor.client, actor.request_id), row["prefix"], reason)
        raise _sign_in_again(reason)
    touch_every = min(MAX_TOUCH_INTERVAL, timedelta(seconds=ctx.settings.console_idle_timeout_seconds / 10))
    if now - row["last_seen_at"] >= touch_every:
        with ctx.db.write() as conn:
            repo.touch_console_session(conn, row["id"], now)
    return _session(row)


def sign_out(ctx: Context, session: ConsoleSession, actor: Actor) -> None:
    with ctx.db.write() as conn:
        if repo.end_console_session(conn, session.id, now_utc(), "signed_out"):
            _audit(ctx, conn, "session.end", session.account_id, actor, session.prefix)


def revoke_session(ctx: Context, session_id: int, account_id: int | None = None, actor: Actor = CLI) -> dict[str, Any]:
    """End a session at once, in every process (each request reads the session's row)."""
    with ctx.db.write() as conn:
        row = repo.get_console_session(conn, session_id)
        if row is None or (account_id is not None and row["account_id"] != account_id):
            raise LookupError(f"no console session with id {session_id}")
        if repo.end_console_session(conn, session_id, now_utc(), "revoked"):
            _audit(ctx, conn, "session.revoke", row["account_id"], actor, row["prefix"])
        row = repo.get_console_session(conn, session_id)
        assert row is not None
    return public_session(ctx, row, now_utc())


def public_session(ctx: Context, row: RowMapping, now: datetime) -> dict[str, Any]:
    """A session as listings show it: never its token or CSRF token."""
    state = row["end_reason"] if row["ended_at"] is not None else (_timed_out(ctx, row, now) or "active")
    names = ("id", "account_id", "prefix", "client", "created_at", "last_seen_at", "expires_at", "ended_at", "end_reason")
    return {name: row[name] for name in names} | {"state": state}


def list_sessions(ctx: Context, account_id: int | None, include_ended: bool = False) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        rows = repo.list_console_sessions(conn, account_id, include_ended)
    now = now_utc()
    return [public_session(ctx, row, now) for row in rows]
