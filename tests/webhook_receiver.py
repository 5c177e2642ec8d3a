"""A webhook receiver as a real process, scripted per request, that verifies every delivery
with the reference verifier (the `standardwebhooks` package), not with our code.

    python tests/webhook_receiver.py --port P --log LOG --secret whsec_… [--secret …]
        [--script 500,500,500,200] [--tls CERT KEY]

Each delivery (webhook-id) follows the script, one action per attempt (after it: 200):
    200, 500, 410, …   answer with that status
    302:URL            a redirect to URL
    hang               never answer; note when the sender gives up and disconnects
    hold               write <LOG>.held-<n>, then wait for <LOG>.release-<n>: "drop" closes
                       the connection unanswered, a status answers with it (or the test kills
                       the process meanwhile: a receiver killed mid-delivery)

The log (JSON lines) gets a line when a request arrives (its headers, body, which secrets
verify it, the Host header and the TLS SNI) and one when it is answered (after the answer is
flushed) or abandoned. `<LOG>.ready` appears once the port listens.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, log: Path, secrets: list[str], script: list[str], tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.log_path, self.secrets, self.script = log, secrets, script
        self.lock = threading.Lock()
        self.count = 0
        self.per_delivery: dict[str | None, int] = {}
        self.sni: dict[tuple[str, int], str | None] = {}
        if tls is not None:
            tls.sni_callback = self._note_sni
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    def _note_sni(self, sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.sni[sock.getpeername()] = name  # type: ignore[union-attr]

    def next_action(self, webhook_id: str | None) -> tuple[int, str]:
        """The request's number, and the script's next action for this delivery (its webhook-id)."""
        with self.lock:
            n = self.count
            self.count += 1
            k = self.per_delivery.get(webhook_id, 0)
            self.per_delivery[webhook_id] = k + 1
        return n, self.script[k] if k < len(self.script) else "200"

    def write(self, record: dict[str, Any]) -> None:
        with self.lock, open(self.log_path, "a") as log:
            log.write(json.dumps(record) + "\n")
            log.flush()
            os.fsync(log.fileno())


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, *_args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        verified = []
        for secret in self.server.secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified.append(True)
            except WebhookVerificationError:
                verified.append(False)
        n, action = self.server.next_action(headers.get("webhook-id"))
        self.server.write(
            {
                "n": n, "event": "arrived", "action": action, "path": self.path, "host": headers.get("host"),
                "sni": self.server.sni.get(self.client_address), "webhook_id": headers.get("webhook-id"),
                "webhook_timestamp": headers.get("webhook-timestamp"), "webhook_signature": headers.get("webhook-signature"),
                "content_type": headers.get("content-type"), "body": body.decode(), "verified": verified,
            }
        )  # fmt: skip
        if action == "hang":
            self._wait_for_disconnect()
            self.server.write({"n": n, "event": "abandoned"})
            self.close_connection = True
            return
        if action == "hold":
            action = self._hold(n)
            if action == "drop":
                self.server.write({"n": n, "event": "dropped"})
                self.close_connection = True
                return
        status, location = (302, action[4:]) if action.startswith("302:") else (int(action), None)
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
        self.wfile.flush()
        self.server.write({"n": n, "event": "answered", "status": status})

    def _wait_for_disconnect(self) -> None:
        while True:
            readable, _, _ = select.select([self.connection], [], [], 0.2)
            if readable:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        return
                except OSError:
                    return

    def _hold(self, n: int) -> str:
        held = Path(f"{self.server.log_path}.held-{n}")
        held.write_text("held")
        release = Path(f"{self.server.log_path}.release-{n}")
        while not release.exists():
            time.sleep(0.05)
        return release.read_text().strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--script", default="")
    parser.add_argument("--tls", nargs=2, default=None)
    args = parser.parse_args()
    tls = None
    if args.tls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls[0], args.tls[1])
    script = [part for part in args.script.split(",") if part]
    server = Receiver(args.port, args.log, args.secret, script, tls)
    Path(f"{args.log}.ready").write_text(str(os.getpid()))
    server.serve_forever()


if __name__ == "__main__":
    main()
