"""Regenerate the sample drawer: real PDFs (valid, damaged, encrypted) and things that only look like one.

Run from the repository root: .venv/bin/python tests/samples/make_samples.py
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pikepdf

HERE = Path(__file__).parent


def page_with_text(pdf: pikepdf.Pdf, text: str) -> None:
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica))
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


def main() -> None:
    pdf = pikepdf.new()
    page_with_text(pdf, "Lab report, page 1")
    page_with_text(pdf, "Lab report, page 2")
    pdf.save(HERE / "valid.pdf")
    valid = (HERE / "valid.pdf").read_bytes()

    (HERE / "truncated.pdf").write_bytes(valid[: len(valid) // 2])
    (HERE / "text.pdf").write_bytes(b"This is a plain text file that someone named .pdf\n")
    (HERE / "html.pdf").write_bytes(b"%PDF-1.7\n<html><body><script>alert(1)</script></body></html>\n%%EOF\n")
    (HERE / "empty.pdf").write_bytes(b"")

    pdf = pikepdf.new()
    page_with_text(pdf, "Secret")
    pdf.save(HERE / "encrypted.pdf", encryption=pikepdf.Encryption(user="user-pass", owner="owner-pass"))

    pdf = pikepdf.new()
    page_with_text(pdf, "Printable, not editable")
    pdf.save(HERE / "owner_password.pdf", encryption=pikepdf.Encryption(user="", owner="owner-pass"))

    pikepdf.new().save(HERE / "no_pages.pdf")

    # startxref points at the wrong offset: viewers (and qpdf) rebuild the table silently.
    start = valid.rindex(b"startxref")
    end_of_offset = valid.index(b"\n", start + len(b"startxref\n"))
    (HERE / "damaged_xref.pdf").write_bytes(valid[:start] + b"startxref\n17" + valid[end_of_offset:])

    make_active_content_samples()


def active_pdf(name: str, change: Callable[[pikepdf.Pdf], None]) -> None:
    pdf = pikepdf.new()
    page_with_text(pdf, f"Active content: {name}")
    change(pdf)
    # Object streams compress the dictionaries: detection must still find them.
    pdf.save(HERE / f"active_{name}.pdf", object_stream_mode=pikepdf.ObjectStreamMode.generate)


def make_active_content_samples() -> None:
    def javascript(pdf: pikepdf.Pdf) -> None:
        action = pdf.make_indirect(pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert('hi')")))
        pdf.Root.Names = pikepdf.Dictionary(JavaScript=pikepdf.Dictionary(Names=[pikepdf.String("a"), action]))

    def open_action(pdf: pikepdf.Pdf) -> None:
        pdf.Root.OpenAction = pikepdf.Dictionary(S=pikepdf.Name.URI, URI=pikepdf.String("https://example.invalid/"))

    def launch(pdf: pikepdf.Pdf) -> None:
        annotation = pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[0, 0, 100, 100],
            A=pikepdf.Dictionary(S=pikepdf.Name.Launch, F=pikepdf.String("calc.exe")),
        )  # fmt: skip
        pdf.pages[0].Annots = pdf.make_indirect([pdf.make_indirect(annotation)])

    def embedded_files(pdf: pikepdf.Pdf) -> None:
        pdf.attachments["notes.txt"] = pikepdf.AttachedFileSpec(pdf, b"attached text", mime_type="text/plain")

    def xfa(pdf: pikepdf.Pdf) -> None:
        pdf.Root.AcroForm = pikepdf.Dictionary(Fields=[], XFA=pdf.make_stream(b"<xdp:xdp/>"))

    def rich_media(pdf: pikepdf.Pdf) -> None:
        annotation = pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.RichMedia, Rect=[0, 0, 100, 100])
        pdf.pages[0].Annots = pdf.make_indirect([pdf.make_indirect(annotation)])

    def first_page_destination(pdf: pikepdf.Pdf) -> None:
        # Not active: an /OpenAction that only says which page to show first.
        pdf.Root.OpenAction = [pdf.pages[0].obj, pikepdf.Name.Fit]

    for change in (javascript, open_action, launch, embedded_files, xfa, rich_media, first_page_destination):
        active_pdf(change.__name__, change)


if __name__ == "__main__":
    main()
