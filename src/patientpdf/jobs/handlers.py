"""What each kind of job does: the services' use cases, adapted to the worker."""

from __future__ import annotations

from sqlalchemy import Connection

from patientpdf.context import Context
from patientpdf.db import jobs as queue
from patientpdf import webhooks
from patientpdf.jobs.worker import Handler, PermanentFailure, ResultWrite, RetryLater
from patientpdf.services import processing


def _process_pdf(ctx: Context, job: queue.Claimed) -> ResultWrite:
    if job.account_id is None or job.subject is None:
        raise PermanentFailure("bad_job", "a process_pdf job names its PDF and account")
    try:
        return processing.process_pdf(ctx, job.account_id, job.subject, job.lease_owner)
    except processing.ProcessingFailed as exc:
        raise PermanentFailure(exc.code, exc.detail) from exc


def _process_pdf_failed(conn: Connection, job: queue.Claimed) -> None:
    processing.forget(conn, job.account_id, job.subject)


def _deliver_webhook(ctx: Context, job: queue.Claimed) -> ResultWrite:
    if job.subject is None:
        raise PermanentFailure("bad_job", "a deliver_webhook job names its delivery")
    try:
        return webhooks.deliver(ctx, job.subject)
    except webhooks.DeliveryAbandoned as exc:
        raise PermanentFailure(exc.code, exc.detail) from exc
    except webhooks.DeliveryFailed as exc:
        raise RetryLater(exc.code, exc.detail) from exc


def _webhook_retry_delay(ctx: Context, attempts: int) -> float:
    return webhooks.retry_delay(ctx.settings, attempts)


HANDLERS: dict[str, Handler] = {
    queue.PROCESS_PDF: Handler(run=_process_pdf, on_failed=_process_pdf_failed),
    queue.DELIVER_WEBHOOK: Handler(run=_deliver_webhook, retry_delay=_webhook_retry_delay),
}
