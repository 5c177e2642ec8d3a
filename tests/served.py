"""`patientpdf serve` as a real process, for end-to-end tests."""

from __future__ import annotations

import contextlib

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from backends import free_port

CLI = str(Path(sys.executable).with_name("patientpdf"))


def curl(*args: str) -> str:
    return subprocess.run(["curl", "--silent", "--show-error", *args], capture_output=True, text=True, check=True).stdout


class Served:
    def __init__(self, data_dir: Path, workers: int, extra_env: dict[str, str], new_session: bool = False) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PATIENTPDF_DATA_DIR": str(data_dir), **extra_env}
        self.log_path = data_dir.parent / f"serve-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        demo = subprocess.run([CLI, "demo", "--json", "--base-url", self.base_url], env=self.env, capture_output=True, text=True)
        assert demo.returncode == 0, demo.stderr
        self.demo = json.loads(demo.stdout)
        self.log = open(self.log_path, "ab")
        # new_session: serve and everything it starts form a process group of their own (kill_group)
        self.process = subprocess.Popen(
            [CLI, "serve", "--port", str(self.port), "--workers", str(workers)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.base_url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.process.poll() is None and time.monotonic() < deadline, self.logs()
            time.sleep(0.1)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill_group(self) -> None:
        """SIGKILL to serve, its API workers, its job worker and their children at once: a crash."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is not None:  # killed by the test
            self.log.close()
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def listens_on(pid: int, port: int) -> bool:
    """The process holds a TCP socket listening on `port` (an API worker of serve)."""
    sockets = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                sockets.add(os.readlink(fd))
        table = Path(f"/proc/{pid}/net/tcp").read_text()
    except OSError:  # it exited meanwhile
        return False
    for line in table.splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port and f"socket:[{fields[9]}]" in sockets:
            return True
    return False


def children(pid: int) -> list[int]:
    """The process's children (of every thread of it)."""
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()]
