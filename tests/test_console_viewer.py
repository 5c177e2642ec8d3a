"""The console's processing-dependent pages over HTTP, on both backends: processing status,
the text page by page, in-PDF search with boxes, the page image, and account search."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import LiveServer, Tenant
from patientpdf.errors import Unprocessable
from console_client import Browser, sign_in
from patientpdf.services.viewing import render_png
from patientpdf.settings import Settings
from processing_helpers import drain, text_pdf

PDF = text_pdf([[("Referral letter", 72, 720)], [("Serum Ferritin 41 ng/mL", 72, 700), ("café au lait macules", 72, 600)]])


@pytest.fixture
def browser(server: LiveServer, tenant: Tenant) -> Iterator[Browser]:
    signed_in = sign_in(server, tenant.account_id)
    yield signed_in
    signed_in.close()


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_status_text_matches_and_page_image(server: LiveServer, tenant: Tenant, browser: Browser) -> None:
    pdf_id = server.upload(tenant, PDF, "referral.pdf").json()["id"]
    table = browser.client.get(f"/console/patients/{tenant.patient_id}/pdfs").text
    assert 'data-processing="queued"' in table and "every 2s" in table  # it polls while processing is pending
    assert drain(server) == 1
    table = browser.client.get(f"/console/patients/{tenant.patient_id}/pdfs").text
    assert 'data-processing="done"' in table and "every 2s" not in table

    viewer = browser.client.get(f"/console/pdfs/{pdf_id}", params={"q": "CAFE"})
    assert viewer.status_code == 200
    assert re.search(r'id="page-1".*Referral letter', viewer.text, re.S) and re.search(r'id="page-2".*Serum Ferritin', viewer.text, re.S)
    assert re.findall(r'<figure class="page-figure" id="match-page-(\d+)"', viewer.text) == ["2"]  # accents and case folded
    assert "<mark>café</mark>" in viewer.text
    boxes = [tuple(float(v) for v in box) for box in re.findall(r'<rect class="hit" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', viewer.text)]
    assert len(boxes) == 1
    x, y, width, height = boxes[0]
    assert abs(x - 72) < 2 and y < 792 - 600 < y + height + 2 and width > 10  # "café" starts at x 72, baseline 192 pt from the top
    assert 'viewBox="0 0 612.0 792.0"' in viewer.text

    phrase = browser.client.get(f"/console/pdfs/{pdf_id}", params={"q": '"ferritin 41" referral'}).text
    assert "0 pages match" in phrase  # every word and phrase must be on one page, as in GET /search
    bad = browser.client.get(f"/console/pdfs/{pdf_id}", params={"q": "%%%"}, headers={"Accept": "application/json"})
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_query")

    image = browser.client.get(f"/console/pdfs/{pdf_id}/pages/2.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    width_px, height_px = png_size(image.content)
    assert width_px == 1000 and abs(height_px - 1000 * 792 / 612) <= 1
    missing = browser.client.get(f"/console/pdfs/{pdf_id}/pages/3.png", headers={"Accept": "application/json"})
    assert (missing.status_code, missing.json()["code"]) == (404, "page_not_found")

    found = browser.client.get("/console/search", params={"q": "ferritin"}).text
    assert re.findall(r'<li data-pdf-id="([^"]+)" data-page="(\d+)">', found) == [(pdf_id, "2")]
    assert "referral.pdf, page 2" in found and "Jane Roe" in found and "Serum <mark>Ferritin</mark> 41" in found


def test_another_accounts_pages_are_not_searched(server: LiveServer, tenant: Tenant, browser: Browser) -> None:
    other = server.tenant("Other Clinic")
    server.upload(other, PDF, "theirs.pdf")
    drain(server)
    found = browser.client.get("/console/search", params={"q": "ferritin"}).text
    assert "No page matches" in found and "theirs.pdf" not in found


def test_the_page_image_stays_under_the_pixel_limit(tmp_path: Path) -> None:
    path = tmp_path / "page.pdf"
    path.write_bytes(PDF)
    image = render_png(path, 1, 20_000, Settings(data_dir=tmp_path, extract_max_pixels=1_000_000))
    width, height = png_size(image)
    assert width * height <= 1_000_000 and width > 800
    with pytest.raises(Unprocessable) as refused:
        render_png(path, 3, 1000, Settings(data_dir=tmp_path))
    assert refused.value.code == "page_render_failed"

