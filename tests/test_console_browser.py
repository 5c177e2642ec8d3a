"""The console in a real headless Chromium (Debian's, driven by Playwright), against a real
`patientpdf serve` process with its embedded job worker: what an account owner does in a day.

One browser for the whole run. Screenshots of the main pages, at 1280 px and on a
390 px phone screen, go to docs/screenshots/ (the README shows them).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pikepdf
import pytest

from backends import unavailable
from served import CLI, Served

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
WIDE, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
WAIT_MS = 90_000  # processing on a loaded 2-core machine

# the word searched for, on page 2 of the first PDF, drawn at x = 72 pt, baseline 720 pt above the bottom
WORD = "Hemoglobin"


# Module scope: one browser for the run (only this module drives it), and Playwright's sync API
# stops its event loop when the module ends, so later tests may run their own (asyncio.run).
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"Debian's Chromium at {CHROMIUM} (make test installs it: scripts/install-browser.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path / "data", workers=1, extra_env={"PATIENTPDF_LOG_LEVEL": "WARNING"})
    yield server
    server.stop()


def make_pdf(path: Path, pages: list[str]) -> Path:
    pdf = pikepdf.new()
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica))
    for text in pages:
        content = pikepdf.Stream(pdf, f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode())
        pdf.pages.append(
            pikepdf.Page(
                pikepdf.Dictionary(
                    Type=pikepdf.Name.Page,
                    MediaBox=[0, 0, 612, 792],
                    Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)),
                    Contents=pdf.make_indirect(content),
                )
            )
        )
    pdf.save(path)
    return path


def login_link(served: Served) -> str:
    result = subprocess.run(
        [CLI, "console", "login-link", str(served.demo["account_id"]), "--base-url", served.base_url, "--json"],
        env=served.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["url"])


def shoot(page: Any, name: str) -> None:
    """The page at 1280 px and at 390 px; at 390 px nothing may stick out sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.set_viewport_size(WIDE)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(PHONE)
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= PHONE["width"], f"{name} is {overflow} px wide on a 390 px screen"
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(WIDE)


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, iframe, [tabindex]:not([tabindex="-1"])')]
  .filter(el => {
    const named = (el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
      || el.getAttribute('title') || (el.tagName === 'BUTTON' && el.textContent.trim());
    return !named;
  }).map(el => el.outerHTML.slice(0, 120))"""


def nav(page: Any, name: str) -> Any:
    return page.get_by_role("navigation", name="Console").get_by_role("link", name=name, exact=True)


FOCUSED = "() => { const el = document.activeElement; const s = getComputedStyle(el); return [el.id, el.tagName, s.outlineStyle, s.outlineWidth]; }"


def check_accessible(page: Any, reach: str | None = None) -> None:
    """Every control is named; the keyboard moves focus with a visible ring (and reaches `reach`)."""
    assert page.evaluate(UNLABELLED) == []
    for _ in range(60):
        page.keyboard.press("Tab")
        element_id, tag, outline, width = page.evaluate(FOCUSED)
        assert tag != "BODY" and outline != "none" and width != "0px", (element_id, tag, outline, width)
        if reach is None or element_id == reach:
            return
    raise AssertionError(f"the keyboard never reached #{reach}")


def test_a_day_in_the_console(chromium: Any, served: Served, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    api = httpx.Client(base_url=served.base_url, timeout=30)
    context = chromium.new_context(viewport=WIDE, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=served.base_url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None)
    try:
        # sign in with a single-use link from the CLI
        page.goto(login_link(served))
        check_accessible(page)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{served.base_url}/console/patients")

        # keys: create one (shown once, copied), use it, revoke it: the API then answers 401
        nav(page, "API keys").click()
        page.get_by_label("Name").fill("browser test")
        page.get_by_role("checkbox", name="admin").uncheck()
        page.get_by_role("button", name="Create key").click()
        key_box = page.locator("#new-key-value")
        expect(key_box).to_be_visible()
        key = key_box.input_value()
        assert key.startswith("ppk_")
        page.get_by_role("button", name="Copy", exact=True).click()
        expect(page.locator(".copy-status")).to_have_text("Copied.")
        assert page.evaluate("navigator.clipboard.readText()") == key
        assert api.get("/patients", headers={"X-API-Key": key}).status_code == 200
        check_accessible(page)
        shoot(page, "keys")
        prefix = key[:12]
        page.get_by_role("button", name=f"Revoke {prefix}…").click()
        expect(page.locator(f"tr[data-prefix='{prefix}'] .state")).to_have_text("revoked")
        expect(page.locator("#new-key-value")).to_have_count(0)
        revoked = api.get("/patients", headers={"X-API-Key": key})
        assert (revoked.status_code, revoked.json()["code"]) == (401, "api_key_revoked")

        # patients: create one, find it by name
        nav(page, "Patients").click()
        page.get_by_label("Name", exact=True).fill("Grace Hopper")
        page.get_by_label("Date of birth").fill("1906-12-09")
        page.get_by_role("button", name="Create patient").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Grace Hopper")
        patient_url = page.url
        nav(page, "Patients").click()
        page.get_by_label("Search by name").fill("GRACE")
        expect(page.locator("#patient-rows tbody tr")).to_have_count(1)
        expect(page.locator("#patient-rows")).to_contain_text("Grace Hopper")
        expect(page.locator("#patient-rows")).not_to_contain_text("Demo Patient")
        check_accessible(page)
        shoot(page, "patients")

        # two PDFs dropped on the drop zone, one bad file chosen: progress and outcome per file
        page.goto(patient_url)
        first = make_pdf(tmp_path / "referral.pdf", ["Referral letter", f"{WORD} 13.2 g/dL"])
        second = make_pdf(tmp_path / "discharge.pdf", ["Discharge summary"])
        bad = tmp_path / "notes.pdf"
        bad.write_bytes(b"These are notes, not a PDF.\n")
        files = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in (first, second)]
        page.evaluate(
            """files => {
                const transfer = new DataTransfer();
                for (const f of files) {
                  const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
                  transfer.items.add(new File([bytes], f.name, {type: 'application/pdf'}));
                }
                document.querySelector('[data-dropzone]').dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true}));
            }""",
            files,
        )
        page.get_by_label("Choose PDF files").set_input_files(str(bad))
        for name in ("referral.pdf", "discharge.pdf"):
            item = page.locator(f".upload[data-file='{name}']")
            expect(item).to_have_attribute("data-state", "uploaded")
            assert item.locator("progress").evaluate("bar => bar.value") == 100
        failed = page.locator(".upload[data-file='notes.pdf']")
        expect(failed).to_have_attribute("data-state", "failed")
        patient_id = int(patient_url.rstrip("/").rsplit("/", 1)[1])
        refusal = api.post(
            f"/patients/{patient_id}/pdf/", headers={"X-API-Key": served.demo["api_key"]},
            files={"file": ("x", bad.read_bytes())}, data={"filename": "notes.pdf"},
        ).json()  # fmt: skip
        expect(failed.locator(".upload-status")).to_have_text(refusal["detail"])  # the server's own words

        # both are listed, newest first, and processed (the list refreshes itself)
        rows = page.locator("#pdf-rows tbody tr")
        expect(rows).to_have_count(2)
        for index in range(2):
            expect(rows.nth(index).locator("[data-processing]")).to_have_attribute("data-processing", "done", timeout=WAIT_MS)
        check_accessible(page, reach="pdf-files")
        shoot(page, "patient")
        pdf_ids = [rows.nth(index).get_attribute("data-pdf-id") for index in range(2)]
        by_name = {page.locator(f"#pdf-{pdf_id} td a").first.inner_text(): pdf_id for pdf_id in pdf_ids}
        assert set(by_name) == {"referral.pdf", "discharge.pdf"}

        # the viewer: the PDF in an iframe on a signed link, the text page by page, and the word boxed on page 2
        with page.expect_response(lambda response: "/files/" + by_name["referral.pdf"] in response.url) as framed:
            page.locator(f"#pdf-{by_name['referral.pdf']} td a").first.click()
        assert framed.value.status == 200 and framed.value.headers["content-type"] == "application/pdf"
        expect(page.locator("#page-2 pre")).to_contain_text(f"{WORD} 13.2")
        page.get_by_label("Find in this PDF").fill(WORD.lower())
        page.get_by_role("button", name="Find").click()
        expect(page.locator(".match-list li")).to_have_count(1)
        expect(page.locator(".match-list li")).to_contain_text("Page 2")
        figure = page.locator("figure[data-page='2']")
        box = figure.locator("rect.hit")
        expect(box).to_have_count(1)
        x, y, width, height = (float(box.get_attribute(name) or "nan") for name in ("x", "y", "width", "height"))
        # the word starts at x = 72 pt; its baseline, 720 pt above the bottom of a 792 pt page, is 72 pt from the top
        assert abs(x - 72) < 3 and y < 72 < y + height + 2 and 60 < width < 130, (x, y, width, height)
        image = figure.locator("image").get_attribute("href")
        rendered = page.evaluate("url => fetch(url).then(r => [r.status, r.headers.get('content-type')])", image)
        assert rendered == [200, "image/png"]
        assert page.locator("figure[data-page='1']").count() == 0
        check_accessible(page)
        shoot(page, "viewer")

        # search across the account, as GET /search does
        nav(page, "Search").click()
        page.get_by_label("Search the PDFs").fill(WORD)
        page.get_by_role("button", name="Search", exact=True).click()
        result = page.locator(".results li")
        expect(result).to_have_count(1)
        expect(result).to_contain_text("page 2")
        expect(result.locator("mark")).to_have_text(WORD)
        check_accessible(page)
        shoot(page, "search")

        # delete one PDF, confirmed on its own page
        page.goto(patient_url)
        page.locator(f"#pdf-{by_name['discharge.pdf']}").get_by_role("link", name="Delete…").click()
        page.get_by_role("button", name="Delete discharge.pdf").click()
        expect(page.get_by_role("status")).to_contain_text("The PDF was deleted.")
        expect(page.locator("#pdf-rows tbody tr")).to_have_count(1)
        gone = api.get(f"/pdfs/{by_name['discharge.pdf']}", headers={"X-API-Key": served.demo["api_key"]})
        assert gone.status_code == 404

        # the audit trail: all of the above, filtered, exported, and the chain verified
        nav(page, "Audit trail").click()
        expect(page.locator("[data-chain='intact']")).to_be_visible()
        recorded = set(page.locator("table.audit tbody tr").evaluate_all("rows => rows.map(r => r.dataset.action)"))
        assert {"session.create", "key.create", "key.revoke", "patient.create", "pdf.upload", "pdf.read", "search", "pdf.delete"} <= recorded
        page.get_by_label("Action").select_option("pdf.delete")
        page.get_by_role("button", name="Apply").click()
        expect(page.locator("table.audit tbody tr")).to_have_count(1)
        expect(page.locator("table.audit tbody tr")).to_contain_text(by_name["discharge.pdf"])
        page.get_by_label("Action").select_option("")
        page.get_by_label("Key or session").select_option(prefix)
        page.get_by_role("button", name="Apply").click()
        # by the key (its one use) or about it (its creation and revocation, by this session)
        expect(page.locator("table.audit tbody tr")).to_have_count(3)
        check_accessible(page)
        page.get_by_role("link", name="Clear").click()
        expect(page.locator("[data-chain='intact']")).to_be_visible()
        shoot(page, "audit")
        with page.expect_download() as download:
            page.get_by_role("link", name="CSV").click()
        exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        actions = [row["action"] for row in exported]
        assert actions.count("pdf.upload") >= 2 and "pdf.delete" in actions and "key.revoke" in actions
        assert {row["account_id"] for row in exported} == {str(served.demo["account_id"])}
        refused = [row for row in exported if row["action"] == "pdf.upload" and row["key_prefix"].startswith("pps_")]
        assert sorted(row["outcome"] for row in refused) == ["201", "201", f"400 {refusal['code']}"]  # the bad file too

        # sign out: the session is over on the server
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")
        page.goto(f"{served.base_url}/console/keys")
        expect(page.get_by_role("heading", level=1)).to_have_text("Please sign in")
        assert violations == []
    finally:
        context.close()
        api.close()
