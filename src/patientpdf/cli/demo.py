"""`patientpdf demo`: a demo account, key and patient for trying the API."""

from __future__ import annotations

import os
import shlex
from datetime import timedelta
from urllib.parse import urlencode
from pathlib import Path

import click

from patientpdf.cli.common import emit, json_option, open_context


DEMO_ACCOUNT = "Demo Clinic"
DEMO_PATIENT = "Demo Patient"


@click.command()
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True, help="Where the API will be served")
@json_option
def demo(base_url: str, as_json: bool) -> None:
    """Create (once) a demo account, key and patient, and print them with a curl upload."""
    from patientpdf.db import repositories as repo
    from patientpdf.services.accounts import create_account, create_key
    from patientpdf.services.console_sessions import create_login_link
    from patientpdf.services.patients import create_patient

    context = open_context()
    key_file = context.settings.data_dir / "demo_key"
    with context.db.read() as conn:
        account = repo.get_account_by_name(conn, DEMO_ACCOUNT)
        patient = repo.list_patients(conn, account["id"])[0] if account else None
    if account is None or patient is None or not key_file.exists():
        account = account or create_account(context, DEMO_ACCOUNT)
        patient = patient or create_patient(
            context, account["id"], {"name": DEMO_PATIENT, "dob": "1970-01-01", "sex": "F", "additional_variables": {}}
        )
        key = create_key(context, account["id"], "demo")["key"]
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
    key = key_file.read_text().strip()
    sample = _demo_pdf(context.settings.data_dir)
    curl = (
        f"curl --request POST --url {base_url}/patients/{patient['id']}/pdf/ "
        f"--header 'X-API-Key: {key}' --form file=@{shlex.quote(str(sample))} --form filename=demo.pdf"
    )
    token, _link = create_login_link(context, account["id"], timedelta(minutes=10))
    console_url = f"{base_url.rstrip('/')}/console/login?{urlencode({'token': token})}"
    payload = {
        "account_id": account["id"],
        "api_key": key,
        "patient_id": patient["id"],
        "sample_pdf": str(sample),
        "curl": curl,
        "console_url": console_url,
    }
    text = (
        f"demo account {account['id']}, patient {patient['id']}\n"
        f"API key (demo only; also in {key_file}): {key}\n"
        f"upload a PDF:\n  {curl}\n"
        f"open the console (this link signs in once, within 10 minutes):\n  {console_url}"
    )
    emit(as_json, payload, text)


def _demo_pdf(data_dir: Path) -> Path:
    import pikepdf

    path = data_dir / "demo.pdf"
    if not path.exists():
        pdf = pikepdf.new()
        pdf.add_blank_page(page_size=(612, 792))
        pdf.save(path)
    return path.resolve()
