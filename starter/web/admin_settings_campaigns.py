"""Settings: a shop's reminder campaign (seed 001), what ``cartkeeper campaigns show|set|
init`` and a part of ``reminder-set`` do, in the browser.

    GET  /admin/settings/campaign?shop=S                      settings and reminders
    POST /admin/settings/campaign                             the shop-level settings
    POST /admin/settings/campaign/init                        the default campaign (once)
    POST /admin/settings/campaign/reminders/{reminder_id}     a reminder's delay, subjects,
                                                              automatic or manual

The settings form holds every setting (and ``checkboxes``, saying it holds the
checkboxes: a browser leaves unchecked ones out); what differs from the campaign as it is (or, for
a shop without one, from the default settings) is changed, in one edit
(``CampaignClient.set_settings``). Quiet hours are written ``21:00-08:00`` or ``none``,
delays ``90m``, ``24h``, ``3d`` or seconds, as on the command line
(``starter.cli.campaign_text``). A reminder keeps everything the form does not show
(name, position, template, coupons). The admin's user name is kept as the campaign's
last editor; refusals (``activities.campaign_checks``' codes) come back as the flash
message with their code. The template preview is ``admin_settings_preview``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from activities.campaign_checks import RESTART_RULES
from activities.campaigns import CampaignConfig, CampaignRefused, ReminderDefinition
from starter.campaigns import CampaignClient
from starter.cli.campaign_text import (
    format_coupon,
    format_minute,
    parse_duration,
    parse_quiet_hours,
)
from starter.output import format_duration
from starter.web.admin_auth import Admin, Viewer
from starter.web.admin_render import render_admin
from starter.web.admin_settings_common import (
    SECTIONS,
    Form,
    checked,
    done,
    form_shop,
    page_shop,
    read_form,
    refused,
    text,
)
from starter.web.deps import Context, WebContext

log = logging.getLogger("cartkeeper.web.admin")

router = APIRouter(tags=["admin"], include_in_schema=False)

PATH = "/admin/settings/campaign"


def campaigns(context: WebContext) -> CampaignClient:
    return CampaignClient(context.sessions, clock=context.now)


def quiet_hours(config: CampaignConfig) -> str:
    if config.quiet_start_minute == config.quiet_end_minute:
        return "none"
    return f"{format_minute(config.quiet_start_minute)}-{format_minute(config.quiet_end_minute)}"


def _whole(raw: str | None, what: str, code: str) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
        raise CampaignRefused(code, f"{what} must be a whole number, not {raw[:20]!r}")
    return int(raw)


def setting_changes(config: CampaignConfig, form: Form) -> dict[str, Any]:
    """What the settings form changes of ``config``."""
    values: dict[str, Any] = {}
    if checked(form, "checkboxes"):  # the form holds them (unchecked ones are left out)
        values["enabled"] = checked(form, "enabled")
        values["requires_consent"] = checked(form, "requires_consent")
    for name in ("shop_name", "sender", "restore_url", "restart_rule", "default_time_zone"):
        value = text(form, name)
        if value is not None:
            values[name] = value
    quiet = text(form, "quiet_hours")
    if quiet is not None:
        try:
            values["quiet_start_minute"], values["quiet_end_minute"] = parse_quiet_hours(quiet)
        except ValueError as error:
            raise CampaignRefused("invalid_quiet_hours", str(error)) from None
    count = _whole(text(form, "cap_count"), "the cap's count", "invalid_cap")
    if count is not None:
        values["cap_count"] = count
    days = _whole(text(form, "cap_period_days"), "the cap's period", "invalid_cap")
    if days is not None:
        values["cap_period_days"] = days
    return {name: value for name, value in values.items() if getattr(config, name) != value}


def reminder_changes(reminder: ReminderDefinition, form: Form) -> ReminderDefinition:
    """``reminder`` with the form's delay, subjects and mode."""
    changed = reminder
    delay = text(form, "delay")
    if delay is not None:
        try:
            changed = dataclasses.replace(changed, delay_seconds=parse_duration(delay))
        except ValueError as error:
            raise CampaignRefused("invalid_delay", str(error)) from None
    subject = text(form, "subject")
    if subject is not None:
        changed = dataclasses.replace(changed, a=dataclasses.replace(changed.a, subject=subject))
    b_subject = text(form, "b_subject")
    if b_subject is not None and changed.b is not None:
        changed = dataclasses.replace(changed, b=dataclasses.replace(changed.b, subject=b_subject))
    if checked(form, "mode"):
        changed = dataclasses.replace(changed, automatic=checked(form, "automatic"))
    return changed


@router.get(PATH, summary="Reminder campaign")
async def campaign_page(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    shop = page_shop(request, context)
    config = await campaigns(context).get(shop)
    return render_admin(
        request,
        "admin/settings_campaign.html",
        active="settings",
        sections=SECTIONS,
        shop=shop,
        config=config,
        shown=config or CampaignConfig(shop_id=shop),
        quiet_hours=quiet_hours,
        restart_rules=RESTART_RULES,
        duration=format_duration,
        coupon=format_coupon,
    )


@router.post(PATH, summary="Change the campaign's settings")
async def save_settings(request: Request, admin: Admin, context: Context) -> RedirectResponse:
    form = await read_form(request)
    shop = form_shop(form, context)
    client = campaigns(context)
    try:
        config = await client.get(shop) or CampaignConfig(shop_id=shop)
        changes = setting_changes(config, form)
        if not changes:
            return done(request, PATH, shop, "Nothing changed")
        saved = await client.set_settings(shop, by=admin.username, **changes)
    except CampaignRefused as error:
        return refused(request, PATH, shop, error.code, error.message)
    log.info("%s changed the campaign of shop %s: %s", admin.username, shop, sorted(changes))
    return done(
        request,
        PATH,
        shop,
        f"Settings saved (version {saved.version}): {', '.join(sorted(changes))}",
    )


@router.post(f"{PATH}/init", summary="Give the shop the default campaign")
async def init_campaign(request: Request, admin: Admin, context: Context) -> RedirectResponse:
    form = await read_form(request)
    shop = form_shop(form, context)
    try:
        config, created = await campaigns(context).init(shop, by=admin.username)
    except CampaignRefused as error:
        return refused(request, PATH, shop, error.code, error.message)
    if not created:
        return done(
            request, PATH, shop, f"The shop has a campaign already (version {config.version})"
        )
    log.info("%s gave shop %s the default campaign", admin.username, shop)
    names = ", ".join(item.reminder_id for item in config.active_reminders)
    return done(request, PATH, shop, f"Default campaign written (version 1): {names}")


@router.post(PATH + "/reminders/{reminder_id}", summary="Edit a reminder")
async def save_reminder(
    reminder_id: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    form = await read_form(request)
    shop = form_shop(form, context)
    client = campaigns(context)
    try:
        config = await client.show(shop)
        reminder = config.reminder(reminder_id)
        if reminder is None or reminder.removed:
            raise CampaignRefused(
                "reminder_not_found", f"shop {shop!r} has no reminder {reminder_id[:64]!r}"
            )
        changed = reminder_changes(reminder, form)
        if changed == reminder:
            return done(request, PATH, shop, f"Nothing changed in reminder {reminder_id}")
        saved = await client.set_reminder(shop, changed, by=admin.username)
    except CampaignRefused as error:
        return refused(request, PATH, shop, error.code, error.message)
    log.info("%s edited reminder %s of shop %s", admin.username, reminder_id, shop)
    return done(
        request,
        PATH,
        shop,
        f"Reminder {reminder_id} saved (version {saved.version}): after"
        f" {format_duration(changed.delay_seconds)},"
        f" {'automatic' if changed.automatic else 'manual'}, {changed.a.subject!r}",
    )
