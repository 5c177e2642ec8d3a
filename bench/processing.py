"""Extraction benchmark: accuracy against known text, pages per second on N worker processes,
peak memory per worker. Build the corpus first with bench/corpus.py.

    .venv/bin/python bench/processing.py [--corpus /tmp/ppdf-bench/corpus] [--workers 2] [--rounds 3]

Each worker is a process with its own Extractor (a sandboxed child, as `extract_document`
uses), fed documents from a queue, largest first. Throughput rounds start after every
worker's child is warm (started, OCR model loaded); the accuracy pass runs after them.

Born-digital reference: pdftotext's words (poppler). Scanned reference: the typed words.
recall = reference words found on the same page (as a multiset, exact text) / reference words.
Box error: distance between the centre of each found word and the centre of the nearest
reference word with the same text on that page.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import resource
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from patientpdf.processing import DocumentExtraction, ExtractionFailed, ExtractionLimits, Extractor

Task = tuple[str, str]  # (kind, pdf path)


def _busy_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _worker(tasks: mp.Queue[Task | None], results: mp.Queue[dict[str, Any]], limits: ExtractionLimits, warm: Sequence[str], measure: bool) -> None:
    extractor = Extractor()
    child_peak = 0
    for path in warm:
        extractor.extract(Path(path), limits)
        child_peak = max(child_peak, extractor.last_child_maxrss)
    results.put({"ready": os.getpid()})
    while True:
        task = tasks.get()
        if task is None:
            break
        kind, path = task
        started = time.perf_counter()
        try:
            result = extractor.extract(Path(path), limits)
        except ExtractionFailed as exc:
            results.put({"kind": kind, "path": path, "error": exc.code})
            continue
        elapsed = time.perf_counter() - started
        child_peak = max(child_peak, extractor.last_child_maxrss)
        message: dict[str, Any] = {"kind": kind, "path": path, "pages": len(result.pages), "seconds": elapsed}
        if measure:
            message["score"] = score(kind, path, result)
        results.put(message)
    extractor.close()
    results.put({"done": os.getpid(), "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "child_maxrss": child_peak})


_TOKEN = re.compile(r"[^\W_]+")


def tokens(words: list[str]) -> Counter[str]:
    """Letters-and-digits runs: the words without the punctuation around or inside them."""
    return Counter(t for w in words for t in _TOKEN.findall(w))


def score(kind: str, path: str, result: DocumentExtraction) -> dict[str, Any]:
    reference = json.loads(Path(path).with_suffix(".json").read_text())["pages"]
    total = found = total_tokens = found_tokens = 0
    distances: list[float] = []
    sources: Counter[str] = Counter()
    for page, ref in zip(result.pages, reference, strict=False):
        sources[page.source] += 1
        if kind == "born":
            ref_words = [(w[0], (w[1] + w[3]) / 2, (w[2] + w[4]) / 2) for w in ref["words"]]
        else:
            ref_words = [(w[0], w[1], w[2]) for w in ref["words"]]
        ours = Counter(w.text for w in page.words)
        theirs = Counter(w[0] for w in ref_words)
        total += sum(theirs.values())
        found += sum((ours & theirs).values())
        our_tokens, their_tokens = tokens([w.text for w in page.words]), tokens([w[0] for w in ref_words])
        total_tokens += sum(their_tokens.values())
        found_tokens += sum((our_tokens & their_tokens).values())
        by_text: dict[str, list[tuple[float, float]]] = {}
        for text, cx, cy in ref_words:
            by_text.setdefault(text, []).append((cx, cy))
        for w in page.words:
            candidates = by_text.get(w.text)
            if candidates:
                cx, cy = (w.x1 + w.x2) / 2, (w.y1 + w.y2) / 2
                distances.append(min(((cx - x) ** 2 + (cy - y) ** 2) ** 0.5 for x, y in candidates))
    total += sum(len(r["words"]) for r in reference[len(result.pages) :])
    total_tokens += sum(sum(tokens([w[0]]).values()) for r in reference[len(result.pages) :] for w in r["words"])
    return {
        "total": total, "found": found, "total_tokens": total_tokens, "found_tokens": found_tokens,
        "distances": distances, "sources": dict(sources),
    }  # fmt: skip


def run_phase(tasks: list[Task], workers: int, limits: ExtractionLimits, warm: Sequence[str], measure: bool) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    task_queue: mp.Queue[Task | None] = ctx.Queue()
    result_queue: mp.Queue[dict[str, Any]] = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(task_queue, result_queue, limits, warm, measure)) for _ in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        result_queue.get()  # every worker warm
    load_before = os.getloadavg()[0]
    busy0, all0 = _busy_jiffies()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for task in tasks:
        task_queue.put(task)
    for _ in procs:
        task_queue.put(None)
    docs: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    while len(done) < workers:
        message = result_queue.get()
        if "done" in message:
            done.append(message)
        else:
            docs.append(message)
            if len(docs) == len(tasks):
                wall = time.perf_counter() - started
                busy1, all1 = _busy_jiffies()
    for p in procs:
        p.join()
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ticks = os.sysconf("SC_CLK_TCK")
    machine_busy = (busy1 - busy0) / max(1, all1 - all0) * (os.cpu_count() or 1) * 100
    return {
        "wall": wall,
        "pages": sum(d.get("pages", 0) for d in docs),
        "errors": [d for d in docs if "error" in d],
        "docs": docs,
        "worker_maxrss": max(d["maxrss"] for d in done),
        "child_maxrss": max(d["child_maxrss"] for d in done),
        "machine_cpu_percent": machine_busy,
        # includes the warm-up, so an upper bound of our share during the timed part
        "our_cpu_seconds": (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime),
        "ticks": ticks,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def summarise(docs: list[dict[str, Any]]) -> dict[str, Any]:
    total = sum(d["score"]["total"] for d in docs if "score" in d)
    found = sum(d["score"]["found"] for d in docs if "score" in d)
    distances = sorted(x for d in docs if "score" in d for x in d["score"]["distances"])
    sources: Counter[str] = Counter()
    for d in docs:
        if "score" in d:
            sources.update(d["score"]["sources"])
    total_tokens = sum(d["score"]["total_tokens"] for d in docs if "score" in d)
    found_tokens = sum(d["score"]["found_tokens"] for d in docs if "score" in d)
    return {
        "recall": found / total if total else 0.0,
        "token_recall": found_tokens / total_tokens if total_tokens else 0.0,
        "words": total,
        "matched": len(distances),
        "centre_median": statistics.median(distances) if distances else None,
        "centre_p95": distances[int(0.95 * (len(distances) - 1))] if distances else None,
        "within_5pt": sum(1 for x in distances if x <= 5.0) / len(distances) if distances else None,
        "sources": dict(sources),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("/tmp/ppdf-bench/corpus"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per kind")
    parser.add_argument("--kinds", default="born,scan")
    args = parser.parse_args()
    limits = ExtractionLimits()
    corpus = args.corpus
    warm_born = [str(min((corpus / "born").glob("*.pdf"), key=lambda p: p.stat().st_size))]
    warm_scan = [str(min((corpus / "scan").glob("*.pdf"), key=lambda p: p.stat().st_size))]
    print(f"corpus {corpus}, {args.workers} workers, {os.cpu_count()} CPUs, limits {limits}")
    for kind in args.kinds.split(","):
        paths = sorted((corpus / kind).glob("*.pdf"), key=lambda p: p.stat().st_size, reverse=True)
        tasks: list[Task] = [(kind, str(p)) for p in paths]
        warm = warm_born if kind == "born" else warm_scan
        rates = []
        for n in range(args.rounds):
            phase = run_phase(tasks, args.workers, limits, warm, measure=False)
            rate = phase["pages"] / phase["wall"]
            rates.append(rate)
            print(
                f"{kind} round {n + 1}: {phase['pages']} pages in {phase['wall']:.2f} s = {rate:.1f} pages/s; "
                f"machine CPU {phase['machine_cpu_percent']:.0f} % of 200 %, load {phase['load_before']:.1f} -> {phase['load_after']:.1f}; "
                f"worker RSS {phase['worker_maxrss'] / 2**20:.0f} MB, its child {phase['child_maxrss'] / 2**20:.0f} MB; errors {phase['errors']}"
            )
        accuracy = run_phase(tasks, args.workers, limits, warm, measure=True)
        summary = summarise(accuracy["docs"])
        print(
            f"{kind} accuracy: recall {summary['recall']:.4f} of {summary['words']} words "
            f"(letters-and-digits tokens: {summary['token_recall']:.4f}); "
            f"box centre error median {summary['centre_median']:.2f} pt, p95 {summary['centre_p95']:.2f} pt, "
            f"within 5 pt {summary['within_5pt']:.4f} of {summary['matched']} matched words; page sources {summary['sources']}"
        )
        if rates:
            print(f"{kind} pages/s: median {statistics.median(rates):.1f} (rounds {', '.join(f'{r:.1f}' for r in rates)})")
        per_doc = sorted(
            ((Path(d["path"]).stem, d["score"]["found"] / max(1, d["score"]["total"])) for d in accuracy["docs"] if "score" in d),
            key=lambda item: item[1],
        )
        print(f"{kind} lowest recall per document: " + ", ".join(f"{name} {r:.3f}" for name, r in per_doc[:5]))


if __name__ == "__main__":
    main()
