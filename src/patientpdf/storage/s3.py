"""S3-compatible backend (AWS S3, MinIO, SeaweedFS, Ceph) through boto3.

Large files go up as a multipart upload, one part in memory at a time. Any failure aborts the
upload so the store keeps no orphan parts; when the abort itself cannot reach the store, a
background thread keeps trying until it gets through (`_AbortRetrier`). Keys are
`<prefix>/pdfs/<xx>/<pdf id>.pdf`: nothing about the patient or the file name. The download
headers (`object_headers`) are stored on each object, so presigned URLs name only the object.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from patientpdf.storage.base import BlobInfo, StorageError, StorageUnavailable, UnfinishedUpload, object_headers

if TYPE_CHECKING:
    from patientpdf.settings import Settings

log = logging.getLogger(__name__)

PART_SIZE = 8 * 1024 * 1024  # S3's minimum is 5 MiB; 8 MiB keeps memory small and requests few
READ_CHUNK = 1024 * 1024
SINGLE_COPY_LIMIT = 5 * 1024**3  # the most CopyObject copies in one request; above it, part by part
COPY_PART_SIZE = 512 * 1024 * 1024
MAX_PARTS = 10_000  # S3's limit per multipart upload
# S3's parameter for each download header: boto3 names them apart from HTTP.
_HEADER_PARAMS = {"Content-Type": "ContentType", "Content-Disposition": "ContentDisposition", "Cache-Control": "CacheControl"}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translate(exc: Exception) -> StorageError:
    code = f" {_error_code(exc)}" if isinstance(exc, ClientError) else ""
    return StorageUnavailable(f"S3 request failed: {type(exc).__name__}{code}")


def _not_found(exc: ClientError) -> bool:
    return _error_code(exc) in ("404", "NoSuchKey", "NotFound")


def _header_params(filename: str) -> dict[str, str]:
    return {_HEADER_PARAMS[name]: value for name, value in object_headers(filename).items()}


class _AbortRetrier:
    """Aborts, in the background, the multipart uploads whose abort could not reach the store.

    One small thread per storage (so per process), started when an abort first fails and gone
    when none is left. It tries again after 0.5 s, doubling up to 30 s, until each abort gets
    through. Those still pending when the process ends are left to `serve`'s sweep at its next
    start, to `storage repair`, and to the bucket's lifecycle rule.
    """

    FIRST_DELAY = 0.5
    MAX_DELAY = 30.0

    def __init__(self, abort: Callable[[str, str], None]) -> None:
        self._abort = abort
        self._pending: dict[str, str] = {}  # upload id -> object key
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, key: str, upload_id: str) -> None:
        with self._lock:
            self._pending[upload_id] = key
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._run, name="patientpdf-s3-aborts", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        delay = self.FIRST_DELAY
        while True:
            with self._lock:
                if not self._pending or self._closed.is_set():
                    self._thread = None
                    return
                upload_id, key = next(iter(self._pending.items()))
            try:
                self._abort(key, upload_id)
            except StorageError:
                self._closed.wait(delay)  # wakes at once on close
                delay = min(delay * 2, self.MAX_DELAY)
                continue
            with self._lock:
                self._pending.pop(upload_id, None)
            log.info("aborted an unfinished multipart upload of %s in the background", key)
            delay = self.FIRST_DELAY

    def close(self) -> None:
        self._closed.set()


class S3Storage:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.single_copy_limit = SINGLE_COPY_LIMIT
        self.copy_part_size = COPY_PART_SIZE
        self._aborts = _AbortRetrier(self._abort)

    @classmethod
    def from_settings(cls, bucket: str, prefix: str, settings: "Settings | None") -> "S3Storage":
        env = os.environ.get
        endpoint = (settings and settings.s3_endpoint_url) or env("AWS_ENDPOINT_URL")
        region = (settings and settings.s3_region) or env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1"
        access_key = (settings and settings.s3_access_key_id) or env("AWS_ACCESS_KEY_ID")
        secret_key = (settings and settings.s3_secret_access_key) or env("AWS_SECRET_ACCESS_KEY")
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint else "auto"},
            connect_timeout=3,
            read_timeout=30,
            retries={"mode": "standard", "max_attempts": 3},
            max_pool_connections=32,
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )
        return cls(client, bucket, prefix)

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix})"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @property
    def _list_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def put_file(self, key: str, source: Path, filename: str) -> None:
        size = source.stat().st_size
        headers = _header_params(filename)
        try:
            if size <= PART_SIZE:
                with open(source, "rb") as handle:
                    self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=handle, **headers)
            else:
                self._multipart_upload(self._key(key), source, headers)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc) from exc
        source.unlink()

    def _multipart_upload(self, key: str, source: Path, headers: dict[str, str]) -> None:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **headers)["UploadId"]
        try:
            parts = []
            with open(source, "rb") as handle:
                number = 1
                while chunk := handle.read(PART_SIZE):
                    etag = self.client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                    )["ETag"]
                    parts.append({"ETag": etag, "PartNumber": number})
                    number += 1
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._abort_now_or_later(key, upload_id)
            raise

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _error_code(exc) != "NoSuchUpload":  # already aborted (or completed): done
                raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise _translate(exc) from exc

    def _abort_now_or_later(self, key: str, upload_id: str) -> None:
        try:
            self._abort(key, upload_id)
        except StorageError:
            log.warning("could not abort the multipart upload of %s; retrying in the background", key)
            self._aborts.add(key, upload_id)

    def open_range(self, key: str, start: int, length: int) -> Iterator[bytes]:
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{start + length - 1}"
            )
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc) from exc
        return self._stream(response["Body"])

    @staticmethod
    def _stream(body: Any) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(READ_CHUNK)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise _translate(exc) from exc
        finally:
            body.close()

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=self._key(key)))
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise _translate(exc) from exc

    def stat(self, key: str) -> BlobInfo | None:
        head = self._head(key)
        if head is None:
            return None
        headers = {name: str(head[param]) for name, param in _HEADER_PARAMS.items() if head.get(param) is not None}
        return BlobInfo(key=key, size=int(head["ContentLength"]), headers=headers)

    def rewrite_headers(self, key: str, filename: str) -> None:
        """Copy the object onto itself with new headers (S3 cannot change them in place).

        Every copy request is conditional on the ETag read first, so an object replaced
        meanwhile is refused, never mixed; the caller verifies the bytes by hash afterwards.
        """
        head = self._head(key)
        if head is None:
            raise StorageUnavailable(f"no object to rewrite at {key}")
        size, etag, target = int(head["ContentLength"]), str(head["ETag"]), self._key(key)
        source = {"Bucket": self.bucket, "Key": target}
        headers = _header_params(filename)
        try:
            if size <= self.single_copy_limit:
                self.client.copy_object(
                    Bucket=self.bucket, Key=target, CopySource=source, CopySourceIfMatch=etag, MetadataDirective="REPLACE", **headers
                )
            else:
                self._multipart_copy(target, source, size, etag, headers)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc) from exc

    def _multipart_copy(self, key: str, source: dict[str, str], size: int, etag: str, headers: dict[str, str]) -> None:
        part_size = max(self.copy_part_size, -(-size // MAX_PARTS))
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **headers)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, part_size), start=1):
                end = min(start + part_size, size) - 1
                result = self.client.upload_part_copy(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    CopySource=source, CopySourceIfMatch=etag, CopySourceRange=f"bytes={start}-{end}",
                )  # fmt: skip
                parts.append({"ETag": result["CopyPartResult"]["ETag"], "PartNumber": number})
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._abort_now_or_later(key, upload_id)
            raise

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc) from exc

    def iter_keys(self) -> Iterator[str]:
        strip = len(self._list_prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._list_prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][strip:]
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc) from exc

    def unfinished_uploads(self, older_than_seconds: float) -> list[UnfinishedUpload]:
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than_seconds)
        strip = len(self._list_prefix)
        found = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._list_prefix):
                for item in page.get("Uploads", []):
                    if item["Initiated"] < cutoff:
                        found.append(UnfinishedUpload(item["Key"][strip:], item["UploadId"], item["Initiated"].astimezone(timezone.utc)))
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc) from exc
        return found

    def abort_upload(self, upload: UnfinishedUpload) -> None:
        self._abort(self._key(upload.key), upload.upload_id)

    def presigned_url(self, key: str, ttl_seconds: int) -> str | None:
        # Only the object: its headers were stored with it (a response-* parameter would put
        # the file name into every log the URL passes through).
        return str(
            self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=ttl_seconds)
        )

    def ping(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc) from exc

    def close(self) -> None:
        self._aborts.close()
