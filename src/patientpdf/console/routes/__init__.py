"""The console's pages, one module per area."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def audited(action: str) -> Callable[[Endpoint], Endpoint]:
    """Name the request's action for the app's audit middleware, which records every access to
    patient data before its response starts, as it does for the API."""

    def mark(endpoint: Endpoint) -> Endpoint:
        endpoint.audit_action = action  # type: ignore[attr-defined]  # a marker on the function, read by the audit middleware
        return endpoint

    return mark
