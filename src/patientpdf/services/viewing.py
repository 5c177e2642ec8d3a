"""Looking at one PDF (the console's viewer): the pages a query hits in it, with the matched
words' boxes, and a page as an image to draw those boxes on.

Matching is services/matching.py's, the same that marks GET /search's results; the image is
rendered by processing/ in a child process under the extraction's limits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping

from patientpdf.context import Context
from patientpdf.db import repositories as repo
from patientpdf.errors import BadRequest, NotFound, Unprocessable
from patientpdf.services import matching, pdfs, processing
from patientpdf.settings import Settings

# Wide enough for a letter page to be read on a laptop, small enough to send fast.
PAGE_IMAGE_WIDTH_PX = 1000


def matches_in(pages: Sequence[RowMapping], q: str) -> list[dict[str, Any]]:
    """The extraction's pages that the query hits (pages with their words), in page order:
    page, width, height, snippet (HTML, matched words in <mark>) and the matched words' boxes."""
    try:
        query = matching.parse_query(q)
    except matching.BadQuery as exc:
        raise BadRequest(f"Invalid search: {exc}.", code="bad_query") from None
    found = []
    for page in pages:
        words = page["words"]
        # a page matches if every word and phrase of the query is on it, as in GET /search
        if not all(matching.matched_words(words, matching.Query((phrase,))) for phrase in query.phrases):
            continue
        hit = matching.matched_words(words, query)
        if hit:
            found.append(
                {
                    "page": page["page"],
                    "width": page["width"],
                    "height": page["height"],
                    "snippet": matching.snippet(words, hit),
                    "highlights": matching.highlights(words, hit),
                }
            )
    return found


def page_png(ctx: Context, account_id: int, pdf_id: str, page: int) -> bytes:
    """Page `page` of the account's PDF as a PNG (404 for another account's PDF or no such page)."""
    row = pdfs.get_pdf(ctx, account_id, pdf_id)
    if not 1 <= page <= row["page_count"]:
        raise NotFound(f"This PDF has {row['page_count']} page(s); there is no page {page}.", code="page_not_found")
    with processing.fetched_copy(ctx, row) as path:
        return render_png(path, page, PAGE_IMAGE_WIDTH_PX, ctx.settings)


# Exit codes of the child (processing/page_image.py), which this process starts without
# importing processing/, so the engines are never loaded into an API process.
_CHILD_EXITS = {3: "the page needs more memory than the extraction limit allows", 4: "PDFium cannot open this page"}
# Starting Python and PDFium, on top of the page's own time limit (the machine may be busy).
CHILD_STARTUP_SECONDS = 30.0


def render_png(path: Path, page: int, width_px: int, settings: Settings) -> bytes:
    """One page as a PNG about `width_px` wide, rendered in a child process under the
    extraction's limits: its address space, the page time limit and the pixel cap."""
    request = {
        "path": str(path),
        "page": page,
        "width_px": width_px,
        "max_pixels": settings.extract_max_pixels,
        "max_pages": settings.extract_max_pages,
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "patientpdf.processing.page_image", str(settings.extract_max_memory_mb << 20)],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=settings.extract_page_timeout_seconds + CHILD_STARTUP_SECONDS,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
            close_fds=True,
        )
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        raise _cannot_show("rendering it took longer than the page time limit") from None
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        raise _cannot_show(_CHILD_EXITS.get(done.returncode, "the renderer failed on it"))
    return done.stdout


def _cannot_show(why: str) -> Unprocessable:
    return Unprocessable(f"This page cannot be shown as an image: {why}.", code="page_render_failed")


def names_of(ctx: Context, account_id: int, pdf_ids: Sequence[str]) -> dict[str, RowMapping]:
    """File and patient names for a list of the account's PDFs (search results)."""
    with ctx.db.read() as conn:
        return repo.pdf_names(conn, account_id, pdf_ids)
