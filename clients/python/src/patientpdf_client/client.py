"""The synchronous client."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import httpx

from patientpdf_client import _core
from patientpdf_client._body import CHUNK, Progress, UploadBody, UploadCancelled, repr_digest
from patientpdf_client._core import Call, StreamState, call
from patientpdf_client._retry import OnRetry, RetryEvent, RetryPolicy, transport_code
from patientpdf_client.errors import ConnectionFailed, NotFound, PatientPdfError, RangeNotSatisfiable, error_from_response
from patientpdf_client.types import (
    ApiKey,
    Download,
    Extraction,
    Health,
    NewApiKey,
    Patient,
    Pdf,
    SearchHit,
    SearchPage,
    UploadedPdf,
)

PathOrFile = str | os.PathLike[str] | IO[bytes]


class Client:
    """`Client(url, api_key)`; both default to $PATIENTPDF_URL and $PATIENTPDF_API_KEY.

    Thread-safe: one client can serve many threads (its connection pool holds `max_connections`).
    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_connections: int = 10,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._config = _core.Config(url, api_key, retry, timeout)
        self.retry = self._config.retry
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.Client(base_url=self._config.base_url, timeout=self._config.timeout, limits=limits, transport=transport)

    @property
    def url(self) -> str:
        return self._config.base_url

    def __repr__(self) -> str:
        return _core.describe(self._config, "patientpdf_client.Client")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # the retry loop ---------------------------------------------------------------------

    def _send(
        self,
        call: Call,
        content: Callable[[], Iterator[bytes]] | None = None,
        *,
        stream: bool = False,
        on_retry: OnRetry | None = None,
        cancel: threading.Event | None = None,
    ) -> httpx.Response:
        """Send `call` until it succeeds or a retry cannot help. The request is rebuilt for every
        attempt (a streamed body starts again), with the same headers: an upload's Idempotency-Key
        stays the same across its retries."""
        attempt = 0
        while True:
            attempt += 1
            request = self._http.build_request(
                call.method, call.url, params=call.params, json=call.json, headers=self._config.headers(call),
                content=content() if content is not None else None,
            )  # fmt: skip
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                wait = self.retry.after_transport_error(exc, attempt, call.retry_safe)
                if wait is None:
                    raise ConnectionFailed(f"{call.method} {call.url}: {type(exc).__name__}: {exc} (after {attempt} attempts)") from exc
                self._wait(on_retry, RetryEvent(attempt, wait, None, transport_code(exc)), cancel)
                continue
            if response.status_code in call.ok:
                return response
            response.read()
            response.close()
            error = error_from_response(response)
            wait = self.retry.after_error(error, attempt, call.retry_safe)
            if wait is None:
                raise error
            self._wait(on_retry, RetryEvent(attempt, wait, error.status, error.code), cancel)

    @staticmethod
    def _wait(on_retry: OnRetry | None, event: RetryEvent, cancel: threading.Event | None) -> None:
        if on_retry is not None:
            on_retry(event)
        if cancel is None:
            time.sleep(event.wait)
        elif cancel.wait(event.wait):
            raise UploadCancelled("cancelled while waiting to retry")

    def _json(self, call: Call) -> Any:
        return _core.json_body(self._send(call))

    def _pages(self, first: Call) -> Iterator[Any]:
        page: Call | None = first
        while page is not None:
            response = self._send(page)
            yield from _core.json_body(response)
            query = _core.next_page(response)
            page = Call(page.method, page.url, {**(page.params or {}), **query}) if query else None

    # health -----------------------------------------------------------------------------

    def health(self) -> Health:
        """GET /healthz: the process answers."""
        return cast(Health, self._json(call("health")))

    def ready(self) -> Health:
        """GET /readyz: the database and the storage, each "ok" or "unavailable" (a 503 is returned, not raised)."""
        response = self._send(call("ready", ok=(200, 503)))
        return cast(Health, _core.json_body(response))

    # patients ---------------------------------------------------------------------------

    def list_patients(self, *, page_size: int | None = None, url_ttl: int | None = None) -> Iterator[Patient]:
        """Every patient of the account, by id; pages are fetched as you iterate."""
        return cast(Iterator[Patient], self._pages(call("list_patients", params={"limit": page_size, "url_ttl": url_ttl})))

    def get_patient(self, patient_id: int, *, url_ttl: int | None = None) -> Patient:
        return cast(Patient, self._json(call("get_patient", params={"url_ttl": url_ttl}, patient_id=patient_id)))

    def create_patient(
        self, name: str, *, dob: str | None = None, sex: str | None = None, additional_variables: dict[str, Any] | None = None
    ) -> Patient:
        body = {"name": name, "dob": dob, "sex": sex, "additional_variables": additional_variables or {}}
        return cast(Patient, self._json(call("create_patient", json=body, ok=(201,))))

    # pdfs -------------------------------------------------------------------------------

    def list_pdfs(self, patient_id: int, *, page_size: int | None = None, url_ttl: int | None = None) -> Iterator[Pdf]:
        """Every PDF of the patient, newest first; pages are fetched as you iterate."""
        first = call("list_pdfs", params={"limit": page_size, "url_ttl": url_ttl}, patient_id=patient_id)
        return cast(Iterator[Pdf], self._pages(first))

    def get_pdf(self, pdf_id: str, *, url_ttl: int | None = None) -> Pdf:
        return cast(Pdf, self._json(call("get_pdf", params={"url_ttl": url_ttl}, pdf_id=pdf_id)))

    def delete_pdf(self, pdf_id: str) -> None:
        """Delete the PDF (admin scope). If an attempt's answer was lost and the retry finds the
        PDF gone, the first attempt deleted it: that is success, not NotFound."""
        lost: list[RetryEvent] = []
        try:
            self._send(call("delete_pdf", ok=(204,), pdf_id=pdf_id), on_retry=lambda event: lost.append(event) if event.code == "connection_lost" else None)
        except NotFound:
            if not lost:
                raise

    def upload_pdf(
        self,
        patient_id: int,
        file: str | os.PathLike[str] | bytes,
        *,
        filename: str | None = None,
        idempotency_key: str | None = None,
        sha256: str | None = None,
        progress: Progress | None = None,
        on_retry: OnRetry | None = None,
        cancel: threading.Event | None = None,
        url_ttl: int | None = None,
    ) -> UploadedPdf:
        """Upload a PDF from a path (streamed from disk) or from bytes.

        Sends `Repr-Digest` (the file's SHA-256, computed first unless you pass `sha256`) and an
        `Idempotency-Key` (a new UUID unless you pass one), the same on every retry: a retry of an
        upload that was stored returns the first result (`replayed` is then True) and stores
        nothing. `progress(sent, total)` follows the file's bytes; `on_retry` hears of each retry.
        """
        body = UploadBody(file, filename)
        digest = sha256 or body.sha256()
        request = call("upload_pdf", params={"url_ttl": url_ttl}, ok=(201,), patient_id=patient_id)
        request.retry_safe = True  # the Idempotency-Key makes a repeat harmless
        request.headers = {
            "Idempotency-Key": idempotency_key or str(uuid.uuid4()),
            "Repr-Digest": repr_digest(digest),
            "Content-Type": body.content_type,
            "Content-Length": str(body.content_length),
        }
        response = self._send(request, lambda: body.chunks(progress, cancel), on_retry=on_retry, cancel=cancel)
        return _core.uploaded(response)

    def iter_pdf_bytes(self, pdf_id: str, *, start: int = 0) -> Iterator[bytes]:
        """The PDF's bytes from `start`, as they arrive. A connection lost midway is resumed with
        `Range` from the last byte received, so the stream neither repeats nor skips bytes."""
        return self._stream(call("download_pdf", pdf_id=pdf_id), StreamState(offset=start))

    def download_pdf(self, pdf_id: str, to: PathOrFile, *, resume: bool = True, progress: Progress | None = None) -> Download:
        """Download to a path or a writable binary file, checked against the PDF's SHA-256.

        To a path: the bytes go to `<path>.part`, which becomes `<path>` once complete and checked.
        With `resume`, a `.part` left by an interrupted download is continued with `Range`."""
        return self._download(call("download_pdf", pdf_id=pdf_id), pdf_id, to, resume, progress)

    def download_link(self, url: str, to: PathOrFile, *, resume: bool = True, progress: Progress | None = None) -> Download:
        """Download through a PDF's signed `url` (GET /files/{pdf_id}?expires=…&signature=…), without the key."""
        link = Call("GET", url, authenticated=False)
        return self._download(link, _core.pdf_id_of_link(url), to, resume, progress)

    def _download(self, source: Call, pdf_id: str, to: PathOrFile, resume: bool, progress: Progress | None) -> Download:
        if not isinstance(to, (str, os.PathLike)):
            state = StreamState(offset=0)
            digest = hashlib.sha256()
            for chunk in self._stream(source, state, progress):
                to.write(chunk)
                digest.update(chunk)
            actual = _core.check_digest(pdf_id, digest.hexdigest(), state.sha256)
            return Download(pdf_id=pdf_id, size=state.offset, sha256=actual, path=None, resumed_from=0)
        target = Path(to)
        part = target.with_name(target.name + ".part")
        if not resume:
            part.unlink(missing_ok=True)
        while True:
            digest = hashlib.sha256()
            with open(part, "a+b") as file:  # appends wherever the reads leave the position
                file.seek(0)
                while chunk := file.read(CHUNK):
                    digest.update(chunk)
                state = StreamState(offset=file.tell(), resumed_from=file.tell())
                try:
                    for chunk in self._stream(source, state, progress):
                        file.write(chunk)
                        digest.update(chunk)
                except RangeNotSatisfiable:  # the .part is not shorter than the PDF: start again
                    file.truncate(0)
                    continue
                file.flush()
                os.fsync(file.fileno())
            try:
                actual = _core.check_digest(pdf_id, digest.hexdigest(), state.sha256)
            except PatientPdfError:
                part.unlink(missing_ok=True)
                raise
            os.replace(part, target)
            return Download(pdf_id=pdf_id, size=state.offset, sha256=actual, path=str(target), resumed_from=state.resumed_from)

    def _stream(self, source: Call, state: StreamState, progress: Progress | None = None) -> Iterator[bytes]:
        failures = 0
        while True:
            headers = {}
            if state.offset:
                headers["Range"] = f"bytes={state.offset}-"
                if state.etag:
                    headers["If-Range"] = state.etag
            attempt = Call(source.method, source.url, source.params, headers=headers, ok=(200, 206), authenticated=source.authenticated)
            response = self._send(attempt, stream=True)
            try:
                skip = state.offset if response.status_code == 200 else 0  # the server sent it all: drop what we have
                state.etag = response.headers.get("etag", state.etag)
                state.sha256 = _core.expected_sha256(response) or state.sha256
                state.size = _core.total_size(response) or state.size
                if progress and state.size is not None:
                    progress(state.offset, state.size)
                for chunk in response.iter_raw():  # as it arrives: a cut loses nothing already received
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                        if not chunk:
                            continue
                    state.offset += len(chunk)
                    failures = 0
                    yield chunk
                    if progress and state.size is not None:
                        progress(state.offset, state.size)
                return
            except httpx.TransportError as exc:
                failures += 1
                wait = self.retry.after_transport_error(exc, failures, True)
                if wait is None:
                    raise ConnectionFailed(f"download cut at byte {state.offset}: {exc}") from exc
                time.sleep(wait)
            finally:
                response.close()

    # processing -------------------------------------------------------------------------

    def get_extraction(self, pdf_id: str) -> Extraction:
        """The PDF's words and boxes per page; while processing runs, `status` says so and there are no pages."""
        return cast(Extraction, _core.json_body(self._send(call("get_extraction", ok=(200, 202), pdf_id=pdf_id))))

    def wait_for_extraction(self, pdf_id: str, *, timeout: float = 300.0, interval: float = 1.0) -> Extraction:
        """Poll until the extraction is no longer pending (done or failed)."""
        deadline = time.monotonic() + timeout
        while True:
            response = self._send(call("get_extraction", ok=(200, 202), pdf_id=pdf_id))
            if response.status_code != 202 or time.monotonic() > deadline:
                return cast(Extraction, _core.json_body(response))
            time.sleep(interval)

    def reprocess_pdf(self, pdf_id: str) -> dict[str, Any]:
        """Queue the PDF's processing again (admin scope)."""
        return cast(dict[str, Any], _core.json_body(self._send(call("reprocess_pdf", ok=(200, 202), pdf_id=pdf_id))))

    def search(
        self, q: str, *, patient_id: int | None = None, limit: int | None = None, cursor: str | None = None
    ) -> SearchPage:
        """One page of matching pages, best first; `next_cursor` names the next one."""
        params = {"q": q, "patient_id": patient_id, "limit": limit, "cursor": cursor}
        return cast(SearchPage, self._json(call("search", params=params)))

    def iter_search(self, q: str, *, patient_id: int | None = None, page_size: int | None = None) -> Iterator[SearchHit]:
        """Every match, following `next_cursor`."""
        cursor: str | None = None
        while True:
            page = self.search(q, patient_id=patient_id, limit=page_size, cursor=cursor)
            yield from page["results"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # keys -------------------------------------------------------------------------------

    def list_keys(self, *, page_size: int | None = None) -> Iterator[ApiKey]:
        return cast(Iterator[ApiKey], self._pages(call("list_keys", params={"limit": page_size})))

    def create_key(
        self, *, name: str | None = None, scopes: list[str] | None = None, expires_in_seconds: int | None = None
    ) -> NewApiKey:
        """A new key; its full value (`key`) is in this answer only."""
        body: dict[str, Any] = {"name": name, "expires_in_seconds": expires_in_seconds}
        if scopes is not None:
            body["scopes"] = scopes
        return cast(NewApiKey, self._json(call("create_key", json=body, ok=(201,))))

    def rotate_key(self, key_id: int, *, grace_seconds: int | None = None) -> NewApiKey:
        body = {} if grace_seconds is None else {"grace_seconds": grace_seconds}
        return cast(NewApiKey, self._json(call("rotate_key", json=body, ok=(201,), key_id=key_id)))

    def revoke_key(self, key_id: int) -> ApiKey:
        return cast(ApiKey, self._json(call("revoke_key", key_id=key_id)))

    # Webhooks (admin scope): endpoints, their signing secret (shown once), the delivery log.
    def list_webhooks(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._json(call("list_webhooks")))

    def create_webhook(self, url: str, events: list[str]) -> dict[str, Any]:
        """A new endpoint; its `secret` (whsec_…) is in this answer only."""
        return cast(dict[str, Any], self._json(call("create_webhook", json={"url": url, "events": events}, ok=(201,))))

    def get_webhook(self, webhook_id: int) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(call("get_webhook", webhook_id=webhook_id)))

    def update_webhook(
        self, webhook_id: int, *, url: str | None = None, events: list[str] | None = None, enabled: bool | None = None
    ) -> dict[str, Any]:
        body = {key: value for key, value in (("url", url), ("events", events), ("enabled", enabled)) if value is not None}
        return cast(dict[str, Any], self._json(call("update_webhook", json=body, webhook_id=webhook_id)))

    def delete_webhook(self, webhook_id: int) -> None:
        self._send(call("delete_webhook", ok=(204,), webhook_id=webhook_id))

    def rotate_webhook_secret(self, webhook_id: int, *, grace_seconds: int | None = None) -> dict[str, Any]:
        """A new secret (shown once); the old one keeps signing beside it for the grace period."""
        body = {} if grace_seconds is None else {"grace_seconds": grace_seconds}
        return cast(dict[str, Any], self._json(call("rotate_webhook_secret", json=body, ok=(201,), webhook_id=webhook_id)))

    def test_webhook(self, webhook_id: int) -> dict[str, Any]:
        """Queue a webhook.ping to this endpoint; the answer is its delivery."""
        return cast(dict[str, Any], self._json(call("test_webhook", ok=(202,), webhook_id=webhook_id)))

    def list_webhook_deliveries(self, webhook_id: int, *, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        params = {"status": status, "limit": limit}
        return cast(list[dict[str, Any]], self._json(call("list_webhook_deliveries", params=params, webhook_id=webhook_id)))

    def get_webhook_delivery(self, webhook_id: int, delivery_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json(call("get_webhook_delivery", webhook_id=webhook_id, delivery_id=delivery_id)))

    def retry_webhook_delivery(self, webhook_id: int, delivery_id: str) -> dict[str, Any]:
        """Send the delivery again, with the same webhook-id."""
        return cast(
            dict[str, Any], self._json(call("retry_webhook_delivery", ok=(202,), webhook_id=webhook_id, delivery_id=delivery_id))
        )
