"""What extraction returns, the limits it runs under, and the one error it raises.

Coordinates are PDF points with the origin at the top-left of the page as displayed (after
/Rotate and the CropBox); x1,y1 is a word's top-left corner and x2,y2 its bottom-right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

Source = Literal["text", "ocr", "none"]
SOURCES: tuple[Source, ...] = ("text", "ocr", "none")

# Stable codes of ExtractionFailed (the jobs table and the API show them to clients).
PDF_UNREADABLE = "pdf_unreadable"  # PDFium cannot open the file (damaged, not a PDF)
PDF_ENCRYPTED = "pdf_encrypted"  # it needs a password to open
TOO_MANY_PAGES = "too_many_pages"  # page count over ExtractionLimits.max_pages
MEMORY_LIMIT = "memory_limit"  # the child ran out of its address-space limit before any page was done
TIMEOUT = "timeout"  # the per-page or total time limit ran out before any page was done
ENGINE_CRASHED = "engine_crashed"  # the child died (signal, abort) before any page was done
ENGINE_UNAVAILABLE = "engine_unavailable"  # the child could not start or the OCR data is missing
ERROR_CODES = (PDF_UNREADABLE, PDF_ENCRYPTED, TOO_MANY_PAGES, MEMORY_LIMIT, TIMEOUT, ENGINE_CRASHED, ENGINE_UNAVAILABLE)


class ExtractionFailed(Exception):
    """Extraction produced nothing usable. `code` is one of ERROR_CODES; `detail` says why, without file names."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    def __reduce__(self) -> tuple[type[ExtractionFailed], tuple[str, str]]:
        return (ExtractionFailed, (self.code, self.detail))


@dataclass(frozen=True)
class ExtractionLimits:
    max_pages: int = 2000
    page_timeout_seconds: float = 60.0
    total_timeout_seconds: float = 900.0
    max_memory_bytes: int = 1 << 30  # the child's address space (RLIMIT_AS)
    nice: int = 0  # the child's CPU niceness (19: only the CPU that everything else leaves)
    dpi: int = 300  # OCR render resolution, at most 300
    max_pixels: int = 25_000_000  # per rendered page; the dpi is lowered to stay under it
    text_threshold: int = 10  # letters/digits a page's text layer needs to be used instead of OCR
    # A page mostly covered by an image (a scan with a fax header or a stamp as text) needs
    # this many letters/digits in its text layer before the layer is trusted over OCR.
    image_text_threshold: int = 200

    def __post_init__(self) -> None:
        if self.max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        if self.page_timeout_seconds <= 0 or self.total_timeout_seconds <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_memory_bytes < 64 << 20:
            raise ValueError("max_memory_bytes must be at least 64 MiB")
        if not 0 <= self.nice <= 19:
            raise ValueError("nice must be between 0 and 19")
        if not 50 <= self.dpi <= 300:
            raise ValueError("dpi must be between 50 and 300")
        if self.max_pixels < 1_000_000:
            raise ValueError("max_pixels must be at least 1,000,000")
        if self.text_threshold < 1 or self.image_text_threshold < self.text_threshold:
            raise ValueError("text_threshold must be at least 1 and image_text_threshold at least text_threshold")

    def to_json(self) -> dict[str, Any]:
        return {
            "max_pages": self.max_pages,
            "page_timeout_seconds": self.page_timeout_seconds,
            "total_timeout_seconds": self.total_timeout_seconds,
            "max_memory_bytes": self.max_memory_bytes,
            "nice": self.nice,
            "dpi": self.dpi,
            "max_pixels": self.max_pixels,
            "text_threshold": self.text_threshold,
            "image_text_threshold": self.image_text_threshold,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExtractionLimits:
        return cls(
            max_pages=int(data["max_pages"]),
            page_timeout_seconds=float(data["page_timeout_seconds"]),
            total_timeout_seconds=float(data["total_timeout_seconds"]),
            max_memory_bytes=int(data["max_memory_bytes"]),
            nice=int(data.get("nice", 0)),
            dpi=int(data["dpi"]),
            max_pixels=int(data["max_pixels"]),
            text_threshold=int(data["text_threshold"]),
            image_text_threshold=int(data["image_text_threshold"]),
        )


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    x1: float
    y1: float
    x2: float
    y2: float
    confidence: float | None  # Tesseract's 0-100 for OCR words, None for text-layer words

    def to_json(self) -> list[Any]:
        conf = None if self.confidence is None else round(self.confidence, 1)
        return [self.text, _r(self.x1), _r(self.y1), _r(self.x2), _r(self.y2), conf]

    @classmethod
    def from_json(cls, data: list[Any]) -> Word:
        text, x1, y1, x2, y2, conf = data
        if type(text) is not str:
            raise ValueError("a word's text must be a string")
        return cls(text, float(x1), float(y1), float(x2), float(y2), None if conf is None else float(conf))


@dataclass(frozen=True)
class PageExtraction:
    page: int  # 1-based
    width: float  # as displayed, points
    height: float
    rotation: int  # the page's /Rotate, clockwise degrees (0, 90, 180, 270)
    source: Source  # "none": the page could not be extracted (DocumentExtraction.note says why)
    text: str
    words: tuple[Word, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "width": _r(self.width),
            "height": _r(self.height),
            "rotation": self.rotation,
            "source": self.source,
            "text": self.text,
            "words": [w.to_json() for w in self.words],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageExtraction:
        source = data["source"]
        if source not in SOURCES:
            raise ValueError(f"unknown page source {source!r}")
        return cls(
            page=int(data["page"]),
            width=float(data["width"]),
            height=float(data["height"]),
            rotation=int(data["rotation"]),
            source=cast(Source, source),
            text=str(data["text"]),
            words=tuple(Word.from_json(w) for w in data["words"]),
        )


@dataclass(frozen=True)
class DocumentExtraction:
    page_count: int  # pages in the document; len(pages) is smaller when complete is False
    pages: tuple[PageExtraction, ...]  # pages[i].page == i + 1
    engines: dict[str, str]
    complete: bool  # False when a limit stopped it or a page could not be read: `note` says which
    note: str | None

    @property
    def pages_ocr(self) -> int:
        return sum(1 for p in self.pages if p.source == "ocr")

    def to_json(self) -> dict[str, Any]:
        return {
            "page_count": self.page_count,
            "engines": dict(self.engines),
            "complete": self.complete,
            "note": self.note,
            "pages": [p.to_json() for p in self.pages],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DocumentExtraction:
        return cls(
            page_count=int(data["page_count"]),
            pages=tuple(PageExtraction.from_json(p) for p in data["pages"]),
            engines={str(k): str(v) for k, v in data["engines"].items()},
            complete=bool(data["complete"]),
            note=None if data.get("note") is None else str(data["note"]),
        )


def _r(value: float) -> float:
    return round(value, 1)
