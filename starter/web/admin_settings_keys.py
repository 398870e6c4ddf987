"""Settings: a shop's storefront API keys (``starter.web.api_keys``), what ``cartkeeper
keys`` does, in the browser.

    GET  /admin/settings/api-keys?shop=S          the keys: name, prefix, created (by
                                                  whom), last used, revoked; never a
                                                  secret (only digests are stored)
    POST /admin/settings/api-keys                 name: a new key
    POST /admin/settings/api-keys/{prefix}/revoke

A new key is shown once, in the answer to its POST (not a redirect: nothing that could
be reloaded or cached holds it; ``Cache-Control: no-store``); the list never shows it
again. The admin's user name is kept as the key's creator; a revocation is logged with
it (``revoke_key`` keeps no name).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from starter.web.admin_auth import Admin, Viewer
from starter.web.admin_render import render_admin
from starter.web.admin_settings_common import (
    SECTIONS,
    done,
    form_shop,
    page_shop,
    read_form,
    refused,
)
from starter.web.api_keys import ApiKey, ApiKeyRefused, create_key, list_keys, revoke_key
from starter.web.deps import Context, WebContext

log = logging.getLogger("cartkeeper.web.admin")

router = APIRouter(tags=["admin"], include_in_schema=False)

PATH = "/admin/settings/api-keys"


async def _page(
    request: Request,
    context: WebContext,
    shop: str,
    *,
    created: ApiKey | None = None,
    plain: str | None = None,
) -> HTMLResponse:
    keys = await list_keys(context.sessions, shop)
    response = render_admin(
        request,
        "admin/settings_keys.html",
        active="settings",
        sections=SECTIONS,
        shop=shop,
        keys=keys,
        active_keys=sum(1 for key in keys if not key.revoked),
        created=created,
        plain=plain,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(PATH, summary="API keys")
async def keys_page(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    return await _page(request, context, page_shop(request, context))


@router.post(PATH, summary="Create an API key")
async def create(request: Request, admin: Admin, context: Context) -> Response:
    form = await read_form(request)
    shop = form_shop(form, context)
    try:
        key, plain = await create_key(
            context.sessions,
            shop,
            form.get("name", ""),
            now=context.now(),
            created_by=admin.username,
        )
    except ApiKeyRefused as error:
        return refused(request, PATH, shop, error.code, error.message)
    log.info("%s created API key %s (%s) of shop %s", admin.username, key.prefix, key.name, shop)
    return await _page(request, context, shop, created=key, plain=plain)


@router.post(PATH + "/{prefix}/revoke", summary="Revoke an API key")
async def revoke(prefix: str, request: Request, admin: Admin, context: Context) -> RedirectResponse:
    form = await read_form(request)
    shop = form_shop(form, context)
    try:
        key = await revoke_key(context.sessions, prefix, now=context.now())
    except ApiKeyRefused as error:
        return refused(request, PATH, shop, error.code, error.message)
    log.info("%s revoked API key %s of shop %s", admin.username, key.prefix, key.shop_id)
    return done(
        request,
        PATH,
        key.shop_id,
        f"Key {key.prefix} ({key.name}) revoked: no request is taken with it any more",
    )
