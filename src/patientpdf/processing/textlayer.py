"""A page's text layer through PDFium: its words with boxes in displayed coordinates.

The raw bindings are called directly with reused ctypes buffers: the helper methods allocate
per call, and a born-digital page has thousands of characters.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from .model import Word


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

    def box(self, left: float, bottom: float, right: float, top: float) -> tuple[float, float, float, float]:
        ax, ay = self.point(left, top)
        bx, by = self.point(right, bottom)
        return (
            _clamp(min(ax, bx), self.width),
            _clamp(min(ay, by), self.height),
            _clamp(max(ax, bx), self.width),
            _clamp(max(ay, by), self.height),
        )


def _clamp(value: float, limit: float) -> float:
    return 0.0 if value < 0.0 else limit if value > limit else value


@dataclass(frozen=True)
class TextLayer:
    text: str
    words: tuple[Word, ...]
    alnum: int  # letters and digits: how much real text the layer has


def _is_space(ch: str) -> bool:
    return ch.isspace() or ch == "\x00" or ch == "\ufffe"


def read_text_layer(textpage: pdfium.PdfTextPage, frame: PageFrame) -> TextLayer:
    raw = textpage.raw
    n = pdfium_c.FPDFText_CountChars(raw)
    if n <= 0:
        return TextLayer("", (), 0)
    chars = _page_chars(raw, n)
    rect = pdfium_c.FS_RECTF()
    rect_ref = ctypes.byref(rect)
    get_box = pdfium_c.FPDFText_GetLooseCharBox
    words: list[Word] = []
    i = 0
    while i < n:
        if _is_space(chars[i]):
            i += 1
            continue
        start = i
        while i < n and not _is_space(chars[i]):
            i += 1
        end = i - 1
        # Loose boxes (the font's ascent to descent) give a word one steady height; the union
        # of its first and last characters spans it, whatever direction the text runs.
        left = bottom = float("inf")
        right = top = float("-inf")
        for j in (start, end) if end != start else (start,):
            if get_box(raw, j, rect_ref):
                left = min(left, rect.left, rect.right)
                right = max(right, rect.left, rect.right)
                bottom = min(bottom, rect.bottom, rect.top)
                top = max(top, rect.bottom, rect.top)
        if left > right:
            continue  # PDFium has no box for it
        x1, y1, x2, y2 = frame.box(left, bottom, right, top)
        words.append(Word("".join(chars[start : end + 1]), x1, y1, x2, y2, None))
    text = "".join(chars).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    alnum = sum(1 for ch in chars if ch.isalnum())
    return TextLayer(text, tuple(words), alnum)


def _page_chars(raw: pdfium_c.FPDF_TEXTPAGE, n: int) -> list[str]:
    """One string per character index, so that words map back to character boxes."""
    buffer = (ctypes.c_ushort * (n + 1))()
    written = pdfium_c.FPDFText_GetText(raw, 0, n, buffer)
    if written == n + 1:  # one UTF-16 unit per character (no surrogates, nothing dropped or inserted)
        text = bytes(memoryview(buffer).cast("B")[: 2 * n]).decode("utf-16-le", errors="replace")
        if len(text) == n:
            return list(text)
    get_unicode = pdfium_c.FPDFText_GetUnicode
    out: list[str] = []
    for j in range(n):
        code = get_unicode(raw, j)
        out.append(chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else "\x00")
    return out


def image_coverage(page: pdfium.PdfPage, frame: PageFrame, max_objects: int = 2000) -> float:
    """Share of the page covered by images (top level, or inside a top-level form): a scan's tell."""
    raw = page.raw
    count = pdfium_c.FPDFPage_CountObjects(raw)
    if count <= 0:
        return 0.0
    area = (frame.right - frame.left) * (frame.top - frame.bottom)
    if area <= 0:
        return 0.0
    left, bottom, right, top = ctypes.c_float(), ctypes.c_float(), ctypes.c_float(), ctypes.c_float()
    covered = 0.0
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
        if w > 0 and h > 0:
            covered = max(covered, w * h / area)  # the largest image, not a sum of overlapping ones
    return covered


def _form_has_image(form: pdfium_c.FPDF_PAGEOBJECT) -> bool:
    count = pdfium_c.FPDFFormObj_CountObjects(form)
    for k in range(min(max(count, 0), 200)):
        obj = pdfium_c.FPDFFormObj_GetObject(form, k)
        if obj and pdfium_c.FPDFPageObj_GetType(obj) == pdfium_c.FPDF_PAGEOBJ_IMAGE:
            return True
    return False
