"""A real worker process whose process_pdf job waits at a gate before doing its real work.

    python tests/gated_worker.py GATE

It writes GATE.claimed (holding the job's lease owner) once it holds a job, then waits until
the file GATE exists, then runs the real handler. The tests use it to stop or kill a worker
in the middle of a job, known to be there by state rather than by timing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from patientpdf.context import Context
from patientpdf.db.jobs import PROCESS_PDF, Claimed
from patientpdf.jobs import HANDLERS, Handler, run_worker
from patientpdf.jobs.worker import ResultWrite
from patientpdf.settings import Settings


def main(gate: Path) -> None:
    real = HANDLERS[PROCESS_PDF]

    def gated(ctx: Context, job: Claimed) -> ResultWrite:
        gate.with_suffix(".claimed").write_text(job.lease_owner)
        while not gate.exists():
            time.sleep(0.05)
        return real.run(ctx, job)

    run_worker(Settings(), {PROCESS_PDF: Handler(run=gated, on_failed=real.on_failed)})  # type: ignore[call-arg]


if __name__ == "__main__":
    main(Path(sys.argv[1]))
