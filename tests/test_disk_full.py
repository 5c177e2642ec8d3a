"""A full disk: 507 storage_full, nothing of the upload left, and the service keeps working."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends import unavailable
from conftest import LiveServer, sample


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 600 KiB tmpfs, reached through /proc/<pid>/root of a process that holds it.

    Mounting needs CAP_SYS_ADMIN, which a container or an unprivileged user lacks ("must be
    superuser to use mount", "permission denied"). A new user namespace grants it for a mount
    namespace of its own, so root and unprivileged users alike get the same small disk, and it
    vanishes with the holder process: nothing is left mounted on the host after a crash.
    """
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    holder = subprocess.Popen(
        [
            "unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
            'mount -t tmpfs -o size=600k tmpfs "$0" && echo mounted && exec sleep infinity', str(mountpoint),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stderr is not None
    try:
        if holder.stdout.readline().strip() != "mounted":
            holder.wait()
            unavailable(f"a small tmpfs (unshare --user --mount: {holder.stderr.read().strip()})")
        yield Path(f"/proc/{holder.pid}/root") / mountpoint.relative_to("/")
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
        holder.stderr.close()


@pytest.mark.parametrize("backend", ["sqlite+local"])  # fills a local disk
def test_disk_full_is_507_and_leaves_nothing(small_disk: Path, make_server: Callable[..., LiveServer]) -> None:
    server = make_server(max_upload_bytes=4 * 1024 * 1024)
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
    assert [p.parent.parent.name for p in small_disk.rglob("*.pdf")] == ["pdfs"]  # and it went to the small disk
