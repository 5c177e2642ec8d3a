"""A TCP proxy the tests can switch off and on: a database or store that goes away and comes back."""

from __future__ import annotations

import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._serving = True
        self._cut_after: int | None = None  # bytes towards the target still allowed before a cut
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if not self._serving:
                    client.close()
                    continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections |= {client, upstream}
            for source, sink, towards_target in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(source, sink, towards_target), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, towards_target: bool) -> None:
        try:
            while data := source.recv(65536):
                if towards_target and self._count_towards_cut(len(data)):
                    self.down()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            with self._lock:
                self._connections -= {source, sink}

    def _count_towards_cut(self, size: int) -> bool:
        with self._lock:
            if self._cut_after is None:
                return False
            self._cut_after -= size
            if self._cut_after > 0:
                return False
            self._cut_after = None
            return True

    def cut_after(self, size: int) -> None:
        """Go down (as `down`) once `size` more bytes have gone towards the target: a store
        that dies in the middle of an upload."""
        with self._lock:
            self._cut_after = size

    def down(self) -> None:
        """Cut every open connection and refuse new ones (they are accepted, then closed)."""
        with self._lock:
            self._serving = False
            connections, self._connections = self._connections, set()
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def up(self) -> None:
        with self._lock:
            self._serving = True

    def close(self) -> None:
        self.down()
        self._listener.close()
