"""Accounts and their API keys: scopes, expiry, rotation, revocation, each change audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, RowMapping

from patientpdf import webhooks
from patientpdf.context import Context
from patientpdf.db import repositories as repo
from patientpdf.errors import Forbidden, Unauthenticated
from patientpdf.security.api_keys import generate_key, key_matches, key_prefix, looks_like_key
from patientpdf.services import audit, paging
from patientpdf.services.clock import now_utc
from patientpdf.services.paging import PageRequest

# last_used_at is a hint for operators, not an audit record: write it at most once a minute
# per key so that authentication stays a read.
LAST_USED_RESOLUTION = timedelta(seconds=60)

Scope = Literal["upload", "read", "admin"]
SCOPES: tuple[Scope, ...] = ("upload", "read", "admin")
SCOPE_MEANING = {
    "upload": "upload PDFs or create patients",
    "read": "read patients and PDFs",
    "admin": "delete PDFs or manage keys",
}


@dataclass(frozen=True)
class Principal:
    account_id: int
    key_id: int
    key_prefix: str
    scopes: frozenset[str] = frozenset(SCOPES)

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(
                f"This API key may not {SCOPE_MEANING[scope]}: its scopes are {', '.join(sorted(self.scopes))}. "
                f"Use a key with the '{scope}' scope.",
                code="insufficient_scope",
            )


@dataclass(frozen=True)
class Actor:
    """Who changes keys, for the audit trail: an API key over HTTP, or the operator's CLI."""

    key_prefix: str | None = None
    client: str | None = "cli"
    request_id: str | None = None


CLI = Actor()


def parse_scopes(raw: str | list[Scope] | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = [part.strip() for part in (raw.split(",") if isinstance(raw, str) else raw) if part.strip()]
    unknown = sorted(set(items) - set(SCOPES))
    if unknown or not items:
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}")
    return tuple(scope for scope in SCOPES if scope in items)


def create_account(ctx: Context, name: str) -> dict[str, Any]:
    with ctx.db.write() as conn:
        return dict(repo.insert_account(conn, name, now_utc()))


def _audit_key_change(ctx: Context, conn: Connection, action: str, row: RowMapping, actor: Actor) -> None:
    event = audit.AuditEvent(
        action=action,
        outcome="ok",
        account_id=row["account_id"],
        key_prefix=actor.key_prefix,
        client=actor.client,
        request_id=actor.request_id,
        subject=row["prefix"],
    )
    audit.append(conn, ctx.audit_key, event)


def create_key(
    ctx: Context,
    account_id: int,
    name: str | None,
    scopes: tuple[str, ...] = SCOPES,
    expires_at: datetime | None = None,
    actor: Actor = CLI,
) -> dict[str, Any]:
    """A new key; the full key is in the result and nowhere else, ever."""
    new = generate_key()
    with ctx.db.write() as conn:
        if repo.get_account(conn, account_id) is None:
            raise LookupError(f"no account with id {account_id}")
        row = repo.insert_api_key(conn, account_id, name, new.prefix, new.hash, ",".join(scopes), expires_at, now_utc())
        _audit_key_change(ctx, conn, "key.create", row, actor)
    return {**public_key(row), "key": new.key}


def public_key(row: RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "account_id": row["account_id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "scopes": row["scopes"].split(","),
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        "last_used_at": row["last_used_at"],
        "revoked_at": row["revoked_at"],
    }


def list_keys(ctx: Context, account_id: int | None) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [public_key(row) for row in repo.list_api_keys(conn, account_id)]


def list_keys_page(ctx: Context, account_id: int, page: PageRequest) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the account's keys, oldest first, and the next page's cursor."""
    after = paging.decode_cursor("keys", page.cursor, paging.positive_id) if page.cursor else None
    with ctx.db.read() as conn:
        rows = repo.list_api_keys(conn, account_id, after, page.limit + 1)
    return paging.page_of([public_key(row) for row in rows], page, "keys", lambda row: row["id"])


def _key_in(conn: Connection, key_id: int, account_id: int | None) -> RowMapping:
    row = repo.get_api_key(conn, key_id)
    if row is None or (account_id is not None and row["account_id"] != account_id):
        raise LookupError(f"no API key with id {key_id}")
    return row


def revoke_key(ctx: Context, key_id: int, account_id: int | None = None, actor: Actor = CLI) -> dict[str, Any]:
    """Revoked at once, in every process: authentication reads the key's row on every request.
    Its key.revoked event is written in the same transaction (not again for a revoked key)."""
    with ctx.db.write() as conn:
        before = _key_in(conn, key_id, account_id)
        row = repo.revoke_api_key(conn, key_id, now_utc())
        _audit_key_change(ctx, conn, "key.revoke", row, actor)
        if before["revoked_at"] is None:
            webhooks.emit(conn, row["account_id"], webhooks.KEY_REVOKED, webhooks.key_revoked_data(row), row["revoked_at"])
    return public_key(row)


def rotate_key(
    ctx: Context, key_id: int, grace: timedelta, account_id: int | None = None, actor: Actor = CLI
) -> dict[str, Any]:
    """A new key with the old one's name and scopes; the old key expires after `grace`."""
    new = generate_key()
    now = now_utc()
    with ctx.db.write() as conn:
        old = _key_in(conn, key_id, account_id)
        if old["revoked_at"] is not None:
            raise LookupError(f"API key {key_id} is revoked; create a new key instead")
        old_expiry = now + grace if old["expires_at"] is None else min(old["expires_at"], now + grace)
        old = repo.set_api_key_expiry(conn, key_id, old_expiry)
        row = repo.insert_api_key(conn, old["account_id"], old["name"], new.prefix, new.hash, old["scopes"], None, now)
        _audit_key_change(ctx, conn, "key.rotate", old, actor)
        _audit_key_change(ctx, conn, "key.create", row, actor)
    return {**public_key(row), "key": new.key, "replaces": public_key(old)}


def authenticate(ctx: Context, presented: str | None) -> Principal:
    with ctx.db.read() as conn:
        principal, last_used = principal_for_key(conn, presented)
    record_use(ctx, principal, last_used)
    return principal


def principal_for_key(conn: Connection, presented: str | None) -> tuple[Principal, datetime | None]:
    """The key's principal and when it was last used; 401 for a missing, unknown, revoked or expired key."""
    if not presented:
        raise Unauthenticated(
            "Authentication required: include your API key in the X-API-Key request header.",
            code="api_key_missing",
        )
    invalid = Unauthenticated(
        "The API key in X-API-Key is not valid. Check that it was copied whole, or create a new key.",
        code="api_key_invalid",
    )
    if not looks_like_key(presented):
        raise invalid
    row = repo.find_api_key_by_prefix_for_authentication(conn, key_prefix(presented))
    if row is None or not key_matches(presented, row["key_hash"]):
        raise invalid
    if row["revoked_at"] is not None:
        raise Unauthenticated("This API key has been revoked. Use another key of your account.", code="api_key_revoked")
    if row["expires_at"] is not None and row["expires_at"] <= now_utc():
        raise Unauthenticated(
            "This API key has expired. Use the key that replaced it, or create a new key.", code="api_key_expired"
        )
    principal = Principal(
        account_id=row["account_id"], key_id=row["id"], key_prefix=row["prefix"], scopes=frozenset(row["scopes"].split(","))
    )
    return principal, row["last_used_at"]


def record_use(ctx: Context, principal: Principal, last_used: datetime | None) -> None:
    now = now_utc()
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        with ctx.db.write() as conn:
            repo.touch_api_key(conn, principal.key_id, now)
