"""schemathesis against the service's own OpenAPI document: generated requests, including
malformed ones, never get a 500 and every response matches what the document promises."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conftest import LiveServer, Tenant, _run_server, sample
from patientpdf.app import create_app
from patientpdf.settings import Settings


@pytest.fixture(scope="module")
def contract_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Tenant]]:
    settings_ = Settings(data_dir=tmp_path_factory.mktemp("contract"), failed_auth_limit="100000/minute", max_upload_bytes=1024 * 1024)
    for server in _run_server(settings_):
        tenant = server.tenant()
        server.upload(tenant, sample("valid.pdf"))  # something to read, list and delete
        yield server, tenant


def _openapi_document() -> dict[str, Any]:
    """The document the service serves, built at collection time (the cases are generated from it)."""
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=Path(data_dir)))
        try:
            return app.openapi()
        finally:
            app.state.context.close()


schema = schemathesis.openapi.from_dict(_openapi_document())


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_matches_its_openapi_document(case: Any, contract_server: tuple[LiveServer, Tenant]) -> None:
    server, tenant = contract_server
    # Generated cases carry a random X-API-Key (401 every time): swap in a real key. A case
    # that leaves the header out on purpose (a negative case) keeps it out.
    if case.headers and "X-API-Key" in case.headers:
        case.headers["X-API-Key"] = tenant.key
    # (path parameters arrive as strings)
    if case.path_parameters and str(case.path_parameters.get("key_id")) == str(tenant.key_id):
        case.path_parameters["key_id"] = tenant.key_id + 1000  # never revoke or rotate the key the test runs on
    # A schema-valid form may still hold something that is not a PDF: 400 by design, which
    # the schema cannot say. Every other check (no 5xx, documented statuses, content types,
    # headers, response bodies, negative data rejected, auth enforced) applies.
    case.call_and_validate(base_url=server.base_url, excluded_checks=[positive_data_acceptance])
