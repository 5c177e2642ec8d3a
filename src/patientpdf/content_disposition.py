"""`Content-Disposition: inline` for a stored file name (RFC 6266, RFC 5987)."""

from __future__ import annotations

from urllib.parse import quote


def inline_disposition(filename: str) -> str:
    """An ASCII fallback for old clients, and the exact name in `filename*`."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename)
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
