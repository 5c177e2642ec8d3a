"""A page's text layer through PDFium: its words with boxes in displayed coordinates.

The raw bindings are called directly with reused ctypes buffers: the helper methods allocate
per call, and a born-digital page has thousands of characters.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c



@dataclass(frozen=True)
class PageFrame:
    """Maps PDF user space to the page as displayed: CropBox ∩ MediaBox, then /Rotate, origin top-left."""

    left: float
    bottom: float
    right: float
    top: float
    rotation: int  # clockwise degrees

    @classmethod
    def of(cls, page: pdfium.PdfPage) -> PageFrame:
        left, bottom, right, top = page.get_bbox()
        rotation = page.get_rotation() % 360
        return cls(min(left, right), min(bottom, top), max(left, right), max(bottom, top), rotation)

    @property
    def width(self) -> float:
        w, h = self.right - self.left, self.top - self.bottom
        return h if self.rotation in (90, 270) else w

    @property
    def height(self) -> float:
        w, h = self.right - self.left, self.top - self.bottom
        return w if self.rotation in (90, 270) else h

    def point(self, x: float, y: float) -> tuple[float, float]:
        u, v = x - self.left, self.top - y  # unrotated, origin top-left
        if self.rotation == 90:
            return (self.top - self.bottom) - v, u
        if self.rotation == 180:
            return (self.right - self.left) - u, (self.top - self.bottom) - v
        if self.rotation == 270:
            return v, (self.right - self.left) - u
        return u, v

    def affine(self) -> tuple[float, float, float, float, float, float]:
        """(a, b, c, d, e, f) with point(x, y) == (a*x + b*y + c, d*x + e*y + f)."""
        c0, f0 = self.point(0.0, 0.0)
        cx, fx = self.point(1.0, 0.0)
        cy, fy = self.point(0.0, 1.0)
        return cx - c0, cy - c0, c0, fx - f0, fy - f0, f0


@dataclass(frozen=True)
class TextLayer:
    text: str
    words: list[str]
    boxes: list[int]  # x1, y1, x2, y2 per word, in tenths of a point
    alnum: int  # letters and digits: how much real text the layer has


# PDFium marks a hyphen that breaks a word at the end of a line as U+FFFE and runs the word on
# into the next line. It is shown, so it ends a word "con-" on one line; "sists" starts the next
# (as pdftotext and the page as displayed have it).
_WORD = re.compile(r"[^\s\x00\ufffe\uffff]+\ufffe?|\ufffe")
# FPDFText_GetLooseCharBox called through a plain prototype (addresses as integers): a page has
# hundreds of words, and the generated bindings' argument conversion costs more than the call.
_LOOSE_BOX = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)(
    ctypes.cast(pdfium_c.FPDFText_GetLooseCharBox, ctypes.c_void_p).value or 0
)


def read_text_layer(textpage: pdfium.PdfTextPage, frame: PageFrame) -> TextLayer:
    raw = textpage.raw
    n = pdfium_c.FPDFText_CountChars(raw)
    if n <= 0:
        return TextLayer("", [], [], 0)
    chars = _page_text(raw, n)  # one character per index of PDFium's character list
    rect = pdfium_c.FS_RECTF()  # left, top, right, bottom
    box = memoryview(rect).cast("B").cast("f")
    rect_address = ctypes.addressof(rect)
    page_address = ctypes.cast(raw, ctypes.c_void_p).value
    get_box = _LOOSE_BOX
    # User space to displayed space, in tenths of a point: x' = a*x + b*y + c, y' = d*x + e*y + f.
    a, b, c, d, e, f = (10.0 * k for k in frame.affine())
    width, height = round(frame.width * 10), round(frame.height * 10)
    words: list[str] = []
    boxes: list[int] = []
    add_word = words.append
    add_box = boxes.extend
    for match in _WORD.finditer(chars):
        start, end = match.span()
        # Loose boxes (the font's ascent to descent) give a word one steady height; the union
        # of its first and last characters spans it, whatever direction the text runs.
        if not get_box(page_address, start, rect_address):
            continue
        left, top, right, bottom = box
        if end - start > 1 and (get_box(page_address, end - 1, rect_address) or get_box(page_address, end - 2, rect_address)):
            l2, t2, r2, b2 = box
            left = l2 if l2 < left else left
            right = r2 if r2 > right else right
            top = t2 if t2 > top else top
            bottom = b2 if b2 < bottom else bottom
        xa, ya = round(a * left + b * top + c), round(d * left + e * top + f)
        xb, yb = round(a * right + b * bottom + c), round(d * right + e * bottom + f)
        x1, x2 = (xa, xb) if xa <= xb else (xb, xa)
        y1, y2 = (ya, yb) if ya <= yb else (yb, ya)
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            continue  # outside the CropBox: not displayed
        add_word(match.group().replace("\ufffe", "-"))
        add_box((x1 if x1 > 0 else 0, y1 if y1 > 0 else 0, x2 if x2 < width else width, y2 if y2 < height else height))
    text = chars.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").replace("\ufffe", "-\n")
    alnum = sum(map(str.isalnum, chars))
    return TextLayer(text, words, boxes, alnum)


def _page_text(raw: pdfium_c.FPDF_TEXTPAGE, n: int) -> str:
    """The page's text with exactly one character per index of PDFium's character list, so that
    a word's position in it is the index of its characters' boxes."""
    buffer = (ctypes.c_ushort * (n + 1))()
    written = pdfium_c.FPDFText_GetText(raw, 0, n, buffer)
    if written == n + 1:  # one UTF-16 unit per character: no surrogates, nothing dropped or inserted
        text = bytes(memoryview(buffer).cast("B")[: 2 * n]).decode("utf-16-le", errors="replace")
        if len(text) == n:
            return text
    get_unicode = pdfium_c.FPDFText_GetUnicode
    out: list[str] = []
    for j in range(n):
        code = get_unicode(raw, j)
        out.append(chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else "\x00")
    return "".join(out)


@dataclass(frozen=True)
class Images:
    coverage: float  # share of the page covered by its largest image: a scan's tell
    dpi: float | None  # that image's resolution as placed (the higher of its two axes), when known


def page_images(page: pdfium.PdfPage, frame: PageFrame, max_objects: int = 2000) -> Images:
    """The page's largest image, at the top level or inside a top-level form."""
    raw = page.raw
    count = pdfium_c.FPDFPage_CountObjects(raw)
    area = (frame.right - frame.left) * (frame.top - frame.bottom)
    if count <= 0 or area <= 0:
        return Images(0.0, None)
    left, bottom, right, top = ctypes.c_float(), ctypes.c_float(), ctypes.c_float(), ctypes.c_float()
    pixels_wide, pixels_high = ctypes.c_uint(), ctypes.c_uint()
    covered, dpi = 0.0, None
    for k in range(min(count, max_objects)):
        obj = pdfium_c.FPDFPage_GetObject(raw, k)
        if not obj:
            continue
        kind = pdfium_c.FPDFPageObj_GetType(obj)
        if kind == pdfium_c.FPDF_PAGEOBJ_FORM and not _form_has_image(obj):
            continue
        if kind not in (pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_FORM):
            continue
        if not pdfium_c.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
            continue
        w = min(right.value, frame.right) - max(left.value, frame.left)
        h = min(top.value, frame.top) - max(bottom.value, frame.bottom)
        if w <= 0 or h <= 0 or w * h / area <= covered:
            continue  # the largest image counts, not a sum of overlapping ones
        covered, dpi = w * h / area, None
        if kind == pdfium_c.FPDF_PAGEOBJ_IMAGE and pdfium_c.FPDFImageObj_GetImagePixelSize(obj, pixels_wide, pixels_high):
            placed_w, placed_h = right.value - left.value, top.value - bottom.value
            if placed_w > 0 and placed_h > 0:
                # either axis may carry the image's width, if it is placed turned
                a = max(pixels_wide.value / placed_w, pixels_high.value / placed_h)
                b = max(pixels_wide.value / placed_h, pixels_high.value / placed_w)
                dpi = 72.0 * min(a, b)
    return Images(covered, dpi)


def _form_has_image(form: pdfium_c.FPDF_PAGEOBJECT) -> bool:
    count = pdfium_c.FPDFFormObj_CountObjects(form)
    for k in range(min(max(count, 0), 200)):
        obj = pdfium_c.FPDFFormObj_GetObject(form, k)
        if obj and pdfium_c.FPDFPageObj_GetType(obj) == pdfium_c.FPDF_PAGEOBJ_IMAGE:
            return True
    return False
