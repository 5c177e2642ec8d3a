"""Regenerate the sample drawer: real PDFs (valid, damaged, encrypted) and things that only look like one.

Run from the repository root: .venv/bin/python tests/samples/make_samples.py
"""

from __future__ import annotations

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


if __name__ == "__main__":
    main()
