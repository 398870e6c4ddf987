"""The admin console at ``/admin``: ``install(app)`` adds it to the web app.

Here: signing in and out (``GET``/``POST /admin/login``, ``POST /admin/logout``), the
console's style sheet (``/admin/assets/admin.css``, the only route besides the sign-in
form that answers without a session), and how refusals look (``AdminRefused``: a page, or
the redirect to the sign-in form). The dashboard is ``admin_dashboard``, the carts
``admin_carts``; the foundation they stand on (sessions, CSRF, roles) is ``admin_auth``,
the layout and flash messages ``admin_render``, the users ``admin_users``.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from activities.settings import Settings
from starter.web import (
    admin_cart_actions,
    admin_carts,
    admin_dashboard,
    admin_order_actions,
    admin_orders,
    admin_outbox,
    admin_settings,
    admin_stats,
    admin_users,
)
from starter.web.admin_auth import (
    LOGIN_COOKIE,
    LOGIN_FORM_LIFETIME,
    LOGIN_WINDOW,
    SESSION_COOKIE,
    AdminKeys,
    AdminRefused,
    Viewer,
    clear_cookie,
    current_session,
    local_path,
    login_nonce,
    login_token,
    new_login_nonce,
    set_cookie,
    sign_in_allowed,
    start_session,
    valid_token,
)
from starter.web.admin_render import redirect_to, render_admin
from starter.web.deps import Context
from starter.web.pages import TEMPLATES

log = logging.getLogger("cartkeeper.web.admin")

router = APIRouter(tags=["admin"], include_in_schema=False)

CSS = TEMPLATES / "admin" / "admin.css"
#: the public paths of the console (everything else needs a session)
PUBLIC = frozenset(
    {("GET", "/admin/login"), ("POST", "/admin/login"), ("GET", "/admin/assets/admin.css")}
)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the console to ``app``: its signers, its refusal pages and its routes."""
    app.state.admin_keys = AdminKeys.from_settings(settings)
    app.add_exception_handler(AdminRefused, admin_refused)
    app.include_router(router)
    app.include_router(admin_dashboard.router)
    app.include_router(admin_carts.router)
    app.include_router(admin_cart_actions.router)
    app.include_router(admin_orders.router)
    app.include_router(admin_order_actions.router)
    app.include_router(admin_outbox.router)
    app.include_router(admin_stats.router)
    app.include_router(admin_settings.router)


async def admin_refused(request: Request, error: Exception) -> Response:
    assert isinstance(error, AdminRefused)
    if error.location is not None:
        return RedirectResponse(error.location, 303, headers={"Cache-Control": "no-store"})
    response = render_admin(
        request,
        "admin/error.html",
        error.status,
        title=error.title,
        message=error.message,
        code=error.code,
    )
    if error.status == 429:
        response.headers["Retry-After"] = str(int(LOGIN_WINDOW.total_seconds()))
    return response


@lru_cache(maxsize=1)
def _css() -> bytes:
    return Path(CSS).read_bytes()


@router.get("/admin/assets/admin.css", summary="The console's style sheet")
async def stylesheet() -> Response:
    return Response(
        _css(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# --------------------------------------------------------------------------- sign in / out


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login_page(
    request: Request,
    nonce: str,
    next_path: str,
    *,
    status: int = 200,
    error: str | None = None,
    username: str = "",
) -> HTMLResponse:
    return render_admin(
        request,
        "admin/login.html",
        status,
        login_csrf=login_token(request, nonce),
        next_path=next_path,
        error=error,
        username=username,
    )


@router.get("/admin/login", summary="The sign-in form")
async def login_form(request: Request, context: Context) -> Response:
    next_path = local_path(request.query_params.get("next"))
    if await current_session(request, context) is not None:
        return RedirectResponse(next_path, 303, headers={"Cache-Control": "no-store"})
    nonce = login_nonce(request)
    cookie = None
    if nonce is None:
        nonce, cookie = new_login_nonce(request)
    response = _login_page(request, nonce, next_path)
    if cookie is not None:
        set_cookie(response, request, context.settings, LOGIN_COOKIE, cookie, LOGIN_FORM_LIFETIME)
    return response


@router.post("/admin/login", summary="Sign in")
async def login(request: Request, context: Context) -> Response:
    try:
        form = await request.form(max_files=0, max_fields=20)
    except Exception:
        form = None
    nonce = login_nonce(request)
    if (
        form is None
        or nonce is None
        or not valid_token(form.get("csrf_token"), login_token(request, nonce))
    ):
        raise AdminRefused(
            403,
            "forbidden",
            "Sign-in form expired",
            "The sign-in form is out of date: open the sign-in page again.",
        )
    username = form.get("username")
    password = form.get("password")
    next_path = local_path(form.get("next"))
    name = username.strip() if isinstance(username, str) else ""
    address = _client_address(request)
    if not await sign_in_allowed(context, name, address):
        log.warning("sign-in refused: too many failures for %r or from %s", name[:64], address)
        raise AdminRefused(
            429,
            "too_many_login_attempts",
            "Too many attempts",
            f"Too many failed sign-ins. Wait {int(LOGIN_WINDOW.total_seconds() // 60)} minutes"
            " and try again.",
        )
    account = None
    if name and isinstance(password, str):
        account = await admin_users.verify_password(
            context.sessions, name, password, now=context.now()
        )
    if account is None:
        log.info("failed sign-in for %r from %s", name[:64], address)
        return _login_page(
            request,
            nonce,
            next_path,
            status=401,
            error="Wrong user name or password.",
            username=name[:64],
        )
    await admin_users.clear_failures(context.sessions, account.username)
    log.info("%s signed in from %s", account.username, address)
    response = RedirectResponse(next_path, 303, headers={"Cache-Control": "no-store"})
    start_session(response, request, context.settings, account, context.now())
    clear_cookie(response, request, context.settings, LOGIN_COOKIE)
    return response


@router.post("/admin/logout", summary="Sign out")
async def logout(request: Request, admin: Viewer, context: Context) -> Response:
    response = redirect_to(request, "/admin/login", "Signed out.")
    clear_cookie(response, request, context.settings, SESSION_COOKIE)
    # every session of the user ends (a copy of this cookie, the user's other browsers)
    await admin_users.end_sessions(context.sessions, admin.username)
    log.info("%s signed out", admin.username)
    return response
