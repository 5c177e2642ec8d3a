"""The ASGI application, built by a factory from settings."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from patientpdf import __version__
from patientpdf.api.audit import AuditMiddleware
from patientpdf.api.errors import install_error_handlers
from patientpdf.api.middleware import EdgeMiddleware
from patientpdf.api.routes import health, keys, patients, pdfs, search, uploads, webhooks
from patientpdf.console import create_console
from patientpdf.context import Context
from patientpdf.logging import configure_logging
from patientpdf.settings import Settings

if TYPE_CHECKING:
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

DESCRIPTION = """Upload, store and serve patients' PDFs.

Every endpoint except the signed links, `/healthz` and `/readyz` takes your API key in the
`X-API-Key` header. Errors are JSON objects `{"detail": "...", "code": "..."}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    context = Context.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        context.close()

    app = FastAPI(
        title="patientpdf",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.context = context
    install_error_handlers(app)
    for router in (uploads.router, pdfs.router, patients.router, search.router, keys.router, webhooks.router, health.router):
        app.include_router(router)
    _mount_offline_docs(app)
    _mount_console(app, context)
    _document_errors_as_served(app)
    app.add_middleware(AuditMiddleware)
    app.add_middleware(EdgeMiddleware)  # outermost: its request id is in every audit record, its headers on the audit's 503
    return app


def create_proxied_app() -> ProxyHeadersMiddleware:
    """create_app() behind the X-Forwarded-For/-Proto rule uvicorn applies itself (same default,
    same FORWARDED_ALLOW_IPS), for a server that has none (granian): the client address counts
    failed authentications and goes into the audit."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from patientpdf.server import stop_with_serve

    stop_with_serve()  # this factory runs first thing in each of granian's workers
    app: Any = create_app()  # Starlette's ASGI types and uvicorn's differ only in spelling
    return ProxyHeadersMiddleware(app, trusted_hosts=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"))


def _document_errors_as_served(app: FastAPI) -> None:
    """FastAPI documents its 422 as a list of validation errors; ours is {"detail", "code"} like every error."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for path in document["paths"].values():
                for operation in path.values():
                    invalid = operation.get("responses", {}).get("422")
                    if invalid is not None:
                        invalid["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            for name in ("HTTPValidationError", "ValidationError"):
                document["components"]["schemas"].pop(name, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to change the schema


def _mount_console(app: FastAPI, context: Context) -> None:
    """The web console (console/), its own app: HTML pages, sessions instead of API keys."""
    app.mount("/console", create_console(context))

    @app.get("/console", include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=308)


def _mount_offline_docs(app: FastAPI) -> None:
    """Swagger UI and ReDoc from files shipped in a wheel, so the docs work with no internet."""
    app.mount("/static/docs", StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="patientpdf API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="patientpdf API",
            redoc_js_url="/static/docs/redoc.standalone.js",
            redoc_favicon_url="/static/docs/favicon.png",
            with_google_fonts=False,
        )
