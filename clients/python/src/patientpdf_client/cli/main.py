"""`ppdf`: the patientpdf command line.

Exit codes (also in the README):
  0    everything succeeded
  1    upload: at least one file was refused by the server (not a PDF, too large, …), none failed
  2    usage or configuration error (bad arguments, no URL or key, a path that does not exist)
  3    something failed that may pass later: the server unreachable or unavailable after every
       retry; for upload, at least one file failed (run it again with --resume)
  4    the server refused the command itself: authentication, permission, not found, bad input;
       an upload stops at once on a refusal that holds for every file (bad key, unknown patient)
  130  interrupted (Ctrl-C); with --resume, run it again to finish
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from patientpdf_client import __version__
from patientpdf_client._core import KEY_ENV, URL_ENV
from patientpdf_client._retry import RetryPolicy
from patientpdf_client.cli.display import Display, LineDisplay, ProgressDisplay
from patientpdf_client.cli.state import StateFile
from patientpdf_client.cli.upload import FAILED, INTERRUPTED, OK, REJECTED, USAGE, UploadRun, discover
from patientpdf_client.client import Client
from patientpdf_client.errors import ConnectionFailed, PatientPdfError

EPILOG = f"""Configuration: --url and --api-key, or ${URL_ENV} and ${KEY_ENV} (prefer the variable for the
key: arguments show in the process list). The key is never printed.

exit codes: 0 ok; 1 some files refused; 2 usage or configuration; 3 failed (may pass later: use
--resume); 4 the server refused the command (key, permission, not found); 130 interrupted"""


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the server, e.g. https://pdfs.example.org (default: ${URL_ENV})")
    common.add_argument("--api-key", help=f"the API key (default: ${KEY_ENV})")
    common.add_argument("--json", action="store_true", help="one JSON object per line on stdout (the default when stdout is not a terminal)")
    common.add_argument("--timeout", type=float, default=60.0, help="seconds without progress before an attempt fails (default 60)")
    common.add_argument("--max-attempts", type=int, default=8, help="attempts per request, retries included (default 8)")
    return common


def parser() -> argparse.ArgumentParser:
    common = _common()
    top = argparse.ArgumentParser(
        prog="ppdf", description="Upload, list, download and search patients' PDFs on a patientpdf server.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    top.add_argument("--version", action="version", version=f"ppdf {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    upload = commands.add_parser("upload", parents=[common], help="upload files and folders of PDFs for one patient", epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    upload.add_argument("paths", nargs="+", metavar="PATH", help="PDF files, and folders searched recursively for *.pdf")
    upload.add_argument("--patient", type=int, required=True, metavar="ID", help="the patient the PDFs belong to")
    upload.add_argument("--jobs", "-j", type=int, default=4, metavar="N", help="files sent at once (default 4)")
    upload.add_argument("--no-progress", action="store_true", help="no progress bars: one line per file")
    upload.add_argument("--resume", type=Path, metavar="STATE_FILE", help="record each file's result here; a re-run sends only what is missing")
    upload.add_argument("--skip-existing", action="store_true", help="do not send a file whose SHA-256 the patient already has")

    commands.add_parser("patients", parents=[common], help="list the account's patients")
    pdfs = commands.add_parser("pdfs", parents=[common], help="list a patient's PDFs, newest first")
    pdfs.add_argument("patient", type=int, metavar="PATIENT")

    download = commands.add_parser("download", parents=[common], help="download a PDF (resumes an interrupted download)")
    download.add_argument("pdf_id", metavar="PDF_ID")
    download.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    download.add_argument("--no-progress", action="store_true")

    search = commands.add_parser("search", parents=[common], help="search the text of the account's PDFs")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--patient", type=int, metavar="ID")
    search.add_argument("--limit", type=int, default=20, metavar="N", help="at most N results (default 20)")
    return top


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`ppdf pdfs 1 | head -1`): stop quietly, as other commands do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = OK
    sys.exit(code)


def run(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    as_json = args.json or not sys.stdout.isatty()
    try:
        client = Client(
            args.url or os.environ.get(URL_ENV), args.api_key or os.environ.get(KEY_ENV),
            retry=RetryPolicy(max_attempts=max(1, args.max_attempts)), timeout=args.timeout,
            max_connections=max(4, getattr(args, "jobs", 1)),
        )  # fmt: skip
    except ValueError as exc:
        print(f"ppdf: {exc}", file=sys.stderr)
        return USAGE
    try:
        with client:
            command: Callable[[Client, argparse.Namespace, bool], int] = COMMANDS[args.command]
            return command(client, args, as_json)
    except KeyboardInterrupt:
        print("ppdf: interrupted", file=sys.stderr)
        return INTERRUPTED
    except ConnectionFailed as exc:
        print(f"ppdf: cannot reach {client.url}: {exc.detail}", file=sys.stderr)
        return FAILED
    except PatientPdfError as exc:
        print(f"ppdf: {exc}", file=sys.stderr)
        transient = exc.status is None or exc.status >= 500 or exc.status in (408, 409, 429)
        return FAILED if transient else REJECTED


def upload(client: Client, args: argparse.Namespace, as_json: bool) -> int:
    if args.jobs < 1:
        print("ppdf: --jobs must be at least 1", file=sys.stderr)
        return USAGE
    try:
        files = discover(args.paths)
    except FileNotFoundError as exc:
        print(f"ppdf: no such file or folder: {exc}", file=sys.stderr)
        return USAGE
    display: Display
    if as_json:
        display = Display()
    elif args.no_progress:
        display = LineDisplay()
    else:
        display = ProgressDisplay()
    state = StateFile(args.resume) if args.resume else None
    try:
        run = UploadRun(client, args.patient, display, jobs=args.jobs, state=state, skip_existing=args.skip_existing)
        _, code = run.run(files)
        return code
    finally:
        if state:
            state.close()


def _lines(records: Iterator[dict[str, Any]], as_json: bool, columns: list[str]) -> int:
    for record in records:
        if as_json:
            print(json.dumps(record), flush=True)
        else:
            print("  ".join("" if record.get(column) is None else str(record.get(column)) for column in columns), flush=True)
    return OK


def patients(client: Client, args: argparse.Namespace, as_json: bool) -> int:
    return _lines((dict(p) for p in client.list_patients()), as_json, ["id", "name", "dob", "sex"])


def pdfs(client: Client, args: argparse.Namespace, as_json: bool) -> int:
    return _lines((dict(p) for p in client.list_pdfs(args.patient)), as_json, ["id", "created_at", "size", "pages", "filename"])


def download(client: Client, args: argparse.Namespace, as_json: bool) -> int:
    if as_json or args.no_progress:
        result = client.download_pdf(args.pdf_id, args.output)
    else:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        with Progress(TextColumn(args.pdf_id), BarColumn(), DownloadColumn(), TransferSpeedColumn()) as bar:
            task = bar.add_task("download", total=None)
            result = client.download_pdf(args.pdf_id, args.output, progress=lambda done, total: bar.update(task, completed=done, total=total))
    if as_json:
        print(json.dumps(dict(result)))
    else:
        resumed = f", resumed at byte {result['resumed_from']}" if result["resumed_from"] else ""
        print(f"{result['path']}: {result['size']} bytes, sha256 {result['sha256']} (checked){resumed}")
    return OK


def search(client: Client, args: argparse.Namespace, as_json: bool) -> int:
    hits = client.iter_search(args.query, patient_id=args.patient, page_size=min(args.limit, 100))
    for shown, hit in enumerate(hits):
        if shown >= args.limit:
            break
        if as_json:
            print(json.dumps(dict(hit)), flush=True)
        else:
            print(f"{hit['pdf_id']}  page {hit['page']}  patient {hit['patient_id']}  {hit['snippet']}", flush=True)
    return OK


COMMANDS: dict[str, Callable[[Client, argparse.Namespace, bool], int]] = {
    "upload": upload, "patients": patients, "pdfs": pdfs, "download": download, "search": search,
}  # fmt: skip
