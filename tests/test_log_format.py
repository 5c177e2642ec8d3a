"""Logs of `patientpdf serve`: one readable line per request on a terminal, JSON lines
otherwise or when PATIENTPDF_LOG_FORMAT asks; the same secrecy in both."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backends import free_port
from conftest import SAMPLES
from served import CLI

# time, level, method, path, status, duration, request id (then key prefix, client)
TEXT_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<level>INFO|WARNING|ERROR) +(?P<method>[A-Z]+) (?P<path>\S+) "
    r"(?P<status>\d{3}) (?P<duration>\d+\.\d)ms id=(?P<request_id>\S+)( key=\S+)? client=\S+$"
)


class Serve:
    """`patientpdf serve` with stdout and stderr on a terminal (a pty) or a plain file."""

    def __init__(self, tmp_path: Path, terminal: bool, log_format: str | None = None) -> None:
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PATIENTPDF_DATA_DIR": str(data_dir)}
        if log_format is not None:
            env["PATIENTPDF_LOG_FORMAT"] = log_format
        demo = subprocess.run([CLI, "demo", "--json", "--base-url", self.base_url], env=env, capture_output=True, text=True)
        assert demo.returncode == 0, demo.stderr
        self.demo = json.loads(demo.stdout)
        self._chunks: list[bytes] = []
        self._reader: threading.Thread | None = None
        command = [CLI, "serve", "--port", str(self.port), "--workers", "2"]
        if terminal:
            master, slave = os.openpty()
            self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
            os.close(slave)
            # Drain the terminal all along: a full pty buffer would block the server's writes.
            self._reader = threading.Thread(target=self._drain, args=(master,), daemon=True)
            self._reader.start()
            self.log_file = None
        else:
            self.log_file = tmp_path / "serve.log"
            with open(self.log_file, "wb") as handle:
                self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=handle)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.base_url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.process.poll() is None and time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def _drain(self, master: int) -> None:
        try:
            while chunk := os.read(master, 65536):
                self._chunks.append(chunk)
        except OSError:  # EIO: every process holding the terminal has exited
            pass
        finally:
            os.close(master)

    def output(self) -> str:
        raw = self.log_file.read_bytes() if self.log_file else b"".join(self._chunks)
        return raw.decode("utf-8", errors="replace").replace("\r\n", "\n")

    def stop(self) -> str:
        """Stop the server; everything it wrote."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)
        return self.output()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[type[Serve]]:
    started: list[Serve] = []

    def start(terminal: bool, log_format: str | None = None) -> Serve:
        server = Serve(tmp_path, terminal, log_format)
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        server.stop()


def _traffic(server: Serve) -> dict[str, str]:
    """Requests whose log lines must show up, carrying secrets that must not; their request ids."""
    key = {"X-API-Key": server.demo["api_key"]}
    ids = {name: f"{name}-{secrets.token_hex(4)}" for name in ("list", "upload", "link", "refused", "injected")}
    with httpx.Client(base_url=server.base_url) as client:
        assert client.get("/patients", headers=key | {"X-Request-ID": ids["list"]}).status_code == 200
        upload = client.post(
            f"/patients/{server.demo['patient_id']}/pdf/",
            headers=key | {"X-Request-ID": ids["upload"]},
            files={"file": ("x.pdf", (SAMPLES / "valid.pdf").read_bytes())},
            data={"filename": "Jane Roe HIV results.pdf"},
        )
        assert upload.status_code == 201
        link = upload.json()["url"]
        assert httpx.get(link, headers={"X-Request-ID": ids["link"]}).status_code == 200
        wrong = {"X-API-Key": "ppk_" + "Leak" * 10, "X-Request-ID": ids["refused"]}
        assert client.get("/patients", headers=wrong).status_code == 401
        # a decoded path with a line break must not forge a second log line
        assert client.get("/x%0A2099-01-01T00:00:00.000Z INFO forged", headers={"X-Request-ID": ids["injected"]}).status_code == 404
    ids["signature"] = link.split("signature=")[1]
    return ids


def _assert_secrets_absent(output: str, server: Serve, ids: dict[str, str]) -> None:
    for secret in (server.demo["api_key"], "Leak" * 10, ids["signature"], "expires=", "Jane Roe", "HIV", "Demo Patient"):
        assert secret not in output, secret


def test_a_terminal_gets_one_readable_line_per_request(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(terminal=True)
    ids = _traffic(server)
    output = server.stop()
    lines = output.splitlines()
    assert not any(line.lstrip().startswith("{") for line in lines), output  # no JSON on a terminal
    by_id = {}
    for line in lines:
        match = TEXT_LINE.match(line)
        if match:
            by_id[match["request_id"]] = match
    expected = {"list": ("GET", "/patients", "200"), "upload": ("POST", f"/patients/{server.demo['patient_id']}/pdf/", "201")}
    expected |= {"refused": ("GET", "/patients", "401")}
    for name, (method, path, status) in expected.items():
        match = by_id.get(ids[name])
        assert match is not None, f"no line for {name} in:\n{output}"
        assert (match["level"], match["method"], match["path"], match["status"]) == ("INFO", method, path, status)
    link_line = by_id[ids["link"]]
    assert link_line["path"].startswith("/files/pdf_") and link_line["status"] == "200"
    assert by_id[ids["injected"]]["path"] == "/x%0A2099-01-01T00:00:00.000Z%20INFO%20forged"  # one token, as sent
    assert not any(line.startswith("2099-01-01") for line in lines)
    _assert_secrets_absent(output, server, ids)


def test_json_lines_when_asked_even_on_a_terminal(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(terminal=True, log_format="json")
    ids = _traffic(server)
    output = server.stop()
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = {record.get("request_id"): record for record in records if record["logger"] == "patientpdf.access"}
    assert access[ids["list"]]["path"] == "/patients" and access[ids["list"]]["status"] == 200
    assert access[ids["refused"]]["status"] == 401
    assert access[ids["injected"]]["path"].startswith("/x\n2099")  # JSON escapes it
    assert not any(TEXT_LINE.match(line) for line in output.splitlines())
    _assert_secrets_absent(output, server, ids)


def test_text_lines_when_asked_into_a_file(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(terminal=False, log_format="text")
    ids = _traffic(server)
    output = server.stop()
    matched = {m["request_id"] for m in map(TEXT_LINE.match, output.splitlines()) if m}
    assert {ids["list"], ids["upload"], ids["link"], ids["refused"], ids["injected"]} <= matched, output
    _assert_secrets_absent(output, server, ids)


def test_an_unknown_format_is_refused_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "PATIENTPDF_DATA_DIR": str(tmp_path), "PATIENTPDF_LOG_FORMAT": "yaml"}
    result = subprocess.run([CLI, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "log_format" in result.stderr.lower()
