"""Accounts and their API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, RowMapping

from patientpdf.context import Context
from patientpdf.db import repositories as repo
from patientpdf.errors import Unauthenticated
from patientpdf.security.api_keys import generate_key, key_matches, key_prefix, looks_like_key

# last_used_at is a hint for operators, not an audit record: write it at most once a minute
# per key so that authentication stays a read.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    account_id: int
    key_id: int
    key_prefix: str


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def create_account(ctx: Context, name: str) -> dict[str, Any]:
    with ctx.db.write() as conn:
        return dict(repo.insert_account(conn, name, now_utc()))


def create_key(ctx: Context, account_id: int, name: str | None) -> dict[str, Any]:
    """A new key; the full key is in the result and nowhere else, ever."""
    new = generate_key()
    with ctx.db.write() as conn:
        if repo.get_account(conn, account_id) is None:
            raise LookupError(f"no account with id {account_id}")
        row = repo.insert_api_key(conn, account_id, name, new.prefix, new.hash, now_utc())
    return {**public_key(row), "key": new.key}


def public_key(row: RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "account_id": row["account_id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "created_at": row["created_at"],
        "last_used_at": row["last_used_at"],
        "revoked_at": row["revoked_at"],
    }


def list_keys(ctx: Context, account_id: int | None) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [public_key(row) for row in repo.list_api_keys(conn, account_id)]


def revoke_key(ctx: Context, key_id: int) -> dict[str, Any]:
    with ctx.db.write() as conn:
        row = repo.revoke_api_key(conn, key_id, now_utc())
    if row is None:
        raise LookupError(f"no API key with id {key_id}")
    return public_key(row)


def authenticate(ctx: Context, presented: str | None) -> Principal:
    with ctx.db.read() as conn:
        principal, last_used = principal_for_key(conn, presented)
    record_use(ctx, principal, last_used)
    return principal


def principal_for_key(conn: Connection, presented: str | None) -> tuple[Principal, datetime | None]:
    """The key's principal and when it was last used; 401 for a missing, unknown or revoked key."""
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
    return Principal(account_id=row["account_id"], key_id=row["id"], key_prefix=row["prefix"]), row["last_used_at"]


def record_use(ctx: Context, principal: Principal, last_used: datetime | None) -> None:
    now = now_utc()
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        with ctx.db.write() as conn:
            repo.touch_api_key(conn, principal.key_id, now)
