"""Build the extraction benchmark's corpus (regenerated, not kept in the repo).

    .venv/bin/python bench/corpus.py [--out /tmp/ppdf-bench/corpus] [--born-pages 1000] [--scan-pages 40]

born/   born-digital PDFs found under /usr/share/doc (gzipped ones unpacked), each cut to at most
        --per-file pages, with pdftotext's words and boxes (poppler-utils, `-bbox -cropbox`) as
        the reference: born/NAME.pdf + born/NAME.json
scan/   image-only PDFs made from known text: typed with Pillow at 200 or 300 dpi, then skewed,
        blurred, speckled, turned to 1 bit (fax) or JPEG (greyscale scanner), four pages to a
        "fax packet"; one page stored sideways with /Rotate 90, one page in two columns. The
        reference is the typed words and their centres on the page as displayed:
        scan/NAME.pdf + scan/NAME.json

More born-digital PDFs: `apt-get install -y --no-install-recommends r-doc-pdf gnuplot-doc
asymptote-doc` (the R manuals, gnuplot's and Asymptote's) before running this.
"""

from __future__ import annotations

import argparse
import gzip
import html
import io
import json
import math
import random
import re
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import pikepdf
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

DOC_ROOT = Path("/usr/share/doc")
FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
]

# --- born-digital ------------------------------------------------------------------------------


def find_born_digital() -> list[Path]:
    found = [p for p in DOC_ROOT.rglob("*.pdf") if p.is_file()] + [p for p in DOC_ROOT.rglob("*.pdf.gz") if p.is_file()]
    return sorted(found, key=lambda p: p.name.lower())


def pdftotext_words(path: Path) -> list[dict[str, object]]:
    """Per page: width, height and words [text, x1, y1, x2, y2] as poppler's pdftotext sees them."""
    out = subprocess.run(["pdftotext", "-bbox", "-cropbox", str(path), "-"], capture_output=True, check=True, text=True).stdout
    pages: list[dict[str, object]] = []
    for match in re.finditer(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', out, re.S):
        words = [
            [html.unescape(w[4]), float(w[0]), float(w[1]), float(w[2]), float(w[3])]
            for w in re.findall(r'<word xMin="([-\d.]+)" yMin="([-\d.]+)" xMax="([-\d.]+)" yMax="([-\d.]+)">(.*?)</word>', match.group(3))
        ]
        pages.append({"width": float(match.group(1)), "height": float(match.group(2)), "words": words})
    return pages


def build_born(out: Path, total_pages: int, per_file: int) -> int:
    out.mkdir(parents=True, exist_ok=True)
    sources = find_born_digital()
    if not sources:
        raise SystemExit("no PDFs under /usr/share/doc")
    budget = total_pages
    made = 0
    for source in sources:
        if budget <= 0:
            break
        name = source.name.removesuffix(".gz").removesuffix(".pdf").replace(" ", "_")
        raw = gzip.decompress(source.read_bytes()) if source.suffix == ".gz" else source.read_bytes()
        try:
            pdf = pikepdf.open(io.BytesIO(raw))
        except pikepdf.PdfError:
            continue
        with pdf:
            keep = min(len(pdf.pages), per_file, budget)
            if keep < 2:
                continue
            del pdf.pages[keep:]
            target = out / f"{name}.pdf"
            pdf.save(target)
        reference = pdftotext_words(target)
        (out / f"{name}.json").write_text(json.dumps({"source": str(source), "pages": reference}))
        budget -= keep
        made += keep
        print(f"born  {name}: {keep} pages")
    return made


# --- scanned, from known text ----------------------------------------------------------------

CLINICAL = [
    "Riverside Family Clinic 1400 Harbor Road Suite 210 Springfield",
    "Patient: {name}  DOB: {date}  MRN: {mrn}",
    "Hemoglobin A1c {v1}% (reference 4.0-5.6)  Fasting glucose {v2} mg/dL",
    "Creatinine {v3} mg/dL  eGFR {v4} mL/min/1.73m2  Potassium {v5} mmol/L",
    "Assessment: type 2 diabetes mellitus without complications, hypertension, stable.",
    "Plan: continue metformin 500 mg twice daily; lisinopril 10 mg once daily.",
    "Follow up in three months with fasting labs. Call the clinic with any questions.",
    "Referred by Dr. {name} for evaluation of chronic cough and shortness of breath.",
]
NAMES = ["Jane Example", "Omar Haddad", "Li Wei", "Maria Gonzalez", "Peter Novak", "Aisha Bello", "Tom Becker"]


def prose_words() -> list[str]:
    words: list[str] = []
    for licence in sorted(Path("/usr/share/common-licenses").glob("*")):
        if licence.is_file():
            words += licence.read_text(errors="ignore").split()
    if not words:
        words = "the quick brown fox jumps over the lazy dog".split() * 500
    return words


@dataclass
class ScanSpec:
    dpi: int
    font: str | None
    size: float  # points
    skew: float  # degrees, counter-clockwise
    blur: float  # Gaussian radius in pixels at 300 dpi
    noise: float  # sigma of added grey noise
    bilevel: bool  # 1-bit, as a fax
    rotate90: bool  # stored sideways with /Rotate 90
    columns: int


def page_lines(rng: random.Random, prose: list[str]) -> list[str]:
    lines: list[str] = []
    for template in CLINICAL:
        lines.append(
            template.format(
                name=rng.choice(NAMES),
                date=f"{rng.randint(1940, 2010)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                mrn=f"{rng.randint(100000, 999999)}",
                v1=f"{rng.uniform(4.5, 9.5):.1f}",
                v2=rng.randint(70, 240),
                v3=f"{rng.uniform(0.5, 2.5):.2f}",
                v4=rng.randint(30, 120),
                v5=f"{rng.uniform(3.2, 5.6):.1f}",
            )
        )
    start = rng.randrange(0, max(1, len(prose) - 600))
    lines.append(" ".join(prose[start : start + 600]))
    return lines


def typeset(lines: list[str], spec: ScanSpec) -> tuple[Image.Image, list[list[object]]]:
    """Type the lines on a letter page, wrapping and filling columns; returns the image and the
    words as [text, centre x, centre y] in points."""
    scale = spec.dpi / 72.0
    image = Image.new("L", (round(612 * scale), round(792 * scale)), 255)
    draw = ImageDraw.Draw(image)
    px = round(spec.size * scale)
    font = ImageFont.truetype(spec.font, px) if spec.font else ImageFont.load_default(size=px)
    space = draw.textlength(" ", font=font)
    margin, gutter = 60 * scale, 24 * scale
    column_width = (612 * scale - 2 * margin - gutter * (spec.columns - 1)) / spec.columns
    leading = spec.size * 1.45 * scale
    words: list[list[object]] = []
    column = 0
    x0 = margin
    y = margin
    bottom = 792 * scale - margin
    for line in lines:
        x = x0
        for word in line.split():
            width = draw.textlength(word, font=font)
            if x > x0 and x + width > x0 + column_width:
                x, y = x0, y + leading
            if y + leading > bottom:
                column += 1
                if column >= spec.columns:
                    return image, words
                x0 = margin + column * (column_width + gutter)
                x, y = x0, margin
            left, top, right, bottom_px = draw.textbbox((x, y), word, font=font)
            draw.text((x, y), word, font=font, fill=0)
            words.append([word, (left + right) / 2 / scale, (top + bottom_px) / 2 / scale])
            x += width + space
        y += leading * 1.5  # a paragraph break
    return image, words


def degrade(image: Image.Image, words: list[list[object]], spec: ScanSpec, rng: random.Random) -> Image.Image:
    if spec.skew:
        image = image.rotate(spec.skew, resample=Image.Resampling.BICUBIC, fillcolor=255)
        cx, cy = 306.0, 396.0
        theta = math.radians(spec.skew)
        for word in words:
            dx, dy = float(word[1]) - cx, float(word[2]) - cy  # type: ignore[arg-type]
            word[1] = cx + dx * math.cos(theta) + dy * math.sin(theta)
            word[2] = cy - dx * math.sin(theta) + dy * math.cos(theta)
    if spec.blur:
        image = image.filter(ImageFilter.GaussianBlur(spec.blur * spec.dpi / 300))
    if spec.noise:
        noise = Image.effect_noise(image.size, spec.noise)
        image = ImageChops.add(image, noise, scale=1.0, offset=-128)
        specks = ImageDraw.Draw(image)
        for _ in range(int(image.width * image.height / 20000)):
            x, y = rng.randrange(image.width), rng.randrange(image.height)
            specks.point((x, y), fill=0)
    if spec.bilevel:
        image = image.point(lambda v: 255 if v > 150 else 0).convert("1", dither=Image.Dither.NONE)
    return image


def add_scan_page(pdf: pikepdf.Pdf, image: Image.Image, spec: ScanSpec) -> None:
    if spec.rotate90:
        image = image.transpose(Image.Transpose.ROTATE_90)  # stored sideways; /Rotate 90 shows it upright
    width_pt, height_pt = image.width * 72.0 / spec.dpi, image.height * 72.0 / spec.dpi
    if image.mode == "1":
        data = zlib.compress(image.tobytes())
        xobject = pikepdf.Stream(pdf, data)
        xobject.BitsPerComponent, xobject.Filter = 1, pikepdf.Name.FlateDecode
    else:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=60)
        xobject = pikepdf.Stream(pdf, buffer.getvalue())
        xobject.BitsPerComponent, xobject.Filter = 8, pikepdf.Name.DCTDecode
    xobject.Type, xobject.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    xobject.Width, xobject.Height, xobject.ColorSpace = image.width, image.height, pikepdf.Name.DeviceGray
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page,
        MediaBox=[0, 0, width_pt, height_pt],
        Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=pdf.make_indirect(xobject))),
        Contents=pdf.make_indirect(pikepdf.Stream(pdf, f"q {width_pt:g} 0 0 {height_pt:g} 0 0 cm /Im0 Do Q".encode())),
    )
    if spec.rotate90:
        page.Rotate = 90
    pdf.pages.append(pikepdf.Page(page))


def scan_specs(count: int, rng: random.Random) -> list[ScanSpec]:
    fonts: list[str | None] = [f for f in FONTS if Path(f).is_file()] or [None]
    specs = []
    for n in range(count):
        specs.append(
            ScanSpec(
                dpi=200 if n % 2 == 0 else 300,
                font=fonts[n % len(fonts)],
                size=rng.choice([9.0, 10.0, 11.0, 12.0]),
                skew=rng.uniform(-2.5, 2.5),
                blur=rng.choice([0.0, 0.6, 1.0]),
                noise=rng.choice([0.0, 12.0, 24.0]),
                bilevel=n % 3 == 0,
                rotate90=n == 1,
                columns=2 if n == 2 else 1,
            )
        )
    return specs


def build_scans(out: Path, pages: int, seed: int) -> int:
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    prose = prose_words()
    specs = scan_specs(pages, rng)
    for start in range(0, len(specs), 4):
        pdf = pikepdf.new()
        truth = []
        for spec in specs[start : start + 4]:
            image, words = typeset(page_lines(rng, prose), spec)
            image = degrade(image, words, spec, rng)
            add_scan_page(pdf, image, spec)
            truth.append({"spec": spec.__dict__, "words": [[w[0], round(float(w[1]), 2), round(float(w[2]), 2)] for w in words]})  # type: ignore[arg-type]
        name = f"packet{start // 4 + 1:02d}"
        pdf.save(out / f"{name}.pdf")
        (out / f"{name}.json").write_text(json.dumps({"pages": truth}))
        print(f"scan  {name}: {len(truth)} pages, {sum(len(t['words']) for t in truth)} words")
    return len(specs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ppdf-bench/corpus"))
    parser.add_argument("--born-pages", type=int, default=1000, help="born-digital pages in all")
    parser.add_argument("--per-file", type=int, default=60, help="at most this many pages from one PDF")
    parser.add_argument("--scan-pages", type=int, default=40)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if shutil.which("pdftotext") is None:
        raise SystemExit("pdftotext is missing: apt-get install -y poppler-utils")
    if args.out.exists():
        shutil.rmtree(args.out)
    born = build_born(args.out / "born", args.born_pages, args.per_file)
    scans = build_scans(args.out / "scan", args.scan_pages, args.seed)
    print(f"corpus in {args.out}: {born} born-digital pages, {scans} scanned pages")


if __name__ == "__main__":
    main()
