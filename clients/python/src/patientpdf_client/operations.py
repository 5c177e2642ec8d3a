"""Every operation of the server's API and the SDK method that calls it.

The SDK builds its request paths from this table, and a test holds it against the server's
/openapi.json: a server route without an entry here fails the build. `Client` and
`AsyncClient` have a method of each name.
"""

from __future__ import annotations

OPERATIONS: dict[tuple[str, str], str] = {
    ("GET", "/patients"): "list_patients",
    ("POST", "/patients"): "create_patient",
    ("GET", "/patients/{patient_id}/"): "get_patient",
    ("GET", "/patients/{patient_id}/pdfs/"): "list_pdfs",
    ("POST", "/patients/{patient_id}/pdf/"): "upload_pdf",
    ("GET", "/pdfs/{pdf_id}"): "get_pdf",
    ("DELETE", "/pdfs/{pdf_id}"): "delete_pdf",
    ("GET", "/pdfs/{pdf_id}/content"): "download_pdf",
    ("GET", "/files/{pdf_id}"): "download_link",
    ("GET", "/pdfs/{pdf_id}/extraction"): "get_extraction",
    ("POST", "/pdfs/{pdf_id}/reprocess"): "reprocess_pdf",
    ("GET", "/search"): "search",
    ("GET", "/keys"): "list_keys",
    ("POST", "/keys"): "create_key",
    ("POST", "/keys/{key_id}/rotate"): "rotate_key",
    ("DELETE", "/keys/{key_id}"): "revoke_key",
    ("GET", "/webhooks"): "list_webhooks",
    ("POST", "/webhooks"): "create_webhook",
    ("GET", "/webhooks/{webhook_id}"): "get_webhook",
    ("PATCH", "/webhooks/{webhook_id}"): "update_webhook",
    ("DELETE", "/webhooks/{webhook_id}"): "delete_webhook",
    ("POST", "/webhooks/{webhook_id}/rotate-secret"): "rotate_webhook_secret",
    ("POST", "/webhooks/{webhook_id}/test"): "test_webhook",
    ("GET", "/webhooks/{webhook_id}/deliveries"): "list_webhook_deliveries",
    ("GET", "/webhooks/{webhook_id}/deliveries/{delivery_id}"): "get_webhook_delivery",
    ("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"): "retry_webhook_delivery",
    ("GET", "/healthz"): "health",
    ("GET", "/readyz"): "ready",
}

# Methods that call one operation through another name (they share its request).
HELPERS: dict[str, str] = {
    "iter_pdf_bytes": "download_pdf",
    "wait_for_extraction": "get_extraction",
    "iter_search": "search",
}

_PATHS = {name: (method, path) for (method, path), name in OPERATIONS.items()}


def route(name: str, **params: object) -> tuple[str, str]:
    """(method, path) of the named operation, its path parameters filled in."""
    method, template = _PATHS[name]
    return method, template.format(**{key: _segment(value) for key, value in params.items()})


def _segment(value: object) -> str:
    from urllib.parse import quote

    return quote(str(value), safe="")
