"""Operator tasks on stored bytes: check them against the database, copy them to another backend."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping

from patientpdf.context import Context
from patientpdf.db import repositories as repo
from patientpdf.storage import BlobStorage, StorageError


def _all_pdfs(ctx: Context) -> list[RowMapping]:
    with ctx.db.read() as conn:
        return list(repo.all_pdfs_for_maintenance(conn))


def _sha256_of(storage: BlobStorage, key: str, size: int) -> str:
    digest = hashlib.sha256()
    for chunk in storage.open_range(key, 0, size):
        digest.update(chunk)
    return digest.hexdigest()


def check_storage(ctx: Context, verify_hash: bool = True) -> dict[str, Any]:
    """Every row has its bytes with the right size (and SHA-256); list bytes that have no row.

    A blob stored by an upload whose row is not yet committed shows as extra for that moment;
    run this when the service is quiet, or run it twice, before deleting extras.
    """
    report: dict[str, Any] = {"checked": 0, "missing": [], "size_mismatch": [], "hash_mismatch": [], "unreadable": [], "extra_blobs": []}
    known_keys = set()
    for row in _all_pdfs(ctx):
        report["checked"] += 1
        known_keys.add(row["storage_key"])
        try:
            info = ctx.storage.stat(row["storage_key"])
            if info is None:
                report["missing"].append(row["id"])
            elif info.size != row["size"]:
                report["size_mismatch"].append(row["id"])
            elif verify_hash and _sha256_of(ctx.storage, row["storage_key"], row["size"]) != row["sha256"]:
                report["hash_mismatch"].append(row["id"])
        except StorageError:
            report["unreadable"].append(row["id"])
    report["extra_blobs"] = [key for key in ctx.storage.iter_keys() if key not in known_keys]
    report["ok"] = not any(report[name] for name in ("missing", "size_mismatch", "hash_mismatch", "unreadable", "extra_blobs"))
    return report


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
                target.put_file(key, Path(copy))
            finally:
                Path(copy).unlink(missing_ok=True)
            if _sha256_of(target, key, size) != expected:
                yield {"id": row["id"], "result": "failed", "reason": "copy does not match the recorded SHA-256"}
                continue
            yield {"id": row["id"], "result": "copied"}
        except StorageError as exc:
            yield {"id": row["id"], "result": "failed", "reason": str(exc)}
