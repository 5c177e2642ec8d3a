"""Operator tasks on stored bytes: check them against the database, repair what needs no
judgement, copy them to another backend, and sweep multipart uploads that were never finished."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping

from patientpdf.context import Context
from patientpdf.db import repositories as repo
from patientpdf.settings import Settings
from patientpdf.storage import BlobStorage, StorageError, UnfinishedUpload, object_headers, open_storage

log = logging.getLogger(__name__)

FINDINGS = ("missing", "size_mismatch", "hash_mismatch", "metadata_missing", "unreadable", "extra_blobs", "abandoned_uploads")


def _all_pdfs(ctx: Context) -> list[RowMapping]:
    with ctx.db.read() as conn:
        return list(repo.all_pdfs_for_maintenance(conn))


def _sha256_of(storage: BlobStorage, key: str, size: int) -> str:
    digest = hashlib.sha256()
    for chunk in storage.open_range(key, 0, size):
        digest.update(chunk)
    return digest.hexdigest()


def _described(upload: UnfinishedUpload) -> dict[str, Any]:
    return {"key": upload.key, "upload_id": upload.upload_id, "initiated": upload.initiated}


def check_storage(ctx: Context, verify_hash: bool = True) -> dict[str, Any]:
    """Every row has its bytes with the right size (and SHA-256) and, in a store that serves
    them itself, the right download headers; list bytes that have no row, and multipart
    uploads older than `s3_abandoned_upload_seconds`.

    A blob stored by an upload whose row is not yet committed shows as extra for that moment;
    run this when the service is quiet, or run it twice, before deleting extras.
    """
    report: dict[str, Any] = {"checked": 0} | {name: [] for name in FINDINGS}
    known_keys = set()
    for row in _all_pdfs(ctx):
        report["checked"] += 1
        known_keys.add(row["storage_key"])
        try:
            info = ctx.storage.stat(row["storage_key"])
            if info is None:
                report["missing"].append(row["id"])
                continue
            if info.headers is not None and info.headers != object_headers(row["filename"]):
                report["metadata_missing"].append(row["id"])
            if info.size != row["size"]:
                report["size_mismatch"].append(row["id"])
            elif verify_hash and _sha256_of(ctx.storage, row["storage_key"], row["size"]) != row["sha256"]:
                report["hash_mismatch"].append(row["id"])
        except StorageError:
            report["unreadable"].append(row["id"])
    report["extra_blobs"] = [key for key in ctx.storage.iter_keys() if key not in known_keys]
    abandoned = ctx.storage.unfinished_uploads(ctx.settings.s3_abandoned_upload_seconds)
    report["abandoned_uploads"] = [_described(upload) for upload in abandoned]
    report["ok"] = not any(report[name] for name in FINDINGS)
    return report


def _intact(storage: BlobStorage, row: RowMapping) -> bool:
    info = storage.stat(row["storage_key"])
    return info is not None and info.size == row["size"] and _sha256_of(storage, row["storage_key"], row["size"]) == row["sha256"]


def _repair_headers(ctx: Context, row: RowMapping) -> dict[str, Any] | None:
    """Rewrite the download headers of an object stored without them, verified by SHA-256
    before (a damaged blob is left as it is) and after; None if there is nothing to do."""
    key, expected = row["storage_key"], object_headers(row["filename"])
    info = ctx.storage.stat(key)
    if info is None or info.headers is None or info.headers == expected:
        return None
    if not _intact(ctx.storage, row):
        return {"id": row["id"], "result": "failed", "reason": "the stored bytes do not match the recorded size and SHA-256; left as they are"}
    ctx.storage.rewrite_headers(key, row["filename"])
    after = ctx.storage.stat(key)
    if after is None or after.headers != expected:
        return {"id": row["id"], "result": "failed", "reason": "the store did not keep the new headers"}
    if not _intact(ctx.storage, row):
        return {"id": row["id"], "result": "failed", "reason": "after the rewrite the bytes do not match the recorded SHA-256"}
    return {"id": row["id"], "result": "repaired"}


def repair_storage(ctx: Context) -> dict[str, Any]:
    """Repair what needs no judgement: objects stored without their download headers (from
    before they were set at upload) get them, and abandoned multipart uploads are aborted.
    Missing, damaged and extra blobs are only reported by `check_storage`."""
    metadata = []
    for row in _all_pdfs(ctx):
        try:
            outcome = _repair_headers(ctx, row)
        except StorageError as exc:
            outcome = {"id": row["id"], "result": "failed", "reason": str(exc)}
        if outcome is not None:
            metadata.append(outcome)
    aborted = []
    for upload in ctx.storage.unfinished_uploads(ctx.settings.s3_abandoned_upload_seconds):
        try:
            ctx.storage.abort_upload(upload)
            aborted.append(_described(upload) | {"result": "aborted"})
        except StorageError as exc:
            aborted.append(_described(upload) | {"result": "failed", "reason": str(exc)})
    ok = all(item["result"] != "failed" for item in metadata + aborted)
    return {"metadata": metadata, "abandoned_uploads": aborted, "ok": ok}


def abort_abandoned_uploads(storage: BlobStorage, older_than_seconds: float) -> int:
    """Abort the multipart uploads that started long ago and were never finished (a process
    killed in the middle of an upload leaves one); returns how many."""
    uploads = storage.unfinished_uploads(older_than_seconds)
    for upload in uploads:
        storage.abort_upload(upload)
    return len(uploads)


def sweep_abandoned_uploads_in_background(settings: Settings) -> threading.Thread:
    """At `serve` start: abort what earlier processes left unfinished. On a thread, so an
    unreachable store does not delay serving; it tries again, backing off, until one sweep
    gets through."""

    def sweep() -> None:
        storage = open_storage(settings.resolved_storage_url, settings)
        delay = 1.0
        try:
            while True:
                try:
                    count = abort_abandoned_uploads(storage, settings.s3_abandoned_upload_seconds)
                except StorageError as exc:
                    log.warning("could not sweep abandoned multipart uploads (%s); trying again in %.0f s", exc, delay)
                    time.sleep(delay)
                    delay = min(delay * 2, 300.0)
                    continue
                if count:
                    log.info("aborted %d abandoned multipart uploads", count)
                return
        finally:
            storage.close()

    thread = threading.Thread(target=sweep, name="patientpdf-upload-sweep", daemon=True)
    thread.start()
    return thread


def migrate_storage(ctx: Context, target: BlobStorage) -> Iterator[dict[str, Any]]:
    """Copy every PDF to `target`, verified by SHA-256; yields one event per PDF.

    Resumable: a PDF already in the target with the right size and hash is skipped. Rows are
    not changed: keys are the same in both backends, so switching PATIENTPDF_STORAGE_URL to
    the target afterwards is the whole cut-over.
    """
    spool = ctx.settings.spool_dir
    spool.mkdir(parents=True, exist_ok=True)
    for row in _all_pdfs(ctx):
        key, size, expected = row["storage_key"], row["size"], row["sha256"]
        try:
            present = target.stat(key)
            if present is not None and present.size == size and _sha256_of(target, key, size) == expected:
                yield {"id": row["id"], "result": "skipped"}
                continue
            copy = spool / f"migrate-{secrets.token_hex(8)}.part"
            try:
                digest = hashlib.sha256()
                fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    for chunk in ctx.storage.open_range(key, 0, size):
                        digest.update(chunk)
                        handle.write(chunk)
                if digest.hexdigest() != expected:
                    yield {"id": row["id"], "result": "failed", "reason": "source bytes do not match the recorded SHA-256"}
                    continue
                target.put_file(key, Path(copy), row["filename"])
            finally:
                Path(copy).unlink(missing_ok=True)
            if _sha256_of(target, key, size) != expected:
                yield {"id": row["id"], "result": "failed", "reason": "copy does not match the recorded SHA-256"}
                continue
            yield {"id": row["id"], "result": "copied"}
        except StorageError as exc:
            yield {"id": row["id"], "result": "failed", "reason": str(exc)}
