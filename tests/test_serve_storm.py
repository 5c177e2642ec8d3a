"""`serve` (API workers and its embedded job worker) killed with SIGKILL during a storm of
uploads: every PDF whose upload got 201 is in the database with its job, and a new `serve`
(its embedded worker) brings every job to `done`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from conftest import backend_settings
from patientpdf.db.engine import Database
from patientpdf.settings import Settings
from processing_helpers import assert_none_left, text_pdf, wait_until
from served import Served, listens_on

UPLOADS_BEFORE_THE_KILL = 24
CLIENTS = 8


@pytest.fixture
def env(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    settings = backend_settings(backend, request)
    env = {f"PATIENTPDF_{name.upper()}": str(value) for name, value in settings.items()}
    return env | {"PATIENTPDF_WORKER_POLL_SECONDS": "0.05", "PATIENTPDF_JOB_LEASE_SECONDS": "3", "PATIENTPDF_LOG_LEVEL": "WARNING"}


@pytest.fixture
def servers() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        served.stop()
    for data_dir in {Path(served.env["PATIENTPDF_DATA_DIR"]) for served in started}:
        assert_none_left(data_dir)


def test_serve_killed_during_an_upload_storm_loses_no_pdf_and_no_job(
    env: dict[str, str], tmp_path: Path, servers: list[Served]
) -> None:
    data_dir = tmp_path / "data"
    first = Served(data_dir, workers=2, extra_env=env, new_session=True)
    servers.append(first)
    headers = {"X-API-Key": first.demo["api_key"]}
    url = f"{first.base_url}/patients/{first.demo['patient_id']}/pdf/"
    created: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    def client(n: int) -> None:
        content = text_pdf([[(f"Storm upload {n}", 72, 700)], [("Riverside Family Clinic", 72, 700)]])
        with httpx.Client(timeout=60) as http:
            while True:
                try:
                    response = http.post(url, headers=headers, files={"file": ("x.pdf", content)}, data={"filename": f"{n}.pdf"})
                except httpx.TransportError:
                    return  # serve is gone
                assert response.status_code == 201, response.text
                with lock:
                    created.append(response.json()["id"])
                    if len(created) >= UPLOADS_BEFORE_THE_KILL:
                        enough.set()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    assert enough.wait(timeout=300), first.logs()
    first.kill_group()  # mid-storm: uploads in flight, the embedded worker likely mid-job
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    database = Database(Settings(data_dir=data_dir, **_settings(env)).resolved_database_url)
    try:
        def rows(statement: str) -> list[dict]:
            with database.read() as conn:
                return [dict(row) for row in conn.execute(text(statement)).mappings()]

        # Every 201 is a row with its job; no row is without one (uploads cut off by the kill included).
        pdf_ids = {row["id"] for row in rows("SELECT id FROM pdfs")}
        assert set(created) <= pdf_ids
        assert rows("SELECT count(*) AS n FROM pdfs p LEFT JOIN jobs j ON j.subject = p.id WHERE j.id IS NULL") == [{"n": 0}]
        assert {row["subject"] for row in rows("SELECT subject FROM jobs")} == pdf_ids
        # the storm outran the embedded worker: what follows is the new worker's doing
        assert rows("SELECT count(*) AS n FROM jobs WHERE status <> 'done'")[0]["n"] > 0

        second = Served(data_dir, workers=1, extra_env=env)  # a new serve, with its embedded worker
        servers.append(second)

        def all_done() -> bool:
            return rows("SELECT DISTINCT status FROM jobs") == [{"status": "done"}]

        wait_until(all_done, "the new serve's worker processes every job")
        for pdf_id in created:
            processing = httpx.get(f"{second.base_url}/pdfs/{pdf_id}", headers=headers).json()["processing"]
            assert processing["status"] == "done", (pdf_id, processing)
        extracted = rows("SELECT pdf_id, count(*) AS pages FROM pdf_pages GROUP BY pdf_id")
        assert {row["pdf_id"] for row in extracted} == pdf_ids and {row["pages"] for row in extracted} == {2}
    finally:
        database.dispose()


def _settings(env: dict[str, str]) -> dict[str, str]:
    """The database setting of the environment, as Settings keywords."""
    url = env.get("PATIENTPDF_DATABASE_URL")
    return {"database_url": url} if url else {}


def test_the_embedded_worker_does_not_outlive_a_killed_serve(tmp_path: Path, servers: list[Served]) -> None:
    served = Served(tmp_path / "data", workers=1, extra_env={"PATIENTPDF_LOG_LEVEL": "WARNING"})
    servers.append(served)

    def embedded_workers() -> list[int]:
        children = Path(f"/proc/{served.process.pid}/task/{served.process.pid}/children").read_text().split()
        spawned = [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        return [pid for pid in spawned if not listens_on(pid, served.port)]  # granian's API worker is spawned too

    wait_until(lambda: len(embedded_workers()) == 1, "serve starts its embedded worker")
    [worker] = embedded_workers()
    served.process.kill()  # serve alone, not its process group
    served.process.wait()

    def gone() -> bool:
        status = Path(f"/proc/{worker}/status")
        return not status.exists() or "zombie" in status.read_text()

    wait_until(gone, "the embedded worker stops when serve dies")
