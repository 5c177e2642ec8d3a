#!/usr/bin/env python3
"""Server CPU per upload under load, by process and by thread, for A/B runs of builds.

    python3 bench/upload_cpu.py [--build NAME=SRC_DIR[,SETTING=VALUE...] ...] [--rounds 3] [--seconds 10]
                                [--connections 16] [--server uvicorn|granian] [--pdf PATH]
                                [--embedded-worker] [--py-spy DIR]

Each round starts every build in turn (`patientpdf serve`, 2 workers, a fresh SQLite +
local-disk data directory and the demo account, as bench/start_patientpdf.sh), warms it up,
then drives it with wrk and the shared harness's `loadgen/upload.lua` (100 KB PDF,
16 connections) and reads the CPU that every process and thread of the server used from
/proc. A build is a source folder put first on PYTHONPATH (a `git worktree` of another
commit), run with this checkout's .venv. Printed per run: req/s, p50/p99, CPU ms per upload
(user + system) of the API workers, split by thread (the event loop, the thread pool, the
group-commit writer), the job worker's share and the machine's idle time.

With `--py-spy DIR`, one API worker is also sampled by py-spy (`--gil --threads --native`
off by default: `--idle` is on, so waits show) and the flame graph is written to DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
HARNESS = Path(os.environ.get("PATIENTPDF_BENCH_DIR", "/tmp/ppdf-bench/shared"))
TICK = os.sysconf("SC_CLK_TCK")


def proc_children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out  # it exited meanwhile
    for task in tasks:
        try:
            out += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def tree(pid: int) -> list[int]:
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        pids.append(current)
        pending += proc_children(current)
    return pids


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def thread_cpu(pid: int) -> dict[int, tuple[str, float, float]]:
    """tid -> (comm, user s, system s) for every thread of the process (none if it is gone)."""
    threads: dict[int, tuple[str, float, float]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return threads
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        threads[int(task.name)] = (comm, int(fields[11]) / TICK, int(fields[12]) / TICK)
    return threads


def machine_idle() -> tuple[float, float]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[3] + fields[4], sum(fields)  # idle + iowait, total (in ticks)


def thread_kind(pid: int, tid: int, comm: str, names: dict[int, str]) -> str:
    name = names.get(tid, comm)
    if tid == pid:
        return "loop"
    if "group-commit" in name:
        return "group commit"
    if "spool" in name:
        return "spool writer"
    if "AnyIO" in name or "worker" in name.lower():
        return "thread pool"
    return "other"


def python_thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name, read with py-spy dump (if present)."""
    spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    if not Path(spy).exists():
        return {}
    try:
        out = subprocess.run([spy, "dump", "--json", "--pid", str(pid)], capture_output=True, text=True, timeout=30).stdout
        return {t["os_thread_id"]: t.get("thread_name") or "" for t in json.loads(out) if t.get("os_thread_id")}
    except (subprocess.SubprocessError, ValueError):
        return {}


class Server:
    def __init__(
        self, name: str, src: Path | None, server: str, embedded_worker: bool, port: int, extra_env: dict[str, str]
    ) -> None:
        self.name, self.src, self.port = name, src, port
        self.dir = Path(tempfile.mkdtemp(prefix=f"upload-cpu-{name}-"))
        env = dict(os.environ)
        env.update(
            PATIENTPDF_DATA_DIR=str(self.dir / "data"),
            PATIENTPDF_LOG_LEVEL="WARNING",
            PATIENTPDF_EMBEDDED_WORKER="true" if embedded_worker else "false",
        )
        if server:
            env["PATIENTPDF_SERVER"] = server
        if src is not None:
            env["PYTHONPATH"] = str(src)
        env.update(extra_env)
        self.env = env
        demo = subprocess.run(
            [str(VENV_BIN / "patientpdf"), "demo", "--json", "--base-url", f"http://127.0.0.1:{port}"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        info = json.loads(demo.stdout)
        self.key, self.patient = info["api_key"], info["patient_id"]
        self.process = subprocess.Popen(
            [str(VENV_BIN / "patientpdf"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            env=env, stdout=open(self.dir / "serve.log", "wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            log = (self.dir / "serve.log").read_text()[-2000:]
            self.stop()  # not left holding the port for the next run
            raise RuntimeError(f"{name} did not start: {log}")
        time.sleep(0.5)

    def api_workers(self) -> list[int]:
        for _ in range(50):  # a worker that is still starting has no listening socket yet
            workers = [pid for pid in proc_children(self.process.pid) if self.is_api(pid)]
            if len(workers) >= 2:
                return workers
            time.sleep(0.1)
        raise RuntimeError(f"found API workers {workers} under {self.process.pid}")

    def is_api(self, pid: int) -> bool:
        # multiprocessing's spawn children: API workers hold listening sockets on our port.
        return any(f":{self.port:04X}" in line for line in _tcp_listeners(pid))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _tcp_listeners(pid: int) -> list[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    lines = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            parts = line.split()
            if parts[9] in inodes and parts[3] == "0A":  # LISTEN
                lines.append(parts[1])
    return lines


def wrk(server: Server, seconds: float, connections: int, pdf: Path) -> dict[str, object]:
    url = f"http://127.0.0.1:{server.port}/patients/{server.patient}/pdf/"
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "60s", "--latency",
         "-s", str(HARNESS / "loadgen" / "upload.lua"), url, "--", str(pdf), server.key],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    result: dict[str, object] = json.loads(line[8:])
    return result


def measure(server: Server, seconds: float, connections: int, pdf: Path, spy_dir: Path | None) -> dict[str, object]:
    wrk(server, 2, connections, pdf)  # warm: pools, caches, the first batch of threads
    workers = server.api_workers()
    everything = tree(server.process.pid)
    names: dict[int, str] = {}
    for pid in workers:
        names |= python_thread_names(pid)
    before = {pid: thread_cpu(pid) for pid in everything}
    idle0, total0 = machine_idle()
    spy = None
    if spy_dir is not None:
        spy_dir.mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen(
            [str(VENV_BIN / "py-spy"), "record", "--pid", str(workers[0]), "--duration", str(int(seconds)), *(["--idle"] if os.environ.get("SPY_IDLE") else []),
             "--threads", "--rate", "250", *(["--gil"] if os.environ.get("SPY_GIL") else []), "--format", "raw", "--output", str(spy_dir / f"{server.name}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    result = wrk(server, seconds, connections, pdf)
    idle1, total1 = machine_idle()
    after = {pid: thread_cpu(pid) for pid in everything if Path(f"/proc/{pid}").exists()}
    if spy is not None:
        spy.wait()
    ok = sum(v for k, v in result["status"].items() if k.startswith("2"))  # type: ignore[attr-defined]
    by_kind: dict[str, float] = {}
    api_user = api_sys = other = 0.0
    for pid, threads in after.items():
        for tid, (comm, user, system) in threads.items():
            _, user0, sys0 = before.get(pid, {}).get(tid, (comm, 0.0, 0.0))
            du, ds = user - user0, system - sys0
            if pid in workers:
                api_user, api_sys = api_user + du, api_sys + ds
                kind = thread_kind(pid, tid, comm, names)
                by_kind[kind] = by_kind.get(kind, 0.0) + du + ds
            else:
                other += du + ds
    per = 1000 / max(ok, 1)
    cores = os.cpu_count() or 1
    return {
        "ok": ok,
        "errors": int(result["requests"]) - ok,  # type: ignore[call-overload]
        "rps": ok / (int(result["duration_us"]) / 1e6),  # type: ignore[call-overload]
        "p50_ms": int(result["lat_p50_us"]) / 1000,  # type: ignore[call-overload]
        "p99_ms": int(result["lat_p99_us"]) / 1000,  # type: ignore[call-overload]
        "user_ms": api_user * per,
        "sys_ms": api_sys * per,
        "cpu_ms": (api_user + api_sys) * per,
        "threads_ms": {kind: value * per for kind, value in sorted(by_kind.items())},
        "rest_of_tree_ms": other * per,
        "machine_idle_cores": cores * (idle1 - idle0) / max(total1 - total0, 1),
    }


def parse_build(spec: str) -> tuple[str, Path | None, dict[str, str]]:
    """NAME=SRC_DIR[,KEY=VALUE...]: a source folder and settings of its own (SRC_DIR "." is this checkout)."""
    name, rest = spec.split("=", 1)
    src, *settings = rest.split(",")
    env = dict(setting.split("=", 1) for setting in settings)
    return name, (None if src == "." else Path(src).resolve()), env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="append", default=[], help="NAME=SRC_DIR[,KEY=VALUE...] (default: this checkout)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--server", default="", help="granian or uvicorn (default: serve's default)")
    parser.add_argument("--pdf", type=Path, default=HARNESS / "data" / "pdf_100k.pdf")
    parser.add_argument("--embedded-worker", action="store_true")
    parser.add_argument("--py-spy", type=Path, default=None, help="write py-spy samples of one API worker here")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    builds = [parse_build(spec) for spec in args.build] or [("this", None, {})]
    runs: dict[str, list[dict[str, object]]] = {name: [] for name, _, _ in builds}
    print(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} load={Path('/proc/loadavg').read_text().split()[:3]} "
          f"server={args.server} c={args.connections} {args.seconds:g}s pdf={args.pdf.name}", flush=True)  # fmt: skip
    for round_no in range(1, args.rounds + 1):
        for name, src, env in builds:
            server = Server(name, src, args.server, args.embedded_worker, 8097, env)
            try:
                run = measure(server, args.seconds, args.connections, args.pdf, args.py_spy)
            finally:
                server.stop()
            runs[name].append(run)
            threads = " ".join(f"{k}={v:.2f}" for k, v in run["threads_ms"].items())  # type: ignore[attr-defined]
            print(
                f"r{round_no} {name:>10}: {run['rps']:7.1f} req/s p50 {run['p50_ms']:5.1f} p99 {run['p99_ms']:6.1f} ms | "
                f"CPU/upload {run['cpu_ms']:.2f} ms (user {run['user_ms']:.2f} sys {run['sys_ms']:.2f}) [{threads}] "
                f"rest {run['rest_of_tree_ms']:.2f} | idle {run['machine_idle_cores']:.2f} cores | errors {run['errors']}",
                flush=True,
            )
    print("# medians")
    for name, values in runs.items():
        med = {key: statistics.median(float(v[key]) for v in values) for key in ("rps", "p99_ms", "cpu_ms", "user_ms", "sys_ms", "machine_idle_cores")}  # type: ignore[arg-type]
        print(f"{name:>10}: {med['rps']:7.1f} req/s p99 {med['p99_ms']:6.1f} ms CPU/upload {med['cpu_ms']:.2f} ms "
              f"(user {med['user_ms']:.2f} sys {med['sys_ms']:.2f}) idle {med['machine_idle_cores']:.2f} cores")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    sys.exit(main())
