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
    yield from _tmpfs(tmp_path, "size=600k")


@pytest.fixture
def disk_without_inodes(tmp_path: Path) -> Iterator[Path]:
    """Room for bytes, but for three files only: the root, `blobs` and `spool` take them."""
    yield from _tmpfs(tmp_path, "size=4m,nr_inodes=3")


def _tmpfs(tmp_path: Path, options: str) -> Iterator[Path]:
    """A small tmpfs, reached through /proc/<pid>/root of a process that holds it.

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
            'mount -t tmpfs -o "$1" tmpfs "$0" && echo mounted && exec sleep infinity', str(mountpoint), options,
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


def _bytes_on(disk: Path, server: LiveServer) -> None:
    """Move the bytes (spool and blobs) onto `disk`; the database stays where it is."""
    for name in ("blobs", "spool"):
        target = disk / name
        target.mkdir()
        path = server.data_dir / name
        if path.exists():
            path.rmdir()
        path.symlink_to(target)


@pytest.mark.parametrize("backend", ["sqlite+local"])  # fills a local disk
def test_no_inode_left_for_the_spool_file_is_507(disk_without_inodes: Path, make_server: Callable[..., LiveServer]) -> None:
    """The upload's admission creates its spool file: a filesystem out of inodes (or quota)
    answers there, before the body, with the same 507 as a full disk."""
    server = make_server()
    _bytes_on(disk_without_inodes, server)
    response = server.upload(server.tenant(), sample("valid.pdf"))
    assert (response.status_code, response.json()["code"]) == (507, "storage_full"), response.text
    assert [p for p in disk_without_inodes.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("backend", ["sqlite+local"])  # fills a local disk
def test_disk_full_is_507_and_leaves_nothing(small_disk: Path, make_server: Callable[..., LiveServer]) -> None:
    server = make_server(max_upload_bytes=4 * 1024 * 1024)
    _bytes_on(small_disk, server)
    tenant = server.tenant()
    valid = sample("valid.pdf")
    big = valid[:-6] + b"%" + b"x" * (1024 * 1024) + b"\n%%EOF\n"
    response = server.upload(tenant, big)
    assert response.status_code == 507, response.text
    assert response.json()["code"] == "storage_full"
    assert [p for p in small_disk.rglob("*") if p.is_file()] == []
    assert server.upload(tenant, valid).status_code == 201  # a PDF that fits still goes in
    assert [p.parent.parent.name for p in small_disk.rglob("*.pdf")] == ["pdfs"]  # and it went to the small disk
