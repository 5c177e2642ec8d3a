"""No dependency of any route runs on a worker thread: FastAPI runs a plain `def` dependency
in its thread pool, a round trip between threads on every request that uses it (measured:
two of them cost the upload about 10 ms of waiting under load). Dependencies that block hand
their work to a thread themselves."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Mount

from patientpdf.allowed_methods import route_table
from patientpdf.app import create_app
from patientpdf.settings import Settings


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    for entry in route_table(routes):
        route = getattr(entry, "original_route", entry)
        if isinstance(route, APIRoute):
            yield route
        elif isinstance(route, Mount) and hasattr(route.app, "routes"):
            yield from _routes(route.app.routes)


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def test_every_dependency_of_every_route_is_async(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(Settings(data_dir=tmp_path))
    routes = list(_routes(app.routes))
    assert len(routes) > 30  # the API's and the console's
    on_threads = set()
    for route in routes:
        for call in _calls(route.dependant):
            target = call if inspect.isfunction(call) else type(call).__call__  # a security scheme: its instance is called
            if not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)):
                on_threads.add(f"{route.path}: {getattr(call, '__qualname__', call)}")
    assert sorted(on_threads) == []
