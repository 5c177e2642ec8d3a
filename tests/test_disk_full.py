"""A full disk: 507 storage_full, nothing of the upload left, and the service keeps working."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import LiveServer, sample


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mountpoint)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_disk_full_is_507_and_leaves_nothing(small_disk: Path, make_server: Callable[..., LiveServer]) -> None:
    server = make_server(max_upload_bytes=4 * 1024 * 1024)
    server.require("sqlite+local", "fills a local disk")
    # move bytes (spool and blobs) onto the small disk; the database stays where it is
    for name in ("blobs", "spool"):
        target = small_disk / name
        target.mkdir()
        path = server.data_dir / name
        if path.exists():
            path.rmdir()
        path.symlink_to(target)
    tenant = server.tenant()
    valid = sample("valid.pdf")
    big = valid[:-6] + b"%" + b"x" * (1024 * 1024) + b"\n%%EOF\n"
    response = server.upload(tenant, big)
    assert response.status_code == 507, response.text
    assert response.json()["code"] == "storage_full"
    assert [p for p in small_disk.rglob("*") if p.is_file()] == []
    assert server.upload(tenant, valid).status_code == 201  # a PDF that fits still goes in
