"""Signing in with a single-use link, signing out, and the console's front door."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from patientpdf.console.auth import (
    Changing,
    actor_of,
    clear_session_cookie,
    context_of,
    count_failed_sign_in,
    refuse_other_sites,
    set_session_cookie,
    small_form,
)
from patientpdf.console.pages import base_path, render
from patientpdf.console.routes import audited
from patientpdf.errors import ApiError
from patientpdf.services import console_sessions
from patientpdf.services.console_sessions import LinkState

router = APIRouter()


@router.get("/")
async def home(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{base_path(request)}/patients", status_code=303)


@router.get("/login")
async def login_page(request: Request, token: Annotated[str, Query(max_length=200)] = "") -> Response:
    """The link opens this page; its button signs in. A GET never uses the link, so a mail
    scanner or a chat preview that fetches it does not burn it."""
    state, account_id = await run_in_threadpool(console_sessions.login_link_state, context_of(request), token)
    if state is LinkState.INVALID:
        count_failed_sign_in(request)
    if state is not LinkState.VALID:
        refusal = console_sessions.link_refusal(state)
        values = {"status": refusal.status, "code": refusal.code, "detail": refusal.detail}
        return render(request, "error.html", values, status_code=refusal.status)
    return render(request, "login.html", {"token": token, "account_id": account_id})


@router.post("/login")
@audited("session.create")
async def sign_in(request: Request) -> Response:
    refuse_other_sites(request)
    token = (await small_form(request)).get("token")
    try:
        new = await run_in_threadpool(console_sessions.sign_in, context_of(request), token, actor_of(request))
    except ApiError as refusal:
        request.state.audited = True  # the service recorded the refusal
        if refusal.code == "login_link_invalid":
            count_failed_sign_in(request)
        raise
    request.state.audited = True
    request.state.account_id, request.state.key_prefix = new.session.account_id, new.session.prefix
    response = RedirectResponse(f"{base_path(request)}/patients", status_code=303)
    set_session_cookie(request, response, new.token)
    return response


@router.post("/logout")
@audited("session.end")
async def sign_out(request: Request, session: Changing) -> Response:
    await run_in_threadpool(console_sessions.sign_out, context_of(request), session, actor_of(request, session))
    request.state.audited = True  # by the service, with the session it ended
    response = RedirectResponse(f"{base_path(request)}/signed-out", status_code=303)
    clear_session_cookie(request, response)
    return response


@router.get("/signed-out")
async def signed_out(request: Request) -> Response:
    return render(request, "signed_out.html")
