"""A TCP proxy that cuts chosen connections: mid-request (after N bytes from the client) or at
the start of the response (the server did the work; the client never hears of it)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Cut:
    after_request_bytes: int | None = None  # close once the client sent this many bytes
    at_response: bool = False  # close when the server starts answering, forwarding nothing of it
    after_response_bytes: int | None = None  # close once this many bytes of the answer went through


class CutProxy:
    def __init__(self, target_port: int, plan: dict[int, Cut]) -> None:
        """`plan`: connection number (0 = the first accepted) -> how to cut it; others pass."""
        self.target = ("127.0.0.1", target_port)
        self.plan = plan
        self.cuts = 0
        self.sent_by_clients: list[bytearray] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        number = 0
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            cut = self.plan.get(number, Cut())
            record = bytearray()
            with self._lock:
                self.sent_by_clients.append(record)
            number += 1
            closed = threading.Event()
            threading.Thread(target=self._pipe, args=(client, upstream, cut.after_request_bytes, False, record, closed), daemon=True).start()
            response_limit = 0 if cut.at_response else cut.after_response_bytes
            threading.Thread(target=self._pipe, args=(upstream, client, response_limit, True, None, closed), daemon=True).start()

    def _pipe(
        self, source: socket.socket, sink: socket.socket, limit: int | None, is_response: bool, record: bytearray | None, closed: threading.Event
    ) -> None:
        passed = 0
        try:
            while data := source.recv(65536):
                if limit is not None and passed + len(data) >= limit:
                    sink.sendall(data[: max(0, limit - passed)])
                    with self._lock:
                        self.cuts += 1
                    break
                sink.sendall(data)
                passed += len(data)
                if record is not None and len(record) < 1 << 20:
                    record.extend(data[:4096])
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            closed.set()

    def close(self) -> None:
        self._listener.close()
