"""PDFs made for the extraction tests: born-digital pages with known words, scans made from
known text (Pillow renders it, the image is wrapped as an image-only PDF), and hostile files.

The raw writer builds files byte by byte where pikepdf would be slow (20,000 pages) or would
refuse (nesting deeper than its parser allows).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import pikepdf
from PIL import Image, ImageDraw, ImageFont


@dataclass(frozen=True)
class PlacedWord:
    text: str
    x1: float  # points, top-left origin of the page as displayed
    y1: float
    x2: float
    y2: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2


def _helvetica(pdf: pikepdf.Pdf) -> pikepdf.Object:
    return pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica)
    )


def text_page(
    pdf: pikepdf.Pdf,
    lines: list[tuple[str, float, float, float]],
    *,
    mediabox: tuple[float, float, float, float] = (0, 0, 612, 792),
    cropbox: tuple[float, float, float, float] | None = None,
    rotate: int = 0,
) -> None:
    """A born-digital page: each line is (text, x, baseline y, font size) in PDF user space."""
    ops = [b"BT"]
    for text, x, y, size in lines:
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"/F1 {size:g} Tf 1 0 0 1 {x:g} {y:g} Tm ({escaped}) Tj".encode())
    ops.append(b"ET")
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page,
        MediaBox=list(mediabox),
        Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=_helvetica(pdf))),
        Contents=pdf.make_indirect(pikepdf.Stream(pdf, b"\n".join(ops))),
    )
    if cropbox is not None:
        page.CropBox = list(cropbox)
    if rotate:
        page.Rotate = rotate
    pdf.pages.append(pikepdf.Page(page))


def scan_image(lines: list[str], dpi: int, *, size: float = 12.0, margin: float = 72.0) -> tuple[Image.Image, list[PlacedWord]]:
    """A letter-size page image at `dpi` with the lines typed on it, and where each word is (points)."""
    scale = dpi / 72.0
    width, height = round(612 * scale), round(792 * scale)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=round(size * scale))
    space = draw.textlength(" ", font=font)
    words: list[PlacedWord] = []
    y = margin * scale
    for line in lines:
        x = margin * scale
        for word in line.split():
            left, top, right, bottom = draw.textbbox((x, y), word, font=font)
            draw.text((x, y), word, font=font, fill=0)
            words.append(PlacedWord(word, left / scale, top / scale, right / scale, bottom / scale))
            x += draw.textlength(word, font=font) + space
        y += size * 1.6 * scale
    return image, words


def skewed(image: Image.Image, placed: list[PlacedWord], degrees: float) -> tuple[Image.Image, list[PlacedWord]]:
    """The scan turned `degrees` counter-clockwise about its centre, as a sheet fed askew, and
    where each word's centre went (as a zero-size box)."""
    import math

    turned = image.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=255)
    scale = image.width / 612.0
    cx, cy = image.width / 2 / scale, image.height / 2 / scale
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    moved = []
    for word in placed:
        dx, dy = word.centre[0] - cx, word.centre[1] - cy
        x, y = cx + c * dx + s * dy, cy - s * dx + c * dy
        moved.append(PlacedWord(word.text, x, y, x, y))
    return turned, moved


def image_page(pdf: pikepdf.Pdf, image: Image.Image, dpi: int, *, rotate: int = 0, header: str | None = None) -> None:
    """An image-only page showing `image` at `dpi` (the image is stored as is: with rotate=90 it must
    already be turned 90° counter-clockwise so the page displays upright). `header` adds a line of
    real text at the top, as fax machines print theirs."""
    grey = image.convert("L")
    width_pt, height_pt = grey.width * 72.0 / dpi, grey.height * 72.0 / dpi
    xobject = pikepdf.Stream(pdf, zlib.compress(grey.tobytes()))
    xobject.Type = pikepdf.Name.XObject
    xobject.Subtype = pikepdf.Name.Image
    xobject.Width, xobject.Height = grey.width, grey.height
    xobject.ColorSpace = pikepdf.Name.DeviceGray
    xobject.BitsPerComponent = 8
    xobject.Filter = pikepdf.Name.FlateDecode
    content = f"q {width_pt:g} 0 0 {height_pt:g} 0 0 cm /Im0 Do Q".encode()
    resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=pdf.make_indirect(xobject)))
    if header is not None:
        resources.Font = pikepdf.Dictionary(F1=_helvetica(pdf))
        content += f"\nBT /F1 8 Tf 20 {height_pt - 12:g} Td ({header}) Tj ET".encode()
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page,
        MediaBox=[0, 0, width_pt, height_pt],
        Resources=resources,
        Contents=pdf.make_indirect(pikepdf.Stream(pdf, content)),
    )
    if rotate:
        page.Rotate = rotate
    pdf.pages.append(pikepdf.Page(page))


def save(pdf: pikepdf.Pdf, path: Path) -> Path:
    pdf.save(path)
    return path


# --- hostile files -------------------------------------------------------------------------


def write_raw_pdf(path: Path, objects: list[bytes]) -> Path:
    """Objects 1..n, the first being the catalog, with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path


def raw_stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def many_pages(path: Path, count: int) -> Path:
    kids = b" ".join(b"%d 0 R" % (n + 4) for n in range(count))
    objects = [CATALOG, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count), raw_stream(b"BT /F1 12 Tf 72 720 Td (x) Tj ET")]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>"] * count
    return write_raw_pdf(path, objects)


def flate_bomb(path: Path, gigabytes: int) -> Path:
    """One page whose content stream inflates to `gigabytes` GiB of spaces from about 1 MB per GiB.

    One 16 MiB block is compressed once, after a full flush so that it stands alone, and repeated:
    building the file takes milliseconds instead of compressing gigabytes."""
    block = b" " * (16 << 20)
    compressor = zlib.compressobj(9)
    head = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = head + repeated * (gigabytes * 64 - 1) + compressor.flush()
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>"
    objects = [CATALOG, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", page, raw_stream(data, b"/Filter /FlateDecode")]
    return write_raw_pdf(path, objects)


def deeply_nested(path: Path, depth: int, words: str) -> Path:
    """Arrays and dictionaries nested `depth` deep in the page's resources, in an object of its own
    and in its content stream, around a line of real text."""
    text = f"BT /F1 24 Tf 72 700 Td ({words}) Tj ET".encode()
    arrays = b"[" * depth + b"]" * depth
    dicts = b"<< /A " * depth + b"1" + b" >>" * depth
    content = text + b"\n" + arrays + b" pop\n" + b"<<" * depth + b">>" * depth + b"\n"
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /X 6 0 R"
        b" /Resources << /Font << /F1 5 0 R >> /Nest " + dicts + b" >> >>"
    )
    objects = [CATALOG, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", page, raw_stream(content), HELVETICA, arrays]
    return write_raw_pdf(path, objects)


def spinning_page_pdf(pdf: pikepdf.Pdf, operations: int = 2000) -> None:
    """A page whose whole area is a function-based shading computed by a PostScript calculator
    function of `operations` steps: PDFium evaluates it for every pixel, so rendering it at
    OCR resolution runs for hours. It has no text, so extraction must render it."""
    function = pikepdf.Stream(pdf, b"{ " + b"dup sin pop " * operations + b"pop }")
    function.FunctionType = 4
    function.Domain = [0, 1, 0, 1]
    function.Range = [0, 1]
    shading = pikepdf.Dictionary(
        ShadingType=1, ColorSpace=pikepdf.Name.DeviceGray, Domain=[0, 1, 0, 1], Function=pdf.make_indirect(function)
    )
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page,
        MediaBox=[0, 0, 612, 792],
        Resources=pikepdf.Dictionary(Shading=pikepdf.Dictionary(Sh0=pdf.make_indirect(shading))),
        Contents=pdf.make_indirect(pikepdf.Stream(pdf, b"q 612 0 0 792 0 0 cm /Sh0 sh Q")),
    )
    pdf.pages.append(pikepdf.Page(page))
