"""Worker processes: `patientpdf worker [--processes N]`, and the one `serve` embeds.

Each worker is a process of its own (spawned, never forked from a process holding database
connections), and each extracts in a child process of its own (processing/), so OCR never
competes with an API process's event loop. A supervisor restarts a worker that dies; the
job it held is claimed again once its lease expires.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from multiprocessing.process import BaseProcess

from patientpdf.context import Context
from patientpdf.jobs.handlers import HANDLERS
from patientpdf.jobs.worker import Handler, Worker
from patientpdf.logging import configure_logging
from patientpdf.services.processing import sweep_work_files
from patientpdf.settings import Settings

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 30  # a stopping worker finishes its job; past this it is killed (and the job retried)
_PR_SET_PDEATHSIG = 1


def run_worker(settings: Settings, handlers: Mapping[str, Handler] = HANDLERS, stop: threading.Event | None = None) -> None:
    """One worker in this process until SIGTERM/SIGINT (or `stop`): the job in hand is finished first."""
    configure_logging(settings.log_level)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        _stop_on_signals(stop)
    ctx = Context.from_settings(settings)
    try:
        sweep_work_files(settings)
        Worker(ctx, handlers).run(stop)
    finally:
        ctx.close()


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop`. Not from the handler itself: it runs in the main thread,
    which may be inside `stop.wait()` holding the event's lock, and would wait for itself."""

    def handler(_signum: int, _frame: object) -> None:
        threading.Thread(target=stop.set, name="stop-on-signal", daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def _worker_process(parent_pid: int | None) -> None:
    stop = threading.Event()
    if parent_pid is not None:
        _stop_with_parent(parent_pid, stop)
    run_worker(Settings(), stop=stop)


def _stop_with_parent(parent_pid: int, stop: threading.Event) -> None:
    """A supervised worker must not outlive its parent, even one killed with SIGKILL: Linux
    sends SIGTERM when the parent dies, and a watch on the parent covers the rest."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent_pid:
                log.warning("the worker's parent %d is gone; stopping", parent_pid)
                stop.set()

    if os.getppid() != parent_pid:  # it died before the prctl took effect
        stop.set()
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def start_worker_process(embedded: bool) -> BaseProcess:
    """A worker in a new process; `embedded`: it stops when this process dies."""
    process = multiprocessing.get_context("spawn").Process(
        target=_worker_process, args=(os.getpid() if embedded else None,), name="patientpdf-worker", daemon=False
    )
    process.start()
    return process


def stop_processes(processes: list[BaseProcess], grace: float = STOP_GRACE_SECONDS) -> None:
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


class EmbeddedWorker:
    """The worker `serve` runs beside its API processes, restarted if it dies."""

    def __init__(self) -> None:
        self.process = start_worker_process(embedded=True)

    def restart_if_dead(self) -> None:
        if not self.process.is_alive():
            log.error("the embedded worker exited with %s; starting a new one", self.process.exitcode)
            self.process = start_worker_process(embedded=True)

    def watch(self, stopping: threading.Event) -> None:
        """Restart on a thread (serve with one API process runs uvicorn in its main thread)."""

        def loop() -> None:
            while not stopping.wait(1.0):
                self.restart_if_dead()

        threading.Thread(target=loop, name="embedded-worker-watch", daemon=True).start()

    def stop(self) -> None:
        stop_processes([self.process])


def run_workers(settings: Settings, processes: int) -> None:
    """`patientpdf worker`: one worker here, or N supervised worker processes."""
    if processes <= 1:
        run_worker(settings)
        return
    configure_logging(settings.log_level)
    stopping = threading.Event()
    _stop_on_signals(stopping)
    workers = [start_worker_process(embedded=True) for _ in range(processes)]
    log.info("started %d worker processes", processes)
    try:
        while not stopping.wait(0.5):
            for index, process in enumerate(workers):
                if not process.is_alive() and not stopping.is_set():
                    log.error("worker process %s exited with %s; starting a new one", process.pid, process.exitcode)
                    time.sleep(1)  # no tight loop if workers cannot start at all
                    workers[index] = start_worker_process(embedded=True)
    finally:
        stop_processes(workers)
        log.info("stopped")
