"""A page as a PNG for a person to look at (the console's viewer), rendered by PDFium in a
child process under the extraction's limits, as every stored PDF is handled.

    render_png(path, page, width_px, limits) -> PNG bytes, or ExtractionFailed

The child is `python -m patientpdf.processing.page_image MAX_MEMORY_BYTES`: it limits its own
address space, reads one JSON request on stdin and writes the PNG to stdout. A page that
makes PDFium spin is killed at the page time limit; one that eats memory hits RLIMIT_AS.
"""

from __future__ import annotations

import json
import math
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from .model import ENGINE_CRASHED, MEMORY_LIMIT, PDF_UNREADABLE, TIMEOUT, ExtractionFailed, ExtractionLimits

# Starting Python and importing PDFium, on top of the page's own time limit (a busy machine).
STARTUP_SECONDS = 30.0
_EXIT_CODES = {3: (MEMORY_LIMIT, "the page needs more memory than the limit allows"), 4: (PDF_UNREADABLE, "no such page, or PDFium cannot open the file")}


def render_png(path: Path, page: int, width_px: int, limits: ExtractionLimits) -> bytes:
    """Page `page` (1-based) about `width_px` wide, never over `limits.max_pixels` pixels."""
    request = {"path": str(path), "page": page, "width_px": width_px, "max_pixels": limits.max_pixels, "max_pages": limits.max_pages}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "patientpdf.processing.page_image", str(limits.max_memory_bytes)],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=limits.page_timeout_seconds + STARTUP_SECONDS,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
            close_fds=True,
        )
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        raise ExtractionFailed(TIMEOUT, "rendering the page took longer than the page time limit") from None
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        code, detail = _EXIT_CODES.get(done.returncode, (ENGINE_CRASHED, "the renderer failed on this page"))
        raise ExtractionFailed(code, detail)
    return done.stdout


def png(pixels: bytes, width: int, height: int, stride: int) -> bytes:
    """8-bit RGB rows as a PNG (no Pillow needed: a PNG is three chunks)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row_bytes = width * 3
    raw = b"".join(b"\x00" + pixels[y * stride : y * stride + row_bytes] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def _render(request: dict[str, object]) -> bytes:
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(str(request["path"]))
    except pdfium.PdfiumError:
        sys.exit(4)
    number = int(str(request["page"]))
    if not 1 <= number <= min(len(doc), int(str(request["max_pages"]))):
        sys.exit(4)
    page = doc[number - 1]
    width, height = page.get_size()  # as displayed: PDFium applies /Rotate and the CropBox
    scale = int(str(request["width_px"])) / max(width, 1.0)
    max_pixels = int(str(request["max_pixels"]))
    if width * height * scale * scale > max_pixels:
        scale = math.sqrt(max_pixels / max(width * height, 1.0))
    while scale > 0.01 and math.ceil(width * scale) * math.ceil(height * scale) > max_pixels:
        scale *= 0.995  # the bitmap's sides are rounded up
    bitmap = page.render(scale=scale, rev_byteorder=True, draw_annots=True, may_draw_forms=False)
    try:
        return png(bytes(bitmap.buffer), bitmap.width, bitmap.height, bitmap.stride)
    finally:
        bitmap.close()


def main(argv: list[str]) -> int:
    max_memory = int(argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever PDFium prints is not the image
    try:
        image = _render(json.loads(sys.stdin.read()))
    except MemoryError:
        return 3
    out.write(image)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
