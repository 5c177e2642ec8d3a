"""S3-compatible backend (AWS S3, MinIO, SeaweedFS, Ceph) through boto3.

Large files go up as a multipart upload, one part in memory at a time; any failure aborts
the upload so the store keeps no orphan parts. Keys are `<prefix>/pdfs/<xx>/<pdf id>.pdf`:
nothing about the patient or the file name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from patientpdf.content_disposition import inline_disposition
from patientpdf.storage.base import BlobInfo, StorageError, StorageUnavailable

if TYPE_CHECKING:
    from patientpdf.settings import Settings

PART_SIZE = 8 * 1024 * 1024  # S3's minimum is 5 MiB; 8 MiB keeps memory small and requests few
READ_CHUNK = 1024 * 1024


def _translate(exc: Exception) -> StorageError:
    return StorageUnavailable(f"S3 request failed: {type(exc).__name__}")


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


class S3Storage:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

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

    def put_file(self, key: str, source: Path) -> None:
        size = source.stat().st_size
        try:
            if size <= PART_SIZE:
                with open(source, "rb") as handle:
                    self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=handle, ContentType="application/pdf")
            else:
                self._multipart_upload(self._key(key), source)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc) from exc
        source.unlink()

    def _multipart_upload(self, key: str, source: Path) -> None:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType="application/pdf")["UploadId"]
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
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except (BotoCoreError, ClientError):
                pass  # the store is away; a bucket lifecycle rule for incomplete uploads sweeps these
            raise

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

    def stat(self, key: str) -> BlobInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise _translate(exc) from exc
        return BlobInfo(key=key, size=int(head["ContentLength"]))

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc) from exc

    def iter_keys(self) -> Iterator[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            pages = paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "")
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][strip:]
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc) from exc

    def presigned_url(self, key: str, ttl_seconds: int, filename: str) -> str | None:
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self._key(key),
                    "ResponseContentType": "application/pdf",
                    "ResponseContentDisposition": inline_disposition(filename),
                    "ResponseCacheControl": "private, no-store",
                },
                ExpiresIn=ttl_seconds,
            )
        )

    def ping(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc) from exc
