"""A page's words as the engine produces them and as the child sends them to the parent.

Coordinates travel as integers (tenths of a point) packed into base64, words as one string:
a born-digital page has hundreds of words, and parsing them as nested JSON lists cost more
than extracting them. It stays JSON (never pickle): the child parses hostile files, so what it
sends is data the parent checks, never code it could run.
"""

from __future__ import annotations

import base64
from array import array
from dataclasses import dataclass
from typing import Any

from .model import SOURCES, PageExtraction, Source, Word


@dataclass(frozen=True)
class PageData:
    page: int
    width: float
    height: float
    rotation: int
    source: Source
    text: str
    words: list[str]  # none contains a newline
    boxes: array[int]  # x1, y1, x2, y2 per word, tenths of a point
    confidences: array[int] | None  # tenths, per word; None for the text layer

    def to_wire(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "width": self.width,
            "height": self.height,
            "rotation": self.rotation,
            "source": self.source,
            "text": self.text,
            "words": "\n".join(self.words),
            "boxes": base64.b64encode(self.boxes.tobytes()).decode("ascii"),
            "confidences": None if self.confidences is None else base64.b64encode(self.confidences.tobytes()).decode("ascii"),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> PageData:
        source = data["source"]
        if source not in SOURCES:
            raise ValueError(f"unknown page source {source!r}")
        words = data["words"].split("\n") if data["words"] else []
        boxes = array("i")
        boxes.frombytes(base64.b64decode(data["boxes"]))
        confidences = None
        if data["confidences"] is not None:
            confidences = array("h")
            confidences.frombytes(base64.b64decode(data["confidences"]))
        if len(boxes) != 4 * len(words) or (confidences is not None and len(confidences) != len(words)):
            raise ValueError("a page's words, boxes and confidences do not match")
        return cls(
            int(data["page"]), float(data["width"]), float(data["height"]), int(data["rotation"]),
            source, str(data["text"]), words, boxes, confidences,
        )  # fmt: skip

    def extraction(self) -> PageExtraction:
        b = self.boxes
        c = self.confidences
        words = tuple(
            _word(text, b[4 * k] / 10, b[4 * k + 1] / 10, b[4 * k + 2] / 10, b[4 * k + 3] / 10, None if c is None else c[k] / 10)
            for k, text in enumerate(self.words)
        )
        return PageExtraction(self.page, self.width, self.height, self.rotation, self.source, self.text, words)


_new = object.__new__
_SET = tuple(getattr(Word, name).__set__ for name in ("text", "x1", "y1", "x2", "y2", "confidence"))


def _word(text: str, x1: float, y1: float, x2: float, y2: float, confidence: float | None) -> Word:
    """Word(...) through its slots: a frozen dataclass's __init__ goes through object.__setattr__
    field by field, which costs twice as much, and a page has hundreds of words."""
    word: Word = _new(Word)
    set_text, set_x1, set_y1, set_x2, set_y2, set_confidence = _SET
    set_text(word, text)
    set_x1(word, x1)
    set_y1(word, y1)
    set_x2(word, x2)
    set_y2(word, y2)
    set_confidence(word, confidence)
    return word


def page_data(
    page: int, width: float, height: float, rotation: int, source: Source, text: str,
    words: list[str], boxes: list[int], confidences: list[int] | None,
) -> PageData:  # fmt: skip
    return PageData(
        page, round(width, 1), round(height, 1), rotation, source, text, words,
        array("i", boxes), None if confidences is None else array("h", confidences),
    )  # fmt: skip
