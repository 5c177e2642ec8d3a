"""Extraction (patientpdf.processing) on real PDFs: born-digital pages, scans made from known
text, rotated and cropped pages, a mixed fax packet, and hostile files in the sandbox.

Where a box is checked against a page's ink, the ink comes from rendering the page as
displayed (PDFium applies /Rotate and the CropBox), not from our own coordinate arithmetic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from collections import Counter
from pathlib import Path

import pikepdf
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageOps

from made_pdfs import (
    PlacedWord,
    skewed,
    deeply_nested,
    flate_bomb,
    image_page,
    many_pages,
    save,
    scan_image,
    spinning_page_pdf,
    text_page,
)
from patientpdf.processing import (
    ERROR_CODES,
    DocumentExtraction,
    ExtractionFailed,
    ExtractionLimits,
    Extractor,
    PageExtraction,
    Word,
    engine_versions,
    extract_document,
    extract_in_process,
)

SAMPLES = Path(__file__).parent / "samples"
LIMITS = ExtractionLimits()
SCAN_LINES = [
    "Riverside Family Clinic",
    "Patient: Jane Example  DOB 1970-01-01",
    "Hemoglobin A1c 6.1 % (reference 4.0-5.6)",
    "Follow up in three months with fasting glucose.",
]


def ink_box(path: Path, page_index: int, scale: float = 4.0) -> tuple[float, float, float, float]:
    """The bounding box of everything drawn on the page as displayed, in points from its top-left."""
    doc = pdfium.PdfDocument(str(path))
    try:
        image: Image.Image = doc[page_index].render(scale=scale, grayscale=True).to_pil()
    finally:
        doc.close()
    box = ImageOps.invert(image.convert("L")).point(lambda v: 255 if v > 64 else 0).getbbox()
    assert box is not None, "the page shows nothing"
    left, top, right, bottom = box
    return left / scale, top / scale, right / scale, bottom / scale


def assert_box_holds_ink(word: Word, ink: tuple[float, float, float, float], size: float) -> None:
    """The word's box covers its ink (0.5 pt of slack for anti-aliasing) and is not much bigger
    (by less than the font size each way, whether the word runs across or down the page)."""
    left, top, right, bottom = ink
    assert word.x1 <= left + 0.5 and word.y1 <= top + 0.5, (word, ink)
    assert word.x2 >= right - 0.5 and word.y2 >= bottom - 0.5, (word, ink)
    assert (word.x2 - word.x1) - (right - left) < size and (word.y2 - word.y1) - (bottom - top) < size, (word, ink)


def find(page: PageExtraction, text: str) -> Word:
    matches = [w for w in page.words if w.text == text]
    assert matches, f"{text!r} not on page {page.page}: {[w.text for w in page.words]}"
    return matches[0]


def assert_centre_near(word: Word, placed: PlacedWord, tolerance: float) -> None:
    cx, cy = (word.x1 + word.x2) / 2, (word.y1 + word.y2) / 2
    px, py = placed.centre
    assert abs(cx - px) <= tolerance and abs(cy - py) <= tolerance, (word, placed)


# --- the text layer ---------------------------------------------------------------------------


def test_sample_pdf_words_come_from_its_text_layer_on_the_right_page() -> None:
    result = extract_document(SAMPLES / "valid.pdf", LIMITS)

    assert result.page_count == 2 and result.complete and result.note is None
    assert [p.source for p in result.pages] == ["text", "text"]
    assert [w.text for w in result.pages[0].words] == ["Lab", "report,", "page", "1"]
    assert [w.text for w in result.pages[1].words] == ["Lab", "report,", "page", "2"]
    assert result.pages[1].text == "Lab report, page 2"
    assert all(w.confidence is None for p in result.pages for w in p.words)
    # the sample's text starts at x=72, baseline 720 (72 pt below the top) in 18 pt Helvetica
    lab = result.pages[0].words[0]
    assert 71 <= lab.x1 <= 73 and 52 <= lab.y1 < 72 < lab.y2 <= 78


def test_text_layer_word_is_inside_its_box(tmp_path: Path) -> None:
    pdf = pikepdf.new()
    text_page(pdf, [("Discharge summary for the patient named below", 72, 700, 12)])
    text_page(pdf, [("Creatinine", 300, 400, 14)])
    path = save(pdf, tmp_path / "born.pdf")

    result = extract_in_process(path, LIMITS)

    assert [p.source for p in result.pages] == ["text", "text"]
    assert "Creatinine" not in result.pages[0].text
    word = find(result.pages[1], "Creatinine")
    assert word.confidence is None
    assert_box_holds_ink(word, ink_box(path, 1), 14)


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_rotated_page_boxes_are_in_displayed_coordinates(tmp_path: Path, rotate: int) -> None:
    pdf = pikepdf.new()
    text_page(pdf, [("Hydrochlorothiazide", 100, 650, 16)], rotate=rotate)
    path = save(pdf, tmp_path / "rotated.pdf")

    page = extract_document(path, LIMITS).pages[0]

    assert page.rotation == rotate and page.source == "text"
    assert (page.width, page.height) == ((792.0, 612.0) if rotate in (90, 270) else (612.0, 792.0))
    assert_box_holds_ink(find(page, "Hydrochlorothiazide"), ink_box(path, 0), 16)


@pytest.mark.parametrize("rotate", [0, 90])
def test_cropped_page_boxes_start_at_the_cropbox(tmp_path: Path, rotate: int) -> None:
    pdf = pikepdf.new()
    # the MediaBox does not start at 0,0 either
    text_page(pdf, [("Levothyroxine", 150, 480, 16)], mediabox=(-50, -50, 662, 842), cropbox=(100, 200, 400, 600), rotate=rotate)
    path = save(pdf, tmp_path / "cropped.pdf")

    page = extract_document(path, LIMITS).pages[0]

    assert page.source == "text"
    assert (page.width, page.height) == ((300.0, 400.0) if rotate == 0 else (400.0, 300.0))
    assert_box_holds_ink(find(page, "Levothyroxine"), ink_box(path, 0), 16)


# --- OCR -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dpi", [200, 300])
def test_scanned_page_words_are_found_by_ocr_inside_their_boxes(tmp_path: Path, dpi: int) -> None:
    image, placed = scan_image(SCAN_LINES, dpi)
    pdf = pikepdf.new()
    image_page(pdf, image, dpi)
    path = save(pdf, tmp_path / f"scan{dpi}.pdf")

    result = extract_document(path, LIMITS)

    page = result.pages[0]
    assert page.source == "ocr" and result.pages_ocr == 1
    assert (page.width, page.height) == (612.0, 792.0)
    for known in placed:
        if known.text in ("Hemoglobin", "Riverside", "fasting", "1970-01-01"):
            word = find(page, known.text)
            assert_centre_near(word, known, 3.0)
            assert word.confidence is not None and 50 <= word.confidence <= 100
    found = {w.text for w in page.words}
    assert sum(1 for known in placed if known.text in found) >= 0.9 * len(placed)
    assert "Riverside Family Clinic" in page.text


def test_a_scan_fed_askew_is_read_whole(tmp_path: Path) -> None:
    # Long, close lines 2.5 degrees askew: Tesseract's own layout analysis lost every paragraph
    # below the first few lines of such a page until extraction levelled the page first.
    prose = (
        "The patient was seen today for follow up of diabetes and hypertension and reports good "
        "adherence to the medication plan with no side effects and no new complaints since the last visit "
    ).split()
    lines = [" ".join(prose[(7 * n) % 20 :] + prose[: (7 * n) % 20])[:95] for n in range(30)]
    image, placed = scan_image(lines, 300, size=11.0, margin=50.0)
    image, placed = skewed(image, placed, -2.5)
    pdf = pikepdf.new()
    image_page(pdf, image, 300)
    path = save(pdf, tmp_path / "askew.pdf")

    page = extract_document(path, LIMITS).pages[0]

    found = Counter(w.text for w in page.words)
    known = Counter(w.text for w in placed)
    assert sum((found & known).values()) >= 0.95 * len(placed)
    last_line = [w for w in placed if w.y1 > placed[-1].y1 - 5]
    for known_word in last_line[:3]:
        matches = [w for w in page.words if w.text == known_word.text]
        assert any(abs((w.x1 + w.x2) / 2 - known_word.x1) <= 3 and abs((w.y1 + w.y2) / 2 - known_word.y1) <= 3 for w in matches)


def test_scan_stored_sideways_with_rotate_90_is_read_upright(tmp_path: Path) -> None:
    image, placed = scan_image(SCAN_LINES, 200)
    pdf = pikepdf.new()
    # a scanner that stores the page sideways and sets /Rotate 90 so viewers show it upright
    image_page(pdf, image.transpose(Image.Transpose.ROTATE_90), 200, rotate=90)
    path = save(pdf, tmp_path / "sideways.pdf")

    page = extract_document(path, LIMITS).pages[0]

    assert page.source == "ocr" and page.rotation == 90
    assert (page.width, page.height) == (612.0, 792.0)
    for known in placed[:3]:
        assert_centre_near(find(page, known.text), known, 3.0)


def test_a_page_scanned_sideways_without_rotate_is_read_where_it_lies(tmp_path: Path) -> None:
    image, placed = scan_image(SCAN_LINES * 3, 200)
    pdf = pikepdf.new()
    image_page(pdf, image.transpose(Image.Transpose.ROTATE_90), 200)  # landscape, text running up
    path = save(pdf, tmp_path / "sideways.pdf")

    page = extract_document(path, LIMITS).pages[0]

    assert page.source == "ocr" and page.rotation == 0 and (page.width, page.height) == (792.0, 612.0)
    found = Counter(w.text for w in page.words)
    assert sum((found & Counter(w.text for w in placed)).values()) >= 0.9 * len(placed)
    for known in placed[:3]:
        # turned 90 degrees counter-clockwise: (x, y) on the upright sheet is (y, 612 - x) here
        x, y = known.centre
        turned = PlacedWord(known.text, y, 612 - x, y, 612 - x)
        assert_centre_near(find(page, known.text), turned, 3.0)


def test_mixed_packet_uses_the_text_layer_or_ocr_page_by_page(tmp_path: Path) -> None:
    image, placed = scan_image(SCAN_LINES, 200)
    pdf = pikepdf.new()
    text_page(pdf, [("Referral letter from Doctor Alvarez to the clinic", 72, 700, 12)])
    # a fax page: a scan plus the fax machine's header line as real text
    image_page(pdf, image, 200, header="JAN 05 2026 10:22 FROM RIVERSIDE 5551234 P.2")
    text_page(pdf, [("Billing statement page three of the packet", 72, 700, 12)])
    path = save(pdf, tmp_path / "packet.pdf")

    result = extract_document(path, LIMITS)

    assert [p.source for p in result.pages] == ["text", "ocr", "text"]
    assert result.pages_ocr == 1 and result.complete
    assert find(result.pages[0], "Alvarez").confidence is None
    hemoglobin = find(result.pages[1], "Hemoglobin")
    assert hemoglobin.confidence is not None
    assert_centre_near(hemoglobin, next(p for p in placed if p.text == "Hemoglobin"), 3.0)
    assert "Alvarez" not in result.pages[1].text and "Hemoglobin" not in result.pages[2].text


def test_document_json_round_trips_with_tenth_of_a_point_precision(tmp_path: Path) -> None:
    pdf = pikepdf.new()
    text_page(pdf, [("Albumin 4.2 g/dL", 72.333, 700.777, 11)], rotate=90)
    path = save(pdf, tmp_path / "json.pdf")
    result = extract_in_process(path, LIMITS)

    data = result.to_json()

    assert set(data) == {"page_count", "engines", "complete", "note", "pages"}
    assert data["engines"] == engine_versions()
    page = data["pages"][0]
    assert set(page) == {"page", "width", "height", "rotation", "source", "text", "words"}
    text, x1, y1, x2, y2, confidence = page["words"][0]
    assert text == "Albumin" and confidence is None
    assert all(round(v, 1) == v for v in (x1, y1, x2, y2))
    again = DocumentExtraction.from_json(data)
    assert again.to_json() == data
    assert again.pages[0].words[0].x1 == pytest.approx(result.pages[0].words[0].x1, abs=0.05)


def test_engine_versions_name_pdfium_and_tesseract_with_english() -> None:
    versions = engine_versions()
    assert versions["text"].startswith("pdfium ") and versions["text"][7].isdigit()
    assert versions["ocr"].startswith("tesseract 5.") and versions["ocr"].endswith(" eng")


# --- refused and hostile files ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "code"),
    [("text.pdf", "pdf_unreadable"), ("html.pdf", "pdf_unreadable"), ("encrypted.pdf", "pdf_encrypted")],
)
def test_files_pdfium_cannot_open_fail_with_a_code(sample: str, code: str) -> None:
    with pytest.raises(ExtractionFailed) as failed:
        extract_document(SAMPLES / sample, LIMITS)
    assert failed.value.code == code and failed.value.code in ERROR_CODES


def test_twenty_thousand_pages_pass_the_page_limit(tmp_path: Path) -> None:
    path = many_pages(tmp_path / "many.pdf", 20_000)

    with pytest.raises(ExtractionFailed) as failed:
        extract_document(path, LIMITS)

    assert failed.value.code == "too_many_pages"
    assert "20000 pages" in failed.value.detail and "2000" in failed.value.detail


def test_flate_bomb_ends_at_the_memory_limit_and_the_next_document_is_read(tmp_path: Path) -> None:
    bomb = flate_bomb(tmp_path / "bomb.pdf", 2)  # 2 GiB of content from 2 MB
    limits = ExtractionLimits(max_memory_bytes=384 << 20)
    with Extractor() as extractor:
        with pytest.raises(ExtractionFailed) as failed:
            extractor.extract(bomb, limits)
        assert failed.value.code == "memory_limit"

        after = extractor.extract(SAMPLES / "valid.pdf", limits)

    assert after.complete and find(after.pages[1], "2")


def test_deep_nesting_is_cut_off_and_the_page_still_read(tmp_path: Path) -> None:
    path = deeply_nested(tmp_path / "nested.pdf", 100_000, "Nested structures around real words")

    result = extract_document(path, LIMITS)

    assert result.complete
    assert [p.source for p in result.pages] == ["text"]
    assert result.pages[0].text == "Nested structures around real words"


def test_a_page_that_spins_the_renderer_times_out_and_its_child_is_killed(tmp_path: Path) -> None:
    pdf = pikepdf.new()
    spinning_page_pdf(pdf)
    path = save(pdf, tmp_path / "spin.pdf")
    extractor = Extractor()
    try:
        with pytest.raises(ExtractionFailed) as failed:
            extractor.extract(path, ExtractionLimits(page_timeout_seconds=1.0))
        assert failed.value.code == "timeout"
        assert extractor._child is None  # killed, not left spinning
    finally:
        extractor.close()


def test_a_spinning_page_in_a_document_costs_that_page_only(tmp_path: Path) -> None:
    pdf = pikepdf.new()
    text_page(pdf, [("Admission note written before the bad page", 72, 700, 12)])
    spinning_page_pdf(pdf)
    text_page(pdf, [("Discharge note written after the bad page", 72, 700, 12)])
    path = save(pdf, tmp_path / "spin3.pdf")

    result = extract_document(path, ExtractionLimits(page_timeout_seconds=3.0))

    assert [p.source for p in result.pages] == ["text", "none", "text"]
    assert not result.complete and result.note is not None
    assert "page 2" in result.note and "time limit" in result.note
    assert (result.pages[1].width, result.pages[1].height, result.pages[1].words) == (612.0, 792.0, ())
    assert "Discharge" in result.pages[2].text


def test_an_engine_crash_costs_its_page_and_a_fresh_child_reads_on(tmp_path: Path) -> None:
    pdf = pikepdf.new()
    text_page(pdf, [("Admission note written before the crash", 72, 700, 12)])
    spinning_page_pdf(pdf)
    text_page(pdf, [("Discharge note written after the crash", 72, 700, 12)])
    path = save(pdf, tmp_path / "crash.pdf")
    outcome: list[DocumentExtraction] = []
    with Extractor() as extractor:
        # A roomy address space: the child's virtual size (thread arenas) must not look like "near the
        # memory limit", which is how death() names an out-of-memory abort; this test is about a crash.
        limits = ExtractionLimits(page_timeout_seconds=600, max_memory_bytes=4 << 30)
        worker = threading.Thread(target=lambda: outcome.append(extractor.extract(path, limits)))
        worker.start()
        child = _wait_for(lambda: extractor.child_pid)
        _wait_for(lambda: _cpu_seconds(child) > 1.0 or None)  # deep in page 2, the spinning one
        os.kill(child, signal.SIGSEGV)  # as PDFium would on a bad page
        worker.join(timeout=300)
        assert extractor.child_pid not in (None, child)  # a fresh child read page 3

    result = outcome[0]
    assert [p.source for p in result.pages] == ["text", "none", "text"]
    assert not result.complete and result.note is not None and "page 2" in result.note and "SIGSEGV" in result.note


def test_a_missing_file_is_not_blamed_on_the_pdf(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        extract_document(tmp_path / "gone.pdf", LIMITS)


def test_a_killed_parent_takes_its_spinning_child_with_it(tmp_path: Path) -> None:
    pdf = pikepdf.new()
    spinning_page_pdf(pdf)
    path = save(pdf, tmp_path / "spin.pdf")
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from patientpdf.processing import ExtractionLimits, extract_document
        extract_document(Path({str(path)!r}), ExtractionLimits(page_timeout_seconds=3600))
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        child = _wait_for_child(parent.pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        # the child's watchdog sees its parent gone and exits; waiting for that is the assertion
        assert _gone_within(child, 60.0)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _wait_for_child(pid: int) -> int:
    return _wait_for(lambda: (_children(pid) or [None])[0])


def _wait_for(probe: Callable[[], int | bool | None]) -> int:
    """Poll until probe() gives a value (a bound against a hung test, not a timing assertion)."""
    for _ in range(1200):
        value = probe()
        if value:
            return int(value)
        time.sleep(0.1)
    raise AssertionError("the state never came")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gone_within(pid: int, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":  # exited; waiting for init to reap it
            return True
        time.sleep(0.1)
    return False
