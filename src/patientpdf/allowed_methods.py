"""The methods a path takes, for the `Allow` header of a 405 (RFC 9110 §15.5.6), shared by the
API and the console: Starlette names only the first matching route's methods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fastapi.routing
from starlette.routing import BaseRoute, Match, Mount


def allowed_methods(routes: list[BaseRoute], scope: Mapping[str, Any]) -> list[str]:
    """Every method of every route in `routes` that matches the scope's path."""
    methods: set[str] = set()
    for route in route_table(routes):
        if route.matches(scope)[0] is Match.NONE:
            continue
        if isinstance(getattr(route, "original_route", route), Mount):
            methods |= {"GET", "HEAD"}  # mounts of ours serve static files, or a sub-app that answers for itself
        else:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def route_table(routes: list[BaseRoute]) -> list[Any]:
    """Each route with its own matcher. Since FastAPI 0.137 `include_router` leaves one
    nested entry per router in `app.routes` (no path, no methods); `iter_route_contexts`
    flattens them as FastAPI's own OpenAPI generation does. Older versions list routes flat."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(flatten(routes)) if flatten is not None else list(routes)
