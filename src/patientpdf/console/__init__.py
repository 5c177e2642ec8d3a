"""The web console: keys, patients, PDFs, search and the audit trail, in the browser.

Server-rendered pages (Jinja2) with htmx for partial updates and one small script for the
drop zone; no build step. The console calls the same services as the API and holds no logic
of its own beyond the web: a signed-in session instead of an API key, CSRF tokens, and pages.

One door: `create_console(context)` returns the ASGI app that `create_app` mounts at /console.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from patientpdf.console import errors, pages
from patientpdf.console.routes import audit_trail, keys, patients, pdfs, search, signin
from patientpdf.context import Context

__all__ = ["create_console"]


def create_console(context: Context) -> FastAPI:
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)
    console.state.context = context
    errors.install(console)
    for module in (signin, keys, patients, pdfs, search, audit_trail):
        console.include_router(module.router)
    console.mount("/static", StaticFiles(directory=str(files("patientpdf.console") / "static")), name="static")
    console.add_middleware(pages.SecurityHeaders)
    return console
