"""Delay from an upload's 201 to its extraction being `done`, end to end, on a running `patientpdf serve`.

    .venv/bin/python bench/processing_delay.py --base http://127.0.0.1:8090 --key KEY --patient 1 \
        --db DATA_DIR/patientpdf.db [--born 60] [--scans 12] [--rate 2] [--pid SERVE_PID]

Uploads, at a steady offered rate, unique born-digital PDFs (--born-pages pages of Helvetica text)
and unique scanned pages (one image-only page at 200 dpi, typed text: OCR), interleaved, then waits
until `GET /pdfs/{id}` says every one is `done`. The API's timestamps are whole seconds, so the
delays come from the database's own (microsecond) `pdfs.created_at` and `jobs.started_at` /
`finished_at`, read once at the end from the SQLite file (read-only). Prints per-kind p50/p99 of
finished - created, queue wait (started - created), and the pages/s the worker sustained.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import statistics
import time
import urllib.request
import uuid
import zlib
from datetime import datetime

import pikepdf
from PIL import Image, ImageDraw, ImageFont

WORDS = "patient discharge summary metformin lisinopril blood pressure follow visit clinic history allergy".split()


def born_pdf(serial: int, pages: int) -> bytes:
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica)
    )
    for number in range(pages):
        lines = [
            f"Document {serial} page {number + 1} " + " ".join(WORDS[(serial + n + k) % len(WORDS)] for k in range(8))
            for n in range(40)
        ]
        ops = " ".join(f"1 0 0 1 60 {740 - 16 * n} Tm ({line}) Tj" for n, line in enumerate(lines))
        content = pikepdf.Stream(pdf, f"BT /F1 11 Tf {ops} ET".encode())
        page = pikepdf.Dictionary(
            Type=pikepdf.Name.Page, MediaBox=[0, 0, 612, 792],
            Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)), Contents=pdf.make_indirect(content),
        )  # fmt: skip
        pdf.pages.append(pikepdf.Page(page))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def scan_pdf(serial: int, dpi: int = 200) -> bytes:
    scale = dpi / 72.0
    image = Image.new("L", (round(612 * scale), round(792 * scale)), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=round(12 * scale))
    for n in range(25):
        line = f"Fax {serial} line {n + 1} " + " ".join(WORDS[(serial + n + k) % len(WORDS)] for k in range(6))
        draw.text((72 * scale, (72 + 20 * n) * scale), line, font=font, fill=0)
    pdf = pikepdf.new()
    xobject = pikepdf.Stream(pdf, zlib.compress(image.tobytes()))
    xobject.Type, xobject.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    xobject.Width, xobject.Height, xobject.ColorSpace, xobject.BitsPerComponent = (
        image.width,
        image.height,
        pikepdf.Name.DeviceGray,
        8,
    )
    xobject.Filter = pikepdf.Name.FlateDecode
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page, MediaBox=[0, 0, 612, 792],
        Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=pdf.make_indirect(xobject))),
        Contents=pdf.make_indirect(pikepdf.Stream(pdf, b"q 612 0 0 792 0 0 cm /Im0 Do Q")),
    )  # fmt: skip
    pdf.pages.append(pikepdf.Page(page))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def upload(base: str, key: str, patient: int, body: bytes, name: str) -> dict[str, str]:
    boundary = uuid.uuid4().hex
    data = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="filename"\r\n\r\n{name}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{base}/patients/{patient}/pdf/", data=data, method="POST",
        headers={"X-API-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        if response.status != 201:
            raise SystemExit(f"upload answered {response.status}, expected 201 (a duplicate?)")
        result: dict[str, str] = json.load(response)
        return result


def status_of(base: str, key: str, pdf_id: str) -> str:
    request = urllib.request.Request(f"{base}/pdfs/{pdf_id}", headers={"X-API-Key": key})
    with urllib.request.urlopen(request, timeout=60) as response:
        return str(json.load(response)["processing"]["status"])


def tree_cpu_seconds(root: int) -> dict[int, float]:
    """utime + stime of every process under `root` (itself included), by pid."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = {}, [root]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            found[pid] = (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
        todo.extend(children.get(pid, []))
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:80]
    except OSError:
        return "?"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--patient", type=int, required=True)
    parser.add_argument("--db", required=True, help="the serve's SQLite file (read-only, for microsecond timestamps)")
    parser.add_argument("--born", type=int, default=60, help="born-digital PDFs to upload")
    parser.add_argument("--born-pages", type=int, default=3)
    parser.add_argument("--scans", type=int, default=12, help="scanned one-page PDFs to upload")
    parser.add_argument("--rate", type=float, default=2.0, help="uploads offered per second")
    parser.add_argument("--pid", type=int, help="serve's pid: CPU of its process tree during the run")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    total = args.born + args.scans
    every = max(1, total // max(1, args.scans))  # one scan every `every` uploads
    plan: list[tuple[str, bytes]] = []
    run = uuid.uuid4().hex[:8]  # unique bytes per run: no duplicate of an earlier upload
    scans_left = args.scans
    for n in range(total):
        if scans_left and (n % every == every - 1 or total - n == scans_left):
            plan.append(("scan", scan_pdf(n, 200) + f"\n% {run}\n".encode()))
            scans_left -= 1
        else:
            plan.append(("born", born_pdf(n, args.born_pages) + f"\n% {run}\n".encode()))
    sizes = {
        kind: statistics.mean(len(b) for k, b in plan if k == kind)
        for kind in ("born", "scan")
        if any(k == kind for k, _ in plan)
    }
    print(
        f"load before: {open('/proc/loadavg').read().split()[:3]}; {len(plan)} uploads, mean bytes { ({k: round(v) for k, v in sizes.items()}) }"
    )

    cpu_before = tree_cpu_seconds(args.pid) if args.pid else {}
    uploaded: list[tuple[str, str]] = []  # (kind, pdf id)
    started = time.monotonic()
    for n, (kind, body) in enumerate(plan):
        due = started + n / args.rate
        time.sleep(max(0.0, due - time.monotonic()))
        uploaded.append((kind, upload(args.base, args.key, args.patient, body, f"bench-{kind}-{n}.pdf")["id"]))
    upload_seconds = time.monotonic() - started
    print(f"uploaded {len(uploaded)} in {upload_seconds:.1f} s ({len(uploaded) / upload_seconds:.2f}/s offered {args.rate}/s)")

    pending = {pdf_id for _, pdf_id in uploaded}
    statuses: dict[str, str] = {}
    while pending and time.monotonic() - started < args.timeout:
        for pdf_id in list(pending):
            statuses[pdf_id] = status_of(args.base, args.key, pdf_id)
            if statuses[pdf_id] in ("done", "failed"):
                pending.discard(pdf_id)
        time.sleep(0.5)
    cpu_after = tree_cpu_seconds(args.pid) if args.pid else {}
    wall = time.monotonic() - started
    if pending:
        raise SystemExit(f"{len(pending)} not done after {args.timeout} s")

    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    rows = {
        subject: (parse(created), parse(jstart), parse(finished), pages)
        for subject, created, jstart, finished, pages in db.execute(
            "SELECT p.id, p.created_at, j.started_at, j.finished_at, p.page_count FROM pdfs p "
            "JOIN jobs j ON j.subject = p.id AND j.kind = 'process_pdf'"
        )
    }
    report: dict[str, object] = {"offered_per_s": args.rate, "uploads": len(uploaded), "wall_s": round(wall, 1)}
    for kind in ("born", "scan"):
        ids = [pdf_id for k, pdf_id in uploaded if k == kind]
        if not ids:
            continue
        delay = [(rows[i][2] - rows[i][0]).total_seconds() for i in ids]
        wait = [(rows[i][1] - rows[i][0]).total_seconds() for i in ids]
        work = [(rows[i][2] - rows[i][1]).total_seconds() for i in ids]
        report[kind] = {
            "n": len(ids), "failed": sum(statuses[i] != "done" for i in ids),
            "delay_p50_s": round(pct(delay, 0.5), 3), "delay_p99_s": round(pct(delay, 0.99), 3), "delay_max_s": round(max(delay), 3),
            "queue_wait_p50_s": round(pct(wait, 0.5), 3), "run_p50_s": round(pct(work, 0.5), 3), "run_p99_s": round(pct(work, 0.99), 3),
        }  # fmt: skip
    ours = [rows[i] for _, i in uploaded]
    span = (max(r[2] for r in ours) - min(r[1] for r in ours)).total_seconds()
    busy = sum((r[2] - r[1]).total_seconds() for r in ours)
    pages = sum(r[3] or 0 for r in ours)
    report["pages"] = pages
    report["pages_per_s_over_span"] = round(pages / span, 2)  # first job started to last job finished
    report["pages_per_s_while_busy"] = round(pages / busy, 2)  # summed job run times
    if args.pid:
        used = {pid: cpu_after.get(pid, 0.0) - cpu_before.get(pid, 0.0) for pid in cpu_after}
        report["server_cpu_pct_by_process"] = {
            f"{pid} {cmdline(pid)}": round(100 * used[pid] / wall, 1)
            for pid in sorted(used, key=lambda p: -used[p])
            if used[pid] > 0.05
        }
    report["load_after"] = open("/proc/loadavg").read().split()[:3]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
