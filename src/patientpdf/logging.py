"""Logs on stderr: one readable line per request on a terminal, JSON lines otherwise
(`PATIENTPDF_LOG_FORMAT=auto|json|text`). Both render the same fields, and only these:
method, path (ids only), status, timings, request id, key prefix, client address, process id. Never
query strings (they carry link signatures), API keys, names or file names."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Literal, TextIO
from urllib.parse import quote

LogFormat = Literal["auto", "json", "text"]
_EXTRA_FIELDS = ("request_id", "method", "path", "status", "duration_ms", "key_prefix", "client")
ACCESS_LOGGER = "patientpdf.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which worker process: `serve` runs several
        }
        for name in _EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-11-30T06:14:20.608Z INFO    GET /patients 200 135.1ms id=… key=ppk_… client=127.0.0.1`"""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        head = f"{moment} {record.levelname:<7}"
        fields = {name: getattr(record, name, None) for name in _EXTRA_FIELDS}
        if record.name == ACCESS_LOGGER and fields["method"] is not None:
            # The path re-encoded, so it stays one token on one line whatever the client sent.
            path = quote(str(fields["path"]), safe="/:@!$&'()*+,;=-._~")
            line = f"{head} {_printable(fields['method'])} {path} {fields['status']} {float(fields['duration_ms'] or 0):.1f}ms"
            tail = [("id", fields["request_id"]), ("key", fields["key_prefix"]), ("client", fields["client"])]
        else:
            line = f"{head} {record.name}: {_printable(record.getMessage())}"
            tail = [("id", fields["request_id"])]
        line += "".join(f" {name}={_printable(value)}" for name, value in tail if value is not None)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _printable(value: object) -> str:
    """Control characters escaped: a value can never start a forged log line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(value))


def resolve_format(log_format: LogFormat, stream: TextIO) -> Literal["json", "text"]:
    if log_format != "auto":
        return log_format
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a replaced or closed stream
        return "json"


def configure_logging(level: str = "INFO", log_format: LogFormat = "auto") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if resolve_format(log_format, sys.stderr) == "text" else JsonFormatter())
    root = logging.getLogger()
    # Replace only a handler of ours (factory called again), never another's (pytest's capture).
    ours = (JsonFormatter, TextFormatter)
    root.handlers[:] = [h for h in root.handlers if not isinstance(h.formatter, ours)] + [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log prints the query string; ours (api/middleware.py) does not.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
