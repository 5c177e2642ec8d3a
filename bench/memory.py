#!/usr/bin/env python3
"""Upload (and download) one large PDF through `patientpdf serve`; report time and the server's peak RSS.

    .venv/bin/python bench/memory.py                 # 500 MB, 2 workers
    .venv/bin/python bench/memory.py --sizes 1 10 100 1000

Test PDFs come from the shared harness's generator (../shared/bench/gen_pdfs.py: valid,
incompressible, deterministic). Peak RSS is each server process's VmHWM, reset through
/proc/PID/clear_refs just before the transfer; the figure is the largest process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_GEN = ROOT.parent / "shared" / "bench" / "gen_pdfs.py"
CLI = str(Path(sys.executable).with_name("patientpdf"))
MB = 10**6


def process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid] + [p for child in children for p in process_tree(int(child))]


def vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peaks(pids: list[int]) -> None:
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak(pids: list[int]) -> int:
    return max(vm(pid, "VmHWM") for pid in pids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[500], help="PDF sizes in MB")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8931)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="ppdf-bench-"))
    env = {
        **os.environ,
        "PATIENTPDF_DATA_DIR": str(scratch / "data"),
        "PATIENTPDF_MAX_UPLOAD_BYTES": str(max(args.sizes) * MB + 10 * MB),
        "PATIENTPDF_LOG_LEVEL": "WARNING",
    }
    base = f"http://127.0.0.1:{args.port}"
    demo = json.loads(subprocess.run([CLI, "demo", "--json", "--base-url", base], env=env, check=True, capture_output=True).stdout)
    server = subprocess.Popen([CLI, "serve", "--port", str(args.port), "--workers", str(args.workers)], env=env, stdout=subprocess.DEVNULL)
    rows = []
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/readyz")
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)  # let every worker finish importing
        pids = process_tree(server.pid)
        idle = max(vm(pid, "VmRSS") for pid in pids)
        for size in args.sizes:
            pdf = scratch / f"pdf_{size}m.pdf"
            subprocess.run([sys.executable, str(SHARED_GEN), "--size", str(size * MB), "--out", str(pdf)], check=True, capture_output=True)
            subprocess.run(["sync"], check=True)
            reset_peaks(pids)
            started = time.perf_counter()
            out = subprocess.run(
                ["curl", "-sS", "--fail-with-body", "-H", f"X-API-Key: {demo['api_key']}",
                 "-F", f"file=@{pdf}", "-F", "filename=big.pdf", f"{base}/patients/{demo['patient_id']}/pdf/"],
                check=True, capture_output=True,
            )  # fmt: skip
            upload_s = time.perf_counter() - started
            upload_peak = peak(pids)
            url = json.loads(out.stdout)["url"]
            reset_peaks(pids)
            started = time.perf_counter()
            subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", url], check=True)
            download_s = time.perf_counter() - started
            download_peak = peak(pids)
            # The second half by range, with the key (GET /pdfs/{id}/content): seek, then stream.
            half = pdf.stat().st_size // 2
            reset_peaks(pids)
            started = time.perf_counter()
            ranged = subprocess.run(
                ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                 "-H", f"X-API-Key: {demo['api_key']}", "-H", f"Range: bytes={half}-",
                 f"{base}/pdfs/{json.loads(out.stdout)['id']}/content"],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            range_s = time.perf_counter() - started
            range_peak = peak(pids)
            status, received = ranged.stdout.split()
            assert status == "206" and int(received) == pdf.stat().st_size - half, ranged.stdout
            rows.append(
                {
                    "size_mb": size,
                    "bytes": pdf.stat().st_size,
                    "upload_s": round(upload_s, 2),
                    "upload_mb_s": round(pdf.stat().st_size / MB / upload_s),
                    "upload_peak_rss_mb": round(upload_peak / MB),
                    "download_s": round(download_s, 2),
                    "download_mb_s": round(pdf.stat().st_size / MB / download_s),
                    "download_peak_rss_mb": round(download_peak / MB),
                    "range_mb_s": round(int(received) / MB / range_s),
                    "range_peak_rss_mb": round(range_peak / MB),
                }
            )
            pdf.unlink()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        subprocess.run(["rm", "-rf", str(scratch)], check=False)
    print(f"idle RSS of the largest server process: {idle / MB:.0f} MB ({args.workers} workers)")
    print(
        "| PDF | upload s | upload MB/s | peak RSS during upload | download s | download MB/s | peak RSS during download "
        "| second half by range, MB/s | peak RSS during range |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size_mb']} MB | {r['upload_s']} | {r['upload_mb_s']} | {r['upload_peak_rss_mb']} MB "
            f"| {r['download_s']} | {r['download_mb_s']} | {r['download_peak_rss_mb']} MB "
            f"| {r['range_mb_s']} | {r['range_peak_rss_mb']} MB |"
        )
    print("BENCHJSON " + json.dumps(rows))


if __name__ == "__main__":
    main()
