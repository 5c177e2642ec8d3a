"""Running the ASGI app under uvicorn (or granian) with several worker processes.

uvicorn's own multi-worker mode hands every worker one shared listening socket: whichever
worker wakes first accepts, so keep-alive clients pile onto one worker while the other idles
(measured: 16 benchmark connections all on one of two workers). Here each worker binds its
own socket with SO_REUSEPORT and the kernel spreads new connections across them. The parent
only supervises: it forwards shutdown signals and replaces a worker that dies. It also runs
the embedded job worker (jobs/), a process of its own beside the API workers, so extraction
never competes with an event loop; it stops with serve, even when serve is killed.

PATIENTPDF_SERVER=granian runs the same app under granian instead, whose own supervisor does
the same (a SO_REUSEPORT socket per worker, signals, restarts); see _run_granian.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    from patientpdf.jobs import EmbeddedWorker
    from patientpdf.settings import ServerName

log = logging.getLogger("patientpdf.server")

UVICORN_OPTIONS: dict[str, Any] = {
    "factory": True,
    "loop": "uvloop",
    "http": "httptools",
    "access_log": False,  # ours (api/middleware.py) leaves out query strings
    "log_config": None,
    "server_header": False,
    "timeout_keep_alive": 15,
    "limit_concurrency": 1024,
    "backlog": 2048,
}
APP = "patientpdf.app:create_app"


def _reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


SERVE_PID = "PATIENTPDF_SERVE_PID"  # set by serve for its API workers
_PR_SET_PDEATHSIG = 1


def stop_with_serve() -> None:
    """In an API worker: not outliving serve, even one killed with SIGKILL, which would leave
    the worker holding the port and serving the old code. Linux sends it SIGTERM (a graceful
    stop) when its parent dies; a parent already gone is seen at once."""
    serve_pid = os.environ.get(SERVE_PID)
    if serve_pid is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(serve_pid):
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(host: str, port: int) -> None:
    stop_with_serve()
    sock = _reuseport_socket(host, port)
    sock.listen(UVICORN_OPTIONS["backlog"])
    uvicorn.Server(uvicorn.Config(APP, host=host, port=port, **UVICORN_OPTIONS)).run(sockets=[sock])


def _embedded_worker(enabled: bool) -> EmbeddedWorker | None:
    if not enabled:
        return None
    from patientpdf.jobs import EmbeddedWorker

    return EmbeddedWorker()


def run(host: str, port: int, workers: int, embedded_worker: bool = False, server: ServerName = "uvicorn") -> None:
    if server == "granian":
        _run_granian(host, port, workers, embedded_worker)
        return
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        job_worker = _embedded_worker(embedded_worker)
        done = threading.Event()
        if job_worker is not None:
            job_worker.watch(done)
        try:
            uvicorn.run(APP, host=host, port=port, workers=workers, **UVICORN_OPTIONS)
        finally:
            done.set()
            if job_worker is not None:
                job_worker.stop()
        return
    # Bound, never listened on: it reserves the address (and fails fast if it is taken)
    # but takes no connections.
    reservation = _reuseport_socket(host, port)
    spawn = multiprocessing.get_context("spawn")
    stopping = False

    def start_worker() -> Any:
        process = spawn.Process(target=_worker, args=(host, port), daemon=False)
        process.start()
        return process

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    os.environ[SERVE_PID] = str(os.getpid())
    processes = [start_worker() for _ in range(workers)]
    job_worker = _embedded_worker(embedded_worker)
    log.info("started %d workers on %s:%d", workers, host, port)
    try:
        while not stopping:
            time.sleep(0.2)
            for index, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    log.error("worker %s exited with %s; starting a new one", process.pid, process.exitcode)
                    time.sleep(1)  # no tight loop if workers cannot start at all
                    processes[index] = start_worker()
            if job_worker is not None and not stopping:
                job_worker.restart_if_dead()
    finally:
        if job_worker is not None:
            job_worker.process.terminate()  # it finishes its job while the API workers drain
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes in-flight requests
        deadline = time.monotonic() + 30
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        if job_worker is not None:
            job_worker.stop()
        reservation.close()
        log.info("stopped")


# granian's own loggers, without its handlers: its lines (start, stop, worker exits, app
# exceptions) go through ours; its access log (with query strings) stays off.
GRANIAN_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {},
    "handlers": {},
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": False},
    },
}


def _run_granian(host: str, port: int, workers: int, embedded_worker: bool) -> None:
    """granian's own supervisor: it gives each worker its own SO_REUSEPORT socket on Linux,
    forwards SIGTERM/SIGINT (workers finish in-flight requests) and replaces a worker that dies."""
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server.mp import MPServer

    # Its workers are started with the default method, fork on Linux: this process holds a
    # database engine and threads, so spawn them like the uvicorn workers and the job worker.
    multiprocessing.set_start_method("spawn", force=True)
    level = LogLevels(logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower())
    granian = MPServer(
        "patientpdf.app:create_proxied_app",  # granian applies no X-Forwarded-* rule of its own
        address=_ip_address(host),
        port=port,
        interface=Interfaces.ASGI,  # with lifespan: the app closes its context at shutdown
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        backlog=UVICORN_OPTIONS["backlog"],
        backpressure=UVICORN_OPTIONS["limit_concurrency"],
        http1_settings=HTTP1Settings(header_read_timeout=UVICORN_OPTIONS["timeout_keep_alive"] * 1000, keep_alive=True),
        log_level=level,
        log_dictconfig=GRANIAN_LOG_CONFIG,
        log_access=False,
        respawn_failed_workers=True,
        workers_kill_timeout=30,
        factory=True,
    )
    os.environ[SERVE_PID] = str(os.getpid())  # for stop_with_serve in the workers (app.create_proxied_app)
    job_worker = _embedded_worker(embedded_worker)
    done = threading.Event()
    if job_worker is not None:
        job_worker.watch(done)
        granian.on_startup(partial(_stop_job_worker_on_signals, job_worker, done))
    try:
        granian.serve()
    finally:
        done.set()
        if job_worker is not None:
            job_worker.stop()
        log.info("stopped")


def _ip_address(host: str) -> str:
    """granian binds an IP address only; a name resolves as for the uvicorn workers' sockets (IPv4 unless it has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return str(socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)[0][4][0])


def _stop_job_worker_on_signals(job_worker: EmbeddedWorker, done: threading.Event) -> None:
    """granian's start-up hook, run right after it installed its SIGTERM/SIGINT handlers: wrapped,
    they stop the job worker first, so it finishes its job while the API workers drain, not after."""

    def stop_job_worker() -> None:
        done.set()  # first: the watch must not restart it
        job_worker.process.terminate()

    for signum in (signal.SIGTERM, signal.SIGINT):
        granian_handler = signal.getsignal(signum)

        def handler(number: int, frame: FrameType | None, granian_handler: Any = granian_handler) -> None:
            stop_job_worker()
            if callable(granian_handler):
                granian_handler(number, frame)

        signal.signal(signum, handler)
