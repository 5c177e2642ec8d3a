"""Background jobs: a queue in our own database, workers that claim jobs with leases.

The door:
    run_workers(settings, processes)   `patientpdf worker`: work until SIGTERM
    EmbeddedWorker()                   the worker process `serve` runs beside the API
    Worker, Handler, HANDLERS          one worker loop, and what each kind of job does
    list_jobs, stats, retry            `patientpdf jobs`

Jobs are enqueued by the services, in the transaction of the row they are about
(db/jobs.py); this package only runs them. Imports: jobs -> services -> db, never back.
"""

from patientpdf.jobs.admin import list_jobs, retry, stats
from patientpdf.jobs.handlers import HANDLERS
from patientpdf.jobs.processes import EmbeddedWorker, run_worker, run_workers
from patientpdf.jobs.worker import Handler, PermanentFailure, RetryLater, Worker, backoff

__all__ = [
    "HANDLERS",
    "EmbeddedWorker",
    "Handler",
    "PermanentFailure",
    "RetryLater",
    "Worker",
    "backoff",
    "list_jobs",
    "retry",
    "run_worker",
    "run_workers",
    "stats",
]
