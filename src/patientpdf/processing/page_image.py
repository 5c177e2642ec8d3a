"""A page as a PNG for a person to look at (the console's viewer), rendered by PDFium in a
child process: `python -m patientpdf.processing.page_image MAX_MEMORY_BYTES`.

The child limits its own address space, reads one JSON request on stdin
({"path", "page", "width_px", "max_pixels", "max_pages"}) and writes the PNG to stdout; it
exits with EXIT_MEMORY when the page needs more memory than the limit and EXIT_NO_PAGE when
there is no such page or PDFium cannot open the file. The parent (services/viewing.py) starts
it without importing this package, so API processes never load the engines, and kills it at
the page time limit.
"""

from __future__ import annotations

import json
import math
import os
import resource
import struct
import sys
import zlib

EXIT_MEMORY = 3
EXIT_NO_PAGE = 4


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
        sys.exit(EXIT_NO_PAGE)
    number = int(str(request["page"]))
    if not 1 <= number <= min(len(doc), int(str(request["max_pages"]))):
        sys.exit(EXIT_NO_PAGE)
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
        return EXIT_MEMORY
    out.write(image)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
