"""Every query of the service. Queries on account data take the account id and filter by it,
so a cross-account read cannot be written by accident; the two exceptions say why in their name.

The queries every upload or download runs are built once, with bound parameters: building a
statement per call cost about 40 µs, twice what running it costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, CursorResult, RowMapping, bindparam, func, insert, select, update
from sqlalchemy import delete as sql_delete

from patientpdf.db import driver_sql
from patientpdf.db.schema import (
    accounts,
    api_keys,
    console_login_links,
    console_sessions,
    idempotency_keys,
    link_salts,
    patients,
    pdfs,
)

# accounts ---------------------------------------------------------------------------------



def _inserted_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None  # a single-row INSERT always reports its key
    return int(key[0])


def _written(row: RowMapping | None) -> RowMapping:
    """A row read back in the transaction that wrote it."""
    if row is None:
        raise RuntimeError("a row written in this transaction could not be read back")
    return row

def insert_account(conn: Connection, name: str, now: datetime) -> RowMapping:
    new_id = _inserted_id(conn.execute(insert(accounts).values(name=name, created_at=now)))
    return _written(get_account(conn, new_id))


def get_account(conn: Connection, account_id: int) -> RowMapping | None:
    return conn.execute(select(accounts).where(accounts.c.id == account_id)).mappings().first()


def get_account_by_name(conn: Connection, name: str) -> RowMapping | None:
    return conn.execute(select(accounts).where(accounts.c.name == name).order_by(accounts.c.id)).mappings().first()


# api keys ---------------------------------------------------------------------------------


def insert_api_key(
    conn: Connection,
    account_id: int,
    name: str | None,
    prefix: str,
    key_hash: str,
    scopes: str,
    expires_at: datetime | None,
    now: datetime,
) -> RowMapping:
    values: dict[str, Any] = {"account_id": account_id, "name": name, "prefix": prefix, "key_hash": key_hash}
    values |= {"scopes": scopes, "expires_at": expires_at, "created_at": now}
    new_id = _inserted_id(conn.execute(insert(api_keys).values(**values)))
    return _written(get_api_key(conn, new_id))


def get_api_key(conn: Connection, key_id: int) -> RowMapping | None:
    """Unscoped: the services check the account (operators' CLI commands see every account)."""
    return conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()


def set_api_key_expiry(conn: Connection, key_id: int, expires_at: datetime) -> RowMapping:
    conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(expires_at=expires_at))
    return _written(get_api_key(conn, key_id))


_KEY_FOR_AUTHENTICATION = (
    "id", "account_id", "prefix", "key_hash", "scopes", "last_used_at", "revoked_at", "expires_at",
)  # fmt: skip
_API_KEY_BY_PREFIX = f"SELECT {', '.join(_KEY_FOR_AUTHENTICATION)} FROM api_keys WHERE prefix = ?"


def find_api_key_by_prefix_for_authentication(conn: Connection, prefix: str) -> dict[str, Any] | None:
    """Unscoped by design: authentication is what finds the account. Every request asks: on
    the driver (db.driver_sql), with the key's fields authentication reads."""
    found = driver_sql.execute(conn, _API_KEY_BY_PREFIX, (prefix,)).fetchone()
    if found is None:
        return None
    row = dict(zip(_KEY_FOR_AUTHENTICATION, found, strict=True))
    for name in ("last_used_at", "revoked_at", "expires_at"):
        row[name] = driver_sql.read_timestamp(row[name])
    return row


def list_api_keys(conn: Connection, account_id: int | None, after: int | None = None, limit: int | None = None) -> Sequence[RowMapping]:
    query = select(api_keys).order_by(api_keys.c.id).limit(limit)
    if account_id is not None:
        query = query.where(api_keys.c.account_id == account_id)
    if after is not None:
        query = query.where(api_keys.c.id > after)
    return conn.execute(query).mappings().all()


def revoke_api_key(conn: Connection, key_id: int, now: datetime) -> RowMapping:
    conn.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now))
    return _written(get_api_key(conn, key_id))


def touch_api_key(conn: Connection, key_id: int, now: datetime) -> None:
    conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))


# patients ---------------------------------------------------------------------------------


def insert_patient(conn: Connection, account_id: int, values: dict[str, Any], now: datetime) -> RowMapping:
    new_id = _inserted_id(conn.execute(insert(patients).values(account_id=account_id, created_at=now, **values)))
    return _written(get_patient(conn, account_id, new_id))


_PATIENT = select(patients).where(patients.c.id == bindparam("patient_id"), patients.c.account_id == bindparam("account_id"))


def get_patient(conn: Connection, account_id: int, patient_id: int) -> RowMapping | None:
    return conn.execute(_PATIENT, {"patient_id": patient_id, "account_id": account_id}).mappings().first()


def patient_owner(conn: Connection, patient_id: int) -> int | None:
    """Unscoped by design: the id of the patient's account, or None if there is no such patient.
    One read on the driver, for the upload's admission (403 and 404 told apart)."""
    found = driver_sql.execute(conn, "SELECT account_id FROM patients WHERE id = ?", (patient_id,)).fetchone()
    return found[0] if found else None


def patient_exists_in_any_account(conn: Connection, patient_id: int) -> bool:
    """Unscoped by design: the upload doc answers 403, not 404, for another account's patient."""
    return conn.execute(select(patients.c.id).where(patients.c.id == patient_id)).first() is not None


def list_patients(
    conn: Connection, account_id: int, after: int | None = None, limit: int | None = None, name_contains: str | None = None
) -> Sequence[RowMapping]:
    query = select(patients).where(patients.c.account_id == account_id).order_by(patients.c.id).limit(limit)
    if after is not None:
        query = query.where(patients.c.id > after)
    if name_contains:
        # case-insensitive on both databases; the user's % and _ are matched as themselves
        query = query.where(func.lower(patients.c.name).contains(name_contains.lower(), autoescape=True))
    return conn.execute(query).mappings().all()


# pdfs -------------------------------------------------------------------------------------

_PDF_COLUMNS = (
    "id", "account_id", "patient_id", "filename", "storage_key", "size", "sha256", "content_type", "page_count",
    "repaired", "created_at", "active_content",
)  # fmt: skip
_INSERT_PDF = f"INSERT INTO pdfs ({', '.join(_PDF_COLUMNS)}) VALUES ({', '.join('?' * len(_PDF_COLUMNS))})"


def insert_pdf(conn: Connection, values: dict[str, Any]) -> None:
    """Every upload's row: on the driver (db.driver_sql), values adapted as the columns' types would."""
    row = values | {
        "created_at": driver_sql.timestamp(conn, values["created_at"]),
        "active_content": driver_sql.json_value(conn, values["active_content"]),
    }
    driver_sql.execute(conn, _INSERT_PDF, tuple(row[name] for name in _PDF_COLUMNS))


_PDF_BY_ID = select(pdfs).where(pdfs.c.id == bindparam("pdf_id"))
_PDF = _PDF_BY_ID.where(pdfs.c.account_id == bindparam("account_id"))


def get_pdf(conn: Connection, account_id: int, pdf_id: str) -> RowMapping | None:
    return conn.execute(_PDF, {"pdf_id": pdf_id, "account_id": account_id}).mappings().first()


def get_pdf_for_signed_link(conn: Connection, pdf_id: str) -> RowMapping | None:
    """Unscoped by design: a signed link is its own authorisation (checked before this runs)."""
    return conn.execute(_PDF_BY_ID, {"pdf_id": pdf_id}).mappings().first()


def all_pdfs_for_maintenance(conn: Connection) -> Sequence[RowMapping]:
    """Unscoped by design: operator commands (storage check, migrate) see every account."""
    return (
        conn.execute(select(pdfs.c.id, pdfs.c.storage_key, pdfs.c.size, pdfs.c.sha256, pdfs.c.filename).order_by(pdfs.c.id))
        .mappings()
        .all()
    )


def list_pdfs_of_patient(
    conn: Connection, account_id: int, patient_id: int, before: str | None = None, limit: int | None = None
) -> Sequence[RowMapping]:
    """Newest first (ids sort by creation time); `before`: only PDFs older than that id."""
    query = (
        select(pdfs)
        .where(pdfs.c.account_id == account_id, pdfs.c.patient_id == patient_id)
        .order_by(pdfs.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(pdfs.c.id < before)
    return conn.execute(query).mappings().all()


def newest_pdfs(conn: Connection, account_id: int, patient_ids: Sequence[int]) -> dict[int, RowMapping]:
    """The newest PDF of each patient (ids sort by creation time)."""
    if not patient_ids:
        return {}
    newest_ids = (
        select(func.max(pdfs.c.id))
        .where(pdfs.c.account_id == account_id, pdfs.c.patient_id.in_(patient_ids))
        .group_by(pdfs.c.patient_id)
    )
    rows = conn.execute(select(pdfs).where(pdfs.c.id.in_(newest_ids))).mappings().all()
    return {row["patient_id"]: row for row in rows}


def delete_pdf(conn: Connection, account_id: int, pdf_id: str) -> RowMapping | None:
    row = get_pdf(conn, account_id, pdf_id)
    if row is not None:
        conn.execute(sql_delete(pdfs).where(pdfs.c.id == pdf_id, pdfs.c.account_id == account_id))
    return row


_SAME_BYTES = select(pdfs.c.id).where(
    pdfs.c.account_id == bindparam("account_id"), pdfs.c.patient_id == bindparam("patient_id"), pdfs.c.sha256 == bindparam("sha256")
)
_NEWEST_DUPLICATE_SQL = (
    "SELECT id FROM pdfs WHERE account_id = ? AND patient_id = ? AND sha256 = ? ORDER BY id DESC LIMIT 1"
)
_NEWEST_DUPLICATE_BEFORE = _SAME_BYTES.where(pdfs.c.id < bindparam("before")).order_by(pdfs.c.id.desc()).limit(1)


def find_duplicate_pdf(conn: Connection, account_id: int, patient_id: int, sha256: str, before: str | None = None) -> str | None:
    """The newest PDF of the patient with the same bytes (older than `before`, if given: ids sort by time)."""
    params = {"account_id": account_id, "patient_id": patient_id, "sha256": sha256}
    if before is None:  # every upload asks (in its group commit): on the driver
        found = driver_sql.execute(conn, _NEWEST_DUPLICATE_SQL, (account_id, patient_id, sha256)).fetchone()
        return found[0] if found else None
    return conn.execute(_NEWEST_DUPLICATE_BEFORE, params | {"before": before}).scalar()


# idempotency keys -------------------------------------------------------------------------


def get_idempotency_key(conn: Connection, account_id: int, key: str) -> RowMapping | None:
    keys = idempotency_keys.c
    return conn.execute(select(idempotency_keys).where(keys.account_id == account_id, keys.key == key)).mappings().first()


def insert_idempotency_key(
    conn: Connection, account_id: int, key: str, locked_until: datetime, now: datetime, expires_at: datetime
) -> None:
    values = {"account_id": account_id, "key": key, "locked_until": locked_until, "created_at": now, "expires_at": expires_at}
    conn.execute(insert(idempotency_keys).values(**values))


def relock_idempotency_key(conn: Connection, account_id: int, key: str, locked_until: datetime) -> None:
    keys = idempotency_keys.c
    conn.execute(update(idempotency_keys).where(keys.account_id == account_id, keys.key == key).values(locked_until=locked_until))


def finish_idempotency_key(conn: Connection, account_id: int, key: str, fingerprint: str, pdf_id: str) -> None:
    keys = idempotency_keys.c
    conn.execute(
        update(idempotency_keys)
        .where(keys.account_id == account_id, keys.key == key)
        .values(fingerprint=fingerprint, pdf_id=pdf_id, locked_until=None)
    )


def delete_idempotency_key(conn: Connection, account_id: int, key: str, only_unfinished: bool = False) -> None:
    keys = idempotency_keys.c
    query = sql_delete(idempotency_keys).where(keys.account_id == account_id, keys.key == key)
    if only_unfinished:
        query = query.where(keys.pdf_id.is_(None))
    conn.execute(query)


def delete_expired_idempotency_keys(conn: Connection, now: datetime) -> None:
    conn.execute(sql_delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now))


# link salts -------------------------------------------------------------------------------


def newest_link_salt(conn: Connection) -> str:
    return conn.execute(select(link_salts.c.salt).order_by(link_salts.c.id.desc()).limit(1)).scalar() or ""


def insert_link_salt(conn: Connection, salt: str, now: datetime) -> None:
    conn.execute(insert(link_salts).values(salt=salt, created_at=now))


# console sign-in links and sessions -------------------------------------------------------


def insert_login_link(conn: Connection, account_id: int, token_hash: str, now: datetime, expires_at: datetime) -> RowMapping:
    values = {"account_id": account_id, "token_hash": token_hash, "created_at": now, "expires_at": expires_at}
    new_id = _inserted_id(conn.execute(insert(console_login_links).values(**values)))
    return conn.execute(select(console_login_links).where(console_login_links.c.id == new_id)).mappings().one()


def find_login_link_for_sign_in(conn: Connection, token_hash: str) -> RowMapping | None:
    """Unscoped by design: the link is what names the account."""
    return conn.execute(select(console_login_links).where(console_login_links.c.token_hash == token_hash)).mappings().first()


def use_login_link(conn: Connection, link_id: int, now: datetime) -> bool:
    """Mark the link used; False if another request used it first (single use under concurrency)."""
    links = console_login_links.c
    result = conn.execute(
        update(console_login_links).where(links.id == link_id, links.used_at.is_(None), links.expires_at > now).values(used_at=now)
    )
    return result.rowcount == 1


def insert_console_session(conn: Connection, values: dict[str, Any]) -> RowMapping:
    new_id = _inserted_id(conn.execute(insert(console_sessions).values(**values)))
    return _written(get_console_session(conn, new_id))


def get_console_session(conn: Connection, session_id: int) -> RowMapping | None:
    """Unscoped: the services check the account (operators' CLI commands see every account)."""
    return conn.execute(select(console_sessions).where(console_sessions.c.id == session_id)).mappings().first()


_SESSION_BY_HASH = select(console_sessions).where(console_sessions.c.token_hash == bindparam("token_hash"))


def find_console_session_for_authentication(conn: Connection, token_hash: str) -> RowMapping | None:
    """Unscoped by design: the session cookie is what names the account."""
    return conn.execute(_SESSION_BY_HASH, {"token_hash": token_hash}).mappings().first()


def list_console_sessions(conn: Connection, account_id: int | None, include_ended: bool) -> Sequence[RowMapping]:
    query = select(console_sessions).order_by(console_sessions.c.id)
    if account_id is not None:
        query = query.where(console_sessions.c.account_id == account_id)
    if not include_ended:
        query = query.where(console_sessions.c.ended_at.is_(None))
    return conn.execute(query).mappings().all()


def touch_console_session(conn: Connection, session_id: int, now: datetime) -> None:
    sessions = console_sessions.c
    conn.execute(update(console_sessions).where(sessions.id == session_id, sessions.ended_at.is_(None)).values(last_seen_at=now))


def end_console_session(conn: Connection, session_id: int, now: datetime, reason: str) -> bool:
    """End a live session; False if it had already ended (the first reason stays)."""
    sessions = console_sessions.c
    result = conn.execute(
        update(console_sessions)
        .where(sessions.id == session_id, sessions.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )
    return result.rowcount == 1


def pdf_names(conn: Connection, account_id: int, pdf_ids: Sequence[str]) -> dict[str, RowMapping]:
    """The file name and the patient's name of each of the account's PDFs (search results)."""
    if not pdf_ids:
        return {}
    query = (
        select(pdfs.c.id, pdfs.c.filename, pdfs.c.patient_id, patients.c.name.label("patient_name"))
        .join(patients, patients.c.id == pdfs.c.patient_id)
        .where(pdfs.c.account_id == account_id, pdfs.c.id.in_(list(pdf_ids)))
    )
    return {row["id"]: row for row in conn.execute(query).mappings()}
