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
        found = repo.get_account_by_name(conn, DEMO_ACCOUNT)
        patients = repo.list_patients(conn, found["id"]) if found else []
    account_id: int | None = found["id"] if found else None
    patient_id: int | None = patients[0]["id"] if patients else None
    if account_id is None or patient_id is None or not key_file.exists():
        if account_id is None:
            account_id = int(create_account(context, DEMO_ACCOUNT)["id"])
        if patient_id is None:
            values = {"name": DEMO_PATIENT, "dob": "1970-01-01", "sex": "F", "additional_variables": {}}
            patient_id = int(create_patient(context, account_id, values)["id"])
        key = create_key(context, account_id, "demo")["key"]
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
    key = key_file.read_text().strip()
    sample, scan = _demo_pdfs(context.settings.data_dir)

    def upload(path: Path, name: str) -> str:
        return (
            f"curl --request POST --url {base_url}/patients/{patient_id}/pdf/ "
            f"--header 'X-API-Key: {key}' --form file=@{shlex.quote(str(path))} --form filename={name}"
        )

    curl, curl_scan = upload(sample, "demo.pdf"), upload(scan, "demo-scan.pdf")
    read = f"curl --header 'X-API-Key: {key}'"
    token, _link = create_login_link(context, account_id, timedelta(minutes=10))
    console_url = f"{base_url.rstrip('/')}/console/login?{urlencode({'token': token})}"
    payload = {
        "account_id": account_id, "api_key": key, "patient_id": patient_id, "sample_pdf": str(sample), "curl": curl,
        "sample_scan_pdf": str(scan), "curl_scan": curl_scan, "console_url": console_url,
    }  # fmt: skip
    text = (
        f"demo account {account_id}, patient {patient_id}\n"
        f"API key (demo only; also in {key_file}): {key}\n"
        f"upload a PDF:\n  {curl}\n"
        f"and a scanned page (no text layer: it is OCRed):\n  {curl_scan}\n"
        f"then read its words and boxes, and search:\n"
        f"  {read} {base_url}/pdfs/<id>/extraction\n"
        f"  {read} '{base_url}/search?q=riverside'\n"
        f"open the console (this link signs in once, within 10 minutes):\n  {console_url}"
    )
    emit(as_json, payload, text)


DEMO_LINES = ["Riverside Family Clinic", "Discharge summary for the demo patient", "Metformin 500 mg twice daily"]


def _demo_pdfs(data_dir: Path) -> tuple[Path, Path]:
    """A born-digital PDF with words, and the same page scanned: an image only, at 150 dpi."""
    import io
    import zlib

    import pikepdf
    import pypdfium2

    text_path, scan_path = data_dir / "demo.pdf", data_dir / "demo-scan.pdf"
    if text_path.exists() and scan_path.exists():
        return text_path.resolve(), scan_path.resolve()
    pdf = pikepdf.new()
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica))
    lines = " ".join(f"1 0 0 1 72 {720 - 24 * n} Tm ({line}) Tj" for n, line in enumerate(DEMO_LINES))
    content = pikepdf.Stream(pdf, f"BT /F1 16 Tf {lines} ET".encode())
    resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    page = pikepdf.Dictionary(Type=pikepdf.Name.Page, MediaBox=[0, 0, 612, 792], Resources=resources, Contents=pdf.make_indirect(content))
    pdf.pages.append(pikepdf.Page(page))
    buffer = io.BytesIO()
    pdf.save(buffer)
    text_path.write_bytes(buffer.getvalue())

    bitmap = pypdfium2.PdfDocument(buffer.getvalue())[0].render(scale=150 / 72, grayscale=True)
    rows = bytes(bitmap.buffer)
    pixels = b"".join(rows[row * bitmap.stride : row * bitmap.stride + bitmap.width] for row in range(bitmap.height))
    scan = pikepdf.new()
    image = pikepdf.Stream(scan, zlib.compress(pixels))
    image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    image.Width, image.Height, image.ColorSpace, image.BitsPerComponent = bitmap.width, bitmap.height, pikepdf.Name.DeviceGray, 8
    image.Filter = pikepdf.Name.FlateDecode
    drawn = pikepdf.Stream(scan, b"q 612 0 0 792 0 0 cm /Im0 Do Q")
    scan_page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page, MediaBox=[0, 0, 612, 792], Contents=scan.make_indirect(drawn),
        Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=scan.make_indirect(image))),
    )  # fmt: skip
    scan.pages.append(pikepdf.Page(scan_page))
    scan.save(scan_path)
    return text_path.resolve(), scan_path.resolve()
