"""Patients of an account."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping

from patientpdf.context import Context
from patientpdf.db import repositories as repo
from patientpdf.errors import Forbidden, NotFound
from patientpdf.services import paging
from patientpdf.services.accounts import Principal, principal_for_key, record_use
from patientpdf.services.clock import now_utc
from patientpdf.services.paging import FIRST_PAGE, PageRequest
from patientpdf.services.processing import Extraction, newest_extraction_of_patient


def create_patient(ctx: Context, account_id: int, values: dict[str, Any]) -> RowMapping:
    with ctx.db.write() as conn:
        if repo.get_account(conn, account_id) is None:
            raise LookupError(f"no account with id {account_id}")
        return repo.insert_patient(conn, account_id, values, now_utc())


def no_patient_with_this_id() -> NotFound:
    """For a path id that is not an id (security.ids.parse_row_id): answered as an unknown patient."""
    return NotFound(
        "Patient not found: a patient id is a whole number written in plain digits (1, 2, 3, ...), "
        "with no sign, spaces, decimal point or leading zeros.",
        code="patient_not_found",
    )


def _not_owned(patient_exists: bool, patient_id: int) -> Exception:
    if patient_exists:
        return Forbidden(
            "Unauthorized access: you can only use patients associated with your account.",
            code="patient_forbidden",
        )
    return NotFound(f"Patient not found: no patient with id {patient_id}.", code="patient_not_found")


def owned_patient_in(conn: Connection, account_id: int, patient_id: int) -> RowMapping:
    """The patient if it belongs to the account; 404 if it does not exist, 403 if it is another's."""
    row = repo.get_patient(conn, account_id, patient_id)
    if row is not None:
        return row
    raise _not_owned(repo.patient_exists_in_any_account(conn, patient_id), patient_id)


def authorize_upload(
    ctx: Context,
    presented_key: str | None,
    patient_id: int | None,
    identified: Callable[[Principal], None] = lambda _principal: None,
) -> Principal:
    """401, then 404/403, in one short read: the checks the upload makes before its body.
    `patient_id` None: the path's id is not an id, which is a 404 like an unknown patient.
    `identified` learns who is asking before the patient check can refuse them (for the audit)."""
    with ctx.db.read() as conn:
        principal, last_used = principal_for_key(conn, presented_key)
        identified(principal)
        if patient_id is None:
            raise no_patient_with_this_id()
        owner = repo.patient_owner(conn, patient_id)
        if owner != principal.account_id:
            raise _not_owned(owner is not None, patient_id)
    record_use(ctx, principal, last_used)
    return principal


def list_patients(
    ctx: Context, account_id: int, page: PageRequest = FIRST_PAGE, name_contains: str | None = None
) -> tuple[Sequence[RowMapping], dict[int, RowMapping], str | None]:
    """One page of the account's patients (those whose name contains `name_contains`, any case),
    the newest PDF of each, and the next page's cursor."""
    after = paging.decode_cursor("patients", page.cursor, paging.positive_id) if page.cursor else None
    with ctx.db.read() as conn:
        rows, next_cursor = paging.page_of(
            repo.list_patients(conn, account_id, after, page.limit + 1, name_contains), page, "patients", lambda row: row["id"]
        )
        return rows, repo.newest_pdfs(conn, account_id, [row["id"] for row in rows]), next_cursor


def patient_with_newest_pdf(
    ctx: Context, account_id: int, patient_id: int
) -> tuple[RowMapping, RowMapping | None, Extraction | None]:
    """The owned patient (404/403 as owned_patient_in), its newest PDF and the extraction of
    its newest processed PDF (pages' text, no words), in one read."""
    with ctx.db.read() as conn:
        row = owned_patient_in(conn, account_id, patient_id)
        newest = repo.newest_pdfs(conn, account_id, [patient_id]).get(patient_id)
        return row, newest, newest_extraction_of_patient(conn, account_id, patient_id)


def owned_patient(ctx: Context, account_id: int, patient_id: int) -> RowMapping:
    """The account's patient (404 if it does not exist, 403 if it is another account's)."""
    with ctx.db.read() as conn:
        return owned_patient_in(conn, account_id, patient_id)
