"""Every access to patient data leaves an audit record before the client sees the response.

Routes name their action with `@audited("pdf.read")`. When the response starts, this
middleware appends the record: action, outcome (status and error code), account, key prefix,
client address, request id, patient and PDF. If the record cannot be written the client gets
503 instead of the data: no unaudited access. (An error response serves no data: it goes out
as it is, and the lost record is logged.) A service that writes its record inside its
own transaction (the upload, key changes) sets `state["audited"]`, and nothing is added here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from patientpdf.api.deps import patient_id_in_path
from patientpdf.context import Context
from patientpdf.security.ids import is_pdf_id
from patientpdf.services import audit

log = logging.getLogger(__name__)
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def audited(action: str) -> Callable[[Endpoint], Endpoint]:
    def mark(endpoint: Endpoint) -> Endpoint:
        endpoint.audit_action = action  # type: ignore[attr-defined]  # a marker on the function, read by the audit middleware
        return endpoint

    return mark


def request_event(scope: Scope, action: str, status: int) -> audit.AuditEvent:
    state = scope.get("state", {})
    patient_id = state.get("patient_id")
    if patient_id is None:
        patient_id = patient_id_in_path(scope)
    pdf_id = state.get("pdf_id") or scope.get("path_params", {}).get("pdf_id")
    code = state.get("outcome_code")
    client = scope.get("client")
    return audit.AuditEvent(
        action=action,
        outcome=f"{status} {code}" if code else str(status),
        account_id=state.get("account_id"),
        key_prefix=state.get("key_prefix"),
        client=client[0][:64] if client else None,
        request_id=state.get("request_id"),
        patient_id=patient_id,
        pdf_id=pdf_id if isinstance(pdf_id, str) and is_pdf_id(pdf_id) else None,
    )


def record(ctx: Context, event: audit.AuditEvent) -> None:
    with ctx.db.write() as conn:
        audit.append(conn, ctx.audit_key, event)


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_after_audit(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                action = getattr(scope.get("endpoint"), "audit_action", None)
                if action and not scope.get("state", {}).get("audited"):
                    try:
                        await run_in_threadpool(record, scope["app"].state.context, request_event(scope, action, message["status"]))
                    except Exception as exc:
                        if message["status"] >= 400:
                            log.error("could not write the audit record of a refused request (%s: %s)", action, type(exc).__name__)
                        else:
                            log.exception("could not write the audit record; refusing the response")
                            replaced = True
                            await _audit_unavailable(send)
                            return
            await send(message)

        await self.app(scope, receive, send_after_audit)


async def _audit_unavailable(send: Send) -> None:
    body = json.dumps(
        {"detail": "The audit trail cannot be written, so no data is served. Retry in a few seconds.", "code": "audit_unavailable"}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"retry-after", b"5")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
