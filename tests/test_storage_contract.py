"""One contract, every backend: local disk and S3 (SeaweedFS) behave the same."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from backends import SeaweedS3
from patientpdf.settings import Settings
from patientpdf.content_disposition import inline_disposition
from patientpdf.storage import BlobInfo, BlobStorage, LocalStorage, StorageUnavailable, object_headers, open_storage
from patientpdf.storage.s3 import PART_SIZE, S3Storage

MIB = 1024 * 1024
NAME = "Résumé Ω 検査.pdf"  # not ASCII, not even latin-1


def s3_settings(store: SeaweedS3, **changes: str) -> Settings:
    values = {"s3_endpoint_url": store.endpoint, "s3_access_key_id": store.access_key, "s3_secret_access_key": store.secret_key}
    return Settings(**(values | changes))


@pytest.fixture(params=["local", "s3"])
def blob_storage(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStorage:
    if request.param == "local":
        return LocalStorage(tmp_path / "blobs")
    store: SeaweedS3 = request.getfixturevalue("seaweed")
    return open_storage(store.new_storage_url(), s3_settings(store))


def a_file(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    content = os.urandom(size)
    path = tmp_path / f"source-{size}"
    path.write_bytes(content)
    return path, content


@pytest.mark.parametrize("size", [1, 100_000, PART_SIZE * 2 + 123])  # the last goes up in three parts on S3
def test_put_read_stat_delete(blob_storage: BlobStorage, tmp_path: Path, size: int) -> None:
    source, content = a_file(tmp_path, size)
    blob_storage.put_file("pdfs/ab/pdf_x.pdf", source, NAME)
    assert not source.exists()
    assert blob_storage.stat("pdfs/ab/pdf_x.pdf").size == size  # type: ignore[union-attr]
    assert b"".join(blob_storage.open_range("pdfs/ab/pdf_x.pdf", 0, size)) == content
    middle = size // 3
    assert b"".join(blob_storage.open_range("pdfs/ab/pdf_x.pdf", middle, size - middle)) == content[middle:]
    assert list(blob_storage.iter_keys()) == ["pdfs/ab/pdf_x.pdf"]
    blob_storage.delete("pdfs/ab/pdf_x.pdf")
    blob_storage.delete("pdfs/ab/pdf_x.pdf")  # deleting a missing blob is not an error
    assert blob_storage.stat("pdfs/ab/pdf_x.pdf") is None
    assert list(blob_storage.iter_keys()) == []


def test_ping(blob_storage: BlobStorage) -> None:
    blob_storage.ping()


def test_s3_rejects_bad_credentials(seaweed: SeaweedS3) -> None:
    wrong = open_storage(seaweed.new_storage_url(), s3_settings(seaweed, s3_secret_access_key="not-the-secret"))
    with pytest.raises(StorageUnavailable):
        wrong.ping()
    with pytest.raises(urllib.error.HTTPError) as refused:  # an unsigned request
        urllib.request.urlopen(f"{seaweed.endpoint}/{seaweed.bucket}/")
    assert refused.value.code == 403
    refused.value.close()


def test_s3_failed_multipart_upload_is_aborted(seaweed: SeaweedS3, tmp_path: Path) -> None:
    storage = open_storage(seaweed.new_storage_url(), s3_settings(seaweed))
    assert isinstance(storage, S3Storage)
    source, _ = a_file(tmp_path, PART_SIZE * 2 + 1)
    real_upload_part = storage.client.upload_part
    calls = []

    def failing_upload_part(**kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs["PartNumber"])
        if kwargs["PartNumber"] == 2:
            raise ConnectionResetError("store went away")
        return real_upload_part(**kwargs)

    storage.client.upload_part = failing_upload_part
    with pytest.raises(ConnectionResetError):
        storage.put_file("pdfs/zz/pdf_y.pdf", source, NAME)
    assert calls == [1, 2]
    assert source.exists()  # the caller still owns it
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix).get("Uploads", [])
    assert uploads == []
    assert list(storage.iter_keys()) == []


def test_s3_keys_carry_nothing_but_the_prefix_and_key(seaweed: SeaweedS3, tmp_path: Path) -> None:
    storage = open_storage(seaweed.new_storage_url(), s3_settings(seaweed))
    assert isinstance(storage, S3Storage)
    source, _ = a_file(tmp_path, 10)
    storage.put_file("pdfs/ab/pdf_z.pdf", source, NAME)
    objects = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=storage.prefix)["Contents"]
    assert [item["Key"] for item in objects] == [f"{storage.prefix}/pdfs/ab/pdf_z.pdf"]


def s3_storage(store: SeaweedS3) -> S3Storage:
    storage = open_storage(store.new_storage_url(), s3_settings(store))
    assert isinstance(storage, S3Storage)
    return storage


@pytest.mark.parametrize("size", [10, PART_SIZE + 1])  # one PUT; a multipart upload
def test_s3_objects_carry_the_download_headers(seaweed: SeaweedS3, tmp_path: Path, size: int) -> None:
    """So a presigned URL needs no response-* parameters: the object itself says how to serve it."""
    storage = s3_storage(seaweed)
    source, content = a_file(tmp_path, size)
    storage.put_file("pdfs/ab/pdf_h.pdf", source, NAME)
    head = seaweed.client().head_object(Bucket=storage.bucket, Key=f"{storage.prefix}/pdfs/ab/pdf_h.pdf")
    assert head["ContentType"] == "application/pdf"
    assert head["CacheControl"] == "private, no-store"
    # S3 metadata travels in HTTP headers: anything but ASCII comes back garbled, so the name is percent-encoded
    assert head["ContentDisposition"] == inline_disposition(NAME) and head["ContentDisposition"].isascii()
    assert "%E6%A4%9C%E6%9F%BB" in head["ContentDisposition"]  # 検査, exactly, in filename*
    info = storage.stat("pdfs/ab/pdf_h.pdf")
    assert info is not None and info.headers == object_headers(NAME)
    assert b"".join(storage.open_range("pdfs/ab/pdf_h.pdf", 0, size)) == content


def test_local_storage_keeps_no_headers(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "blobs")
    source, _ = a_file(tmp_path, 10)
    storage.put_file("pdfs/ab/pdf_l.pdf", source, NAME)
    assert storage.stat("pdfs/ab/pdf_l.pdf") == BlobInfo(key="pdfs/ab/pdf_l.pdf", size=10, headers=None)  # the API sends them


@pytest.mark.parametrize("multipart", [False, True])
def test_s3_headers_are_rewritten_in_place(seaweed: SeaweedS3, multipart: bool) -> None:
    """An object stored before the headers were set gets them, its bytes unchanged."""
    storage = s3_storage(seaweed)
    content = os.urandom(2 * 5 * MIB + 12345 if multipart else 1000)
    if multipart:  # copied in 5 MiB parts instead of above 5 GiB
        storage.single_copy_limit = storage.copy_part_size = 5 * MIB
    raw = seaweed.client()
    raw.put_object(Bucket=storage.bucket, Key=f"{storage.prefix}/pdfs/ab/pdf_o.pdf", Body=content, ContentType="application/pdf")
    before = storage.stat("pdfs/ab/pdf_o.pdf")
    assert before is not None and before.headers != object_headers(NAME)
    storage.rewrite_headers("pdfs/ab/pdf_o.pdf", NAME)
    after = storage.stat("pdfs/ab/pdf_o.pdf")
    assert after is not None and after.headers == object_headers(NAME) and after.size == len(content)
    assert b"".join(storage.open_range("pdfs/ab/pdf_o.pdf", 0, len(content))) == content
    assert list(storage.iter_keys()) == ["pdfs/ab/pdf_o.pdf"]
    assert raw.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix).get("Uploads", []) == []


def test_storage_url_errors_are_clear() -> None:
    for url, message in (("ftp://x/y", "unsupported storage URL"), ("s3:///nobucket", "needs a bucket")):
        with pytest.raises(ValueError, match=message):
            open_storage(url)
