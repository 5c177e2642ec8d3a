"""Extraction: every page's words with their boxes, from the text layer or by OCR, bounded.

The door for the rest of patientpdf. Pure: it imports nothing from api/, services/ or db/.

    extract_document(path, limits)   in a sandboxed child process (use this for stored PDFs)
    extract_in_process(path, limits) the same here, without the sandbox (tests, benchmarks)
    engine_versions()                {"text": "pdfium …", "ocr": "tesseract … eng"}

ExtractionFailed(code, detail) when nothing could be extracted; a DocumentExtraction with
complete=False and a note when a limit or a bad page stopped part of it.
"""

from .engine import engine_versions, extract_in_process
from .model import (
    ERROR_CODES,
    DocumentExtraction,
    ExtractionFailed,
    ExtractionLimits,
    PageExtraction,
    Word,
)
from .sandbox import Extractor, extract_document, release_extractor

__all__ = [
    "ERROR_CODES",
    "DocumentExtraction",
    "ExtractionFailed",
    "ExtractionLimits",
    "Extractor",
    "PageExtraction",
    "Word",
    "engine_versions",
    "extract_document",
    "extract_in_process",
    "release_extractor",
]
