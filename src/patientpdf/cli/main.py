"""The `patientpdf` command, for operators and for scripts.

Every command takes --json and then prints exactly one JSON object on stdout. Errors go to
stderr with a non-zero exit code. Each command group lives in its own module; this one only
assembles them.
"""

from __future__ import annotations

import click

from patientpdf.cli.accounts import accounts
from patientpdf.cli.audit import audit
from patientpdf.cli.console import console
from patientpdf.cli.demo import demo
from patientpdf.cli.jobs import jobs
from patientpdf.cli.keys import keys
from patientpdf.cli.links import links
from patientpdf.cli.patients import patients
from patientpdf.cli.serve import db, serve
from patientpdf.cli.storage import storage
from patientpdf.cli.webhooks import webhooks
from patientpdf.cli.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """patientpdf: upload, store and serve patients' PDFs."""


for command in (serve, worker, jobs, db, accounts, keys, links, audit, patients, storage, webhooks, demo, console):
    cli.add_command(command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
