"""What the webhook tests share: receiver processes (tests/webhook_receiver.py), settings that
let deliveries reach 127.0.0.1 with a shrunken schedule, reading deliveries, running them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import LiveServer, Tenant
from patientpdf.db.jobs import DELIVER_WEBHOOK
from patientpdf.jobs import HANDLERS, Worker
from processing_helpers import wait_until

RECEIVER = str(Path(__file__).with_name("webhook_receiver.py"))
# 127.0.0.1 may receive over HTTP; the Standard Webhooks schedule shrunk 5000 times
# (1 ms, 60 ms, 360 ms, 1.4 s, 3.6 s, 7.2 s, 7.2 s); an attempt times out after 2 s.
WEBHOOK_SETTINGS: dict[str, Any] = {"webhook_allowed_hosts": "127.0.0.1", "webhook_retry_scale": 0.0002, "webhook_timeout_seconds": 2}


@dataclass
class Receiver:
    port: int
    log: Path
    process: subprocess.Popen[bytes]
    secrets: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def arrivals(self) -> list[dict[str, Any]]:
        return [record for record in self.records() if record["event"] == "arrived"]

    def by_delivery(self) -> dict[str, list[dict[str, Any]]]:
        """Each webhook-id's requests in order, each with its outcome (`status` if answered)."""
        outcomes = {record["n"]: record for record in self.records() if record["event"] != "arrived"}
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for arrival in self.arrivals():
            outcome = outcomes.get(arrival["n"], {})
            found[arrival["webhook_id"]].append(arrival | {"outcome": outcome.get("event"), "status": outcome.get("status")})
        return dict(found)

    def accepted(self) -> list[dict[str, Any]]:
        """Requests the receiver answered with a 2xx: the deliveries it acted on."""
        return [request for requests in self.by_delivery().values() for request in requests if request["status"] and request["status"] < 300]

    def wait_held(self, n: int) -> None:
        wait_until(lambda: Path(f"{self.log}.held-{n}").exists(), f"the receiver holds request {n}")

    def release(self, n: int, what: str) -> None:
        Path(f"{self.log}.release-{n}").write_text(what)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process.wait()


class Receivers:
    """Starts receiver processes for a test and stops them all at its end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[Receiver] = []

    def start(self, secrets: list[str], script: str = "", port: int | None = None, name: str | None = None, tls: tuple[Path, Path] | None = None) -> Receiver:
        from backends import free_port

        port = port or free_port()
        log = self.directory / f"{name or 'receiver'}-{port}-{len(self.started)}.jsonl"
        args = [sys.executable, RECEIVER, "--port", str(port), "--log", str(log), "--script", script]
        for secret in secrets:
            args += ["--secret", secret]
        if tls is not None:
            args += ["--tls", str(tls[0]), str(tls[1])]
        output = open(self.directory / f"{log.name}.out", "ab")
        try:
            process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
        finally:
            output.close()
        receiver = Receiver(port=port, log=log, process=process, secrets=secrets)
        self.started.append(receiver)
        wait_until(lambda: Path(f"{log}.ready").exists() or process.poll() is not None, "the receiver listens")
        assert process.poll() is None, (self.directory / f"{log.name}.out").read_text()
        return receiver

    def stop_all(self) -> None:
        for receiver in self.started:
            for path in self.directory.glob(f"{receiver.log.name}.held-*"):  # let held requests end
                n = path.name.rsplit("-", 1)[1]
                release = Path(f"{receiver.log}.release-{n}")
                if not release.exists():
                    release.write_text("drop")
            receiver.stop()


def receivers_fixture(tmp_path: Path) -> Iterator[Receivers]:
    receivers = Receivers(tmp_path)
    yield receivers
    receivers.stop_all()


def register(server: LiveServer, tenant: Tenant, url: str, events: list[str]) -> dict[str, Any]:
    response = server.client.post("/webhooks", headers=tenant.headers, json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    return dict(response.json())


def deliveries(server: LiveServer, tenant: Tenant, webhook_id: int, **params: Any) -> list[dict[str, Any]]:
    response = server.client.get(f"/webhooks/{webhook_id}/deliveries", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


def delivery(server: LiveServer, tenant: Tenant, webhook_id: int, delivery_id: str) -> dict[str, Any]:
    response = server.client.get(f"/webhooks/{webhook_id}/deliveries/{delivery_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def settled(server: LiveServer, tenant: Tenant, webhook_id: int, count: int) -> bool:
    """`count` deliveries, none of them pending any more."""
    found = deliveries(server, tenant, webhook_id)
    return len(found) == count and all(item["status"] != "pending" for item in found)


def run_deliveries(server: LiveServer, until: Any, what: str) -> None:
    """The real worker, here, running only deliveries (and their retries) until `until()` holds."""
    worker = Worker(server.context, {DELIVER_WEBHOOK: HANDLERS[DELIVER_WEBHOOK]})

    def step() -> bool:
        worker.run_one()
        return bool(until())

    wait_until(step, what, timeout=120)


class Listener:
    """A socket that listens and never accepts: any connection made to it waits in its backlog."""

    def __init__(self, family: int = socket.AF_INET, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])

    def connections(self) -> int:
        """Connections made to it so far (each taken from the backlog and closed)."""
        seen = 0
        while True:
            try:
                connection, _ = self.sock.accept()
            except BlockingIOError:
                return seen
            connection.close()
            seen += 1

    def close(self) -> None:
        self.sock.close()
