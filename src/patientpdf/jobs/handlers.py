"""What each kind of job does: the services' use cases, adapted to the worker."""

from __future__ import annotations

from sqlalchemy import Connection

from patientpdf.context import Context
from patientpdf.db import jobs as queue
from patientpdf.jobs.worker import Handler, PermanentFailure, ResultWrite
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


HANDLERS: dict[str, Handler] = {
    queue.PROCESS_PDF: Handler(run=_process_pdf, on_failed=_process_pdf_failed),
}
