"""Page by page, in this process: the text layer where the page has real text, OCR where not.

The sandbox (sandbox.py) runs this same code in a child process under limits; extract_in_process
runs it here, without limits, for tests and benchmarks.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from .model import (
    PDF_ENCRYPTED,
    PDF_UNREADABLE,
    TOO_MANY_PAGES,
    DocumentExtraction,
    ExtractionFailed,
    ExtractionLimits,
    PageExtraction,
)
from .ocr import Ocr, render_page
from .textlayer import Images, PageFrame, page_images, read_text_layer
from .wire import PageData, page_data

# A page at least this much covered by one image is a scan, whatever little text it carries.
SCAN_COVERAGE = 0.5
# A scan is rendered at its own resolution (more pixels add nothing for Tesseract but time), but
# not below this: a fax in standard mode is 204 x 98 dpi.
MIN_OCR_DPI = 200


def ocr_dpi(images: Images, limits: ExtractionLimits) -> int:
    if images.coverage < SCAN_COVERAGE or images.dpi is None:
        return limits.dpi
    return min(limits.dpi, max(MIN_OCR_DPI, round(images.dpi)))


def pdfium_version() -> str:
    from pypdfium2.version import PDFIUM_INFO

    return "pdfium " + ".".join(str(part) for part in PDFIUM_INFO.api_tag)


def engine_versions() -> dict[str, str]:
    return {"text": pdfium_version(), "ocr": Ocr.version()}


def open_document(path: Path, limits: ExtractionLimits) -> pdfium.PdfDocument:
    try:
        doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise ExtractionFailed(PDF_ENCRYPTED, "the PDF needs a password to open") from None
        raise ExtractionFailed(PDF_UNREADABLE, "PDFium cannot open the file: it is damaged or not a PDF") from None
    count = len(doc)
    if count > limits.max_pages:
        doc.close()
        raise ExtractionFailed(TOO_MANY_PAGES, f"the PDF has {count} pages; the limit is {limits.max_pages} (max_pages)")
    if count < 1:
        doc.close()
        raise ExtractionFailed(PDF_UNREADABLE, "the PDF has no pages")
    return doc


@dataclass
class PageReader:
    """Reads one page at a time from an open document; OCR is started on the first page that needs it."""

    doc: pdfium.PdfDocument
    limits: ExtractionLimits
    ocr: Ocr | None = None

    def size(self, index: int) -> tuple[float, float]:
        """The page's displayed width and height, read from its dictionary without loading the page
        (loading parses the content, which is where a hostile page does its harm)."""
        size = pdfium_c.FS_SIZEF()
        if not pdfium_c.FPDF_GetPageSizeByIndexF(self.doc.raw, index, ctypes.byref(size)):
            return 0.0, 0.0
        return float(size.width), float(size.height)

    def read(self, index: int) -> PageData:
        page = self.doc[index]
        try:
            frame = PageFrame.of(page)
            textpage = page.get_textpage()
            try:
                layer = read_text_layer(textpage, frame)
            finally:
                textpage.close()
            limits = self.limits
            if layer.alnum >= limits.image_text_threshold:
                return page_data(
                    index + 1, frame.width, frame.height, frame.rotation, "text", layer.text, layer.words, layer.boxes, None
                )
            images = page_images(page, frame)
            if layer.alnum >= limits.text_threshold and images.coverage < SCAN_COVERAGE:
                return page_data(
                    index + 1, frame.width, frame.height, frame.rotation, "text", layer.text, layer.words, layer.boxes, None
                )
            image = render_page(page, frame, ocr_dpi(images, limits), limits.max_pixels)
        finally:
            page.close()
        if self.ocr is None:
            self.ocr = Ocr()
        text, words, boxes, confidences = self.ocr.recognise(image)
        return page_data(index + 1, frame.width, frame.height, frame.rotation, "ocr", text, words, boxes, confidences)

    def close(self) -> None:
        if self.ocr is not None:
            self.ocr.close()
            self.ocr = None
        self.doc.close()


def read_page(reader: PageReader, index: int) -> tuple[PageData, str | None]:
    """The page, or its placeholder and a note when PDFium cannot read it."""
    try:
        return reader.read(index), None
    except pdfium.PdfiumError:
        return unread_page(reader, index), f"page {index + 1}: PDFium could not read it"


def unread_page(reader: PageReader, index: int) -> PageData:
    """The placeholder for a page that could not be extracted: its size, rotation unknown (0)."""
    width, height = reader.size(index)
    return page_data(index + 1, width, height, 0, "none", "", [], [], None)


def stopped_note(limits: ExtractionLimits, done: int, count: int) -> str:
    return f"stopped by the total time limit of {limits.total_timeout_seconds:g} s: pages {done + 1}-{count} not extracted"


def extract_in_process(path: Path, limits: ExtractionLimits) -> DocumentExtraction:
    """The same extraction as extract_document, in this process: no memory limit, no killing a stuck
    page. The total time limit is checked between pages. For tests and benchmarks, not for uploads."""
    deadline = time.monotonic() + limits.total_timeout_seconds
    reader = PageReader(open_document(path, limits), limits)
    try:
        count = len(reader.doc)
        pages: list[PageExtraction] = []
        notes: list[str] = []
        for index in range(count):
            page, note = read_page(reader, index)
            pages.append(page.extraction())
            if note:
                notes.append(note)
            if time.monotonic() > deadline and len(pages) < count:
                notes.append(stopped_note(limits, len(pages), count))
                break
        note = "; ".join(notes) or None
        complete = note is None
        return DocumentExtraction(count, tuple(pages), engine_versions(), complete, note)
    finally:
        reader.close()
