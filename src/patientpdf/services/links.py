"""Signed links: their lifetime, and revoking all of them at once."""

from __future__ import annotations

import secrets
import time

from patientpdf.context import Context
from patientpdf.db import repositories as repo
from patientpdf.errors import BadRequest
from patientpdf.services.clock import now_utc

# Links are signed with this process's copy of the newest salt, refreshed this often. Links
# are always checked against the database's newest salt, so a revocation is immediate there;
# a link signed within this window after a revocation is simply dead on arrival.
SALT_REFRESH_SECONDS = 2.0


def cached_salt(ctx: Context) -> str | None:
    """This process's copy of the newest salt, or None when it is due for a refresh."""
    loaded_at, salt = ctx.link_salt
    return salt if time.monotonic() - loaded_at <= SALT_REFRESH_SECONDS else None


def signing_salt(ctx: Context) -> str:
    salt = cached_salt(ctx)
    if salt is None:
        with ctx.db.read() as conn:
            salt = repo.newest_link_salt(conn)
        ctx.link_salt = (time.monotonic(), salt)
    return salt


def revoke_all(ctx: Context) -> None:
    with ctx.db.write() as conn:
        repo.insert_link_salt(conn, secrets.token_urlsafe(32), now_utc())
    ctx.link_salt = (float("-inf"), "")


def link_ttl(ctx: Context, requested: str | None) -> int:
    """The lifetime of the links in a response: the caller's `url_ttl`, at most the configured one."""
    maximum = ctx.settings.url_ttl_seconds
    if requested is None:
        return maximum
    if not requested.isascii() or not requested.isdigit() or not 1 <= int(requested) <= maximum:
        raise BadRequest(
            f"url_ttl must be a whole number of seconds from 1 to {maximum}; omit it for links that last {maximum} seconds.",
            code="bad_url_ttl",
        )
    return int(requested)
