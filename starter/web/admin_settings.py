"""The console's settings (``/admin/settings``), one shop at a time (``?shop=``, default
the settings' ``default_shop``):

    GET /admin/settings?shop=S           an overview of every section
    GET /admin/settings/policy?shop=S    the shop's effective cart policy, read-only

and the sections of their own modules, whose routers ``router`` holds:
``admin_settings_statuses`` (order statuses), ``admin_settings_shipping`` (shipping
methods), ``admin_settings_campaigns`` and ``admin_settings_preview`` (the reminder
campaign and its template preview), ``admin_settings_keys`` (API keys). Viewers read
every page; only admins get the forms, and only admins' posts are taken.

The policy is what ``Settings.policy_for(shop)`` gives new carts of the shop: the
defaults of ``CartPolicy``, then ``CARTKEEPER_LOCK_ALERT_AFTER_SECONDS``, then
``CARTKEEPER_POLICY`` (every shop), then the shop's entry of
``CARTKEEPER_SHOP_POLICIES``. Each value says which of these it comes from. It is set in
the environment of the processes, not here; a cart keeps the policy it was created with.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from activities import order_statuses, shipping_methods
from activities.order_statuses import StatusRefused
from activities.settings import Settings, env_name
from starter.output import format_duration
from starter.web import (
    admin_settings_campaigns,
    admin_settings_keys,
    admin_settings_preview,
    admin_settings_shipping,
    admin_settings_statuses,
)
from starter.web.admin_auth import Viewer
from starter.web.admin_render import render_admin
from starter.web.admin_settings_common import SECTIONS, page_shop
from starter.web.api_keys import list_keys
from starter.web.deps import Context, WebContext
from workflows.contract import CartPolicy

router = APIRouter(tags=["admin"], include_in_schema=False)
for _section in (
    admin_settings_statuses,
    admin_settings_shipping,
    admin_settings_campaigns,
    admin_settings_preview,
    admin_settings_keys,
):
    router.include_router(_section.router)

DEFAULTS = "default"
LOCK_ALERT = "lock_alert_after_seconds"


@dataclass(frozen=True)
class PolicyValue:
    name: str
    value: Any
    #: the value as JSON writes it (as it is set in the environment)
    written: str
    #: the value as people read it (durations in hours and days)
    shown: str
    #: where it comes from: ``default`` or the environment variable
    source: str


def _shown(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name.endswith("_seconds") and isinstance(value, int | float):
        if value == 0:
            return "0 (never)" if name == LOCK_ALERT else "0 (at once)"
        return format_duration(int(value)) if value >= 60 else f"{value:g}s"
    return str(value)


def policy_values(settings: Settings, shop: str) -> tuple[list[PolicyValue], str | None]:
    """The shop's effective policy, each value with its source; or why there is none."""
    try:
        policy = settings.policy_for(shop)
    except ValueError as error:
        return [], str(error)
    shop_own = settings.shop_policies.get(shop, {})
    values = []
    for field in dataclasses.fields(CartPolicy):
        name = field.name
        if name in shop_own:
            source = f"{env_name('shop_policies')} ({shop})"
        elif name in settings.policy:
            source = env_name("policy")
        elif name == LOCK_ALERT:
            source = env_name(LOCK_ALERT)
        else:
            source = DEFAULTS
        value = getattr(policy, name)
        values.append(PolicyValue(name, value, json.dumps(value), _shown(name, value), source))
    return values, None


def _settings(context: WebContext) -> Settings:
    return context.settings if context.settings is not None else Settings.model_construct()


@router.get("/admin/settings/policy", summary="The shop's cart policy")
async def policy_page(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    shop = page_shop(request, context)
    settings = _settings(context)
    values, problem = policy_values(settings, shop)
    return render_admin(
        request,
        "admin/settings_policy.html",
        active="settings",
        sections=SECTIONS,
        shop=shop,
        values=values,
        problem=problem,
        env_policy=env_name("policy"),
        env_shops=env_name("shop_policies"),
        env_alert=env_name(LOCK_ALERT),
        every_shop=json.dumps(settings.policy, sort_keys=True) if settings.policy else None,
        this_shop=(
            json.dumps(settings.shop_policies[shop], sort_keys=True)
            if shop in settings.shop_policies
            else None
        ),
        other_shops=sorted(name for name in settings.shop_policies if name != shop),
    )


@router.get("/admin/settings", summary="Settings")
async def overview(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    shop = page_shop(request, context)
    sessions = context.sessions
    try:
        registry = await order_statuses.load_registry(sessions, shop)
    except StatusRefused:
        registry = None
    methods = await shipping_methods.list_methods(sessions, shop)
    campaign = await admin_settings_campaigns.campaigns(context).get(shop)
    keys = await list_keys(sessions, shop)
    values, problem = policy_values(_settings(context), shop)
    return render_admin(
        request,
        "admin/settings.html",
        active="settings",
        sections=SECTIONS,
        shop=shop,
        registry=registry,
        methods=methods,
        enabled_methods=sum(1 for method in methods if method.enabled),
        campaign=campaign,
        active_keys=sum(1 for key in keys if not key.revoked),
        keys=keys,
        policy={value.name: value for value in values},
        overridden=sum(1 for value in values if value.source != DEFAULTS),
        policy_problem=problem,
    )
