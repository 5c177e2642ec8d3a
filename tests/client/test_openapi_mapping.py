"""Every operation of the server's OpenAPI document has an SDK method, in Client and in
AsyncClient, with the same parameters: a route added to the server without the SDK fails here."""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import Any

from conftest import LiveServer
from patientpdf.app import create_app
from patientpdf.settings import Settings
from patientpdf_client import AsyncClient, Client
from patientpdf_client.operations import HELPERS, OPERATIONS

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
# In the SDK ahead of the server: the processing routes of issue 11, built in parallel.
NOT_YET_SERVED = {("GET", "/pdfs/{pdf_id}/extraction"), ("POST", "/pdfs/{pdf_id}/reprocess"), ("GET", "/search")}


def server_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item if method in HTTP_METHODS}


def uncovered(document: dict[str, Any]) -> set[tuple[str, str]]:
    """The server's operations that no SDK method calls."""
    return server_operations(document) - set(OPERATIONS)


def test_every_served_operation_has_an_sdk_method(server: LiveServer) -> None:
    document = server.client.get("/openapi.json").json()
    assert uncovered(document) == set()
    assert set(OPERATIONS) - server_operations(document) <= NOT_YET_SERVED  # no stale entries


def test_a_route_without_an_sdk_method_is_caught() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=Path(data_dir)))
        try:

            @app.get("/pdfs/{pdf_id}/thumbnail")
            def thumbnail(pdf_id: str) -> dict[str, str]:
                return {}

            assert uncovered(app.openapi()) == {("GET", "/pdfs/{pdf_id}/thumbnail")}
        finally:
            app.state.context.close()


def test_both_clients_have_every_method_with_the_same_parameters() -> None:
    for name in [*OPERATIONS.values(), *HELPERS]:
        sync, coroutine = getattr(Client, name, None), getattr(AsyncClient, name, None)
        assert callable(sync) and callable(coroutine), name
        assert inspect.signature(sync).parameters.keys() == inspect.signature(coroutine).parameters.keys(), name
        assert inspect.iscoroutinefunction(coroutine) or inspect.isasyncgenfunction(coroutine) or "Iterator" in str(
            inspect.signature(coroutine).return_annotation
        ), name
