"""The account's audit trail: filter by time, action, key (or session) and PDF; export it as
CSV or JSONL; and the hash chain's verification."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from patientpdf.console.auth import SignedIn, context_of
from patientpdf.console.pages import is_htmx, render
from patientpdf.console.routes import audited
from patientpdf.errors import BadRequest
from patientpdf.services import accounts, audit, console_sessions

router = APIRouter()
PAGE_SIZE = 100
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


@dataclass
class Filters:
    since: str
    until: str
    action: str
    key: str
    pdf: str


async def _filters(
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    action: Annotated[str, Query(max_length=40)] = "",
    key: Annotated[str, Query(max_length=32)] = "",
    pdf: Annotated[str, Query(max_length=40)] = "",
) -> Filters:
    return Filters(since.strip(), until.strip(), action.strip(), key.strip(), pdf.strip())


FilterQuery = Annotated[Filters, Depends(_filters)]


def _moment(raw: str, name: str) -> datetime | None:
    """A datetime-local field's value (or an ISO time), read as UTC."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.removesuffix("Z"))
    except ValueError:
        raise BadRequest(f"'{name}' must be a date and time such as 2026-11-30T14:00 (UTC).", code="invalid_filter") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _selection(account_id: int, filters: Filters) -> audit.AuditFilter:
    return audit.AuditFilter(
        account_id=account_id,
        since=_moment(filters.since, "from"),
        until=_moment(filters.until, "until"),
        action=filters.action or None,
        key_prefix=filters.key or None,
        pdf_id=filters.pdf or None,
    )


def _actors(request: Request, account_id: int) -> list[tuple[str, str]]:
    """The account's keys and console sessions, as the filter's choices: (prefix, label)."""
    ctx = context_of(request)
    keys = [(row["prefix"], f"key {row['prefix']}… {row['name'] or ''}".strip()) for row in accounts.list_keys(ctx, account_id)]
    sessions = [(row["prefix"], f"console session {row['prefix']}…") for row in console_sessions.list_sessions(ctx, account_id, include_ended=True)]
    return keys + sessions


@router.get("/audit")
@audited("audit.read")
async def audit_page(
    request: Request, session: SignedIn, filters: FilterQuery, before: Annotated[int | None, Query(ge=1)] = None
) -> Response:
    ctx = context_of(request)
    selection = _selection(session.account_id, filters)
    rows = await run_in_threadpool(audit.newest_rows, ctx, selection, PAGE_SIZE, before)
    actions = await run_in_threadpool(audit.actions_recorded, ctx, session.account_id)
    actors = await run_in_threadpool(_actors, request, session.account_id)
    query = {name: value for name, value in vars(filters).items() if value}
    older = query | {"before": rows[-1]["seq"]} if len(rows) == PAGE_SIZE else None
    values = {"nav": "audit", "rows": rows, "filters": filters, "actions": actions, "actors": actors, "query": query, "older": older}
    return render(request, "audit.html", values, session=session)


@router.get("/audit/export")
@audited("audit.export")
async def export(
    request: Request, session: SignedIn, filters: FilterQuery, format: Annotated[str, Query(pattern="^(csv|jsonl)$")] = "csv"
) -> StreamingResponse:
    selection = _selection(session.account_id, filters)
    headers = {"Content-Disposition": f'attachment; filename="audit-account-{session.account_id}.{format}"'}
    return StreamingResponse(audit.export(context_of(request), selection, format), media_type=EXPORT_TYPES[format], headers=headers)


@router.get("/audit/verify")
@audited("audit.verify")
async def verify(request: Request, session: SignedIn) -> Response:
    """The chain's state, for the page to load after it shows (it reads every record)."""
    checked, problems = await run_in_threadpool(audit.verify_chain, context_of(request))
    template = "_audit_verify.html" if is_htmx(request) else "audit_verify.html"
    return render(request, template, {"nav": "audit", "checked": checked, "problems": problems}, session=session)
