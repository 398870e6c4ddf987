"""Reminder campaigns in the database: one per shop, with its reminders.

``load_campaign`` reads a shop's campaign (every reminder, removed ones included, in
position order); ``save_campaign`` writes the shop-level settings and ``update_campaign``
changes some of them; ``save_reminder`` adds or replaces one reminder; ``remove_reminder``
marks one removed (kept, so statistics and running sequences still name it);
``replace_campaign`` writes a whole campaign at once (settings and reminders; the shop's
reminders it does not hold are removed) and ``create_campaign`` does so only for a shop
without a campaign. Every write checks its input and bumps the campaign's ``version``
once, in one transaction (the campaign's row is locked on PostgreSQL, so concurrent edits
of a shop's campaign apply one after the other).

A refused write raises ``CampaignRefused`` and changes nothing; the types and the checks,
with every refusal code, are in ``activities.campaign_checks`` (import the types from
here).

The rule for carts already in a sequence when the campaign changes is in
``workflows.reminders`` (and the README): a sequence keeps the reminders and times it was
planned with; what a reminder says is read when it is sent; a removed reminder (or a
disabled campaign) is skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from activities.campaign_checks import (
    SETTING_FIELDS,
    CampaignConfig,
    CampaignRefused,
    CouponKind,
    CouponOffer,
    ReminderDefinition,
    ReminderVariant,
    RestartRule,
    check_admin,
    check_campaign,
    check_reminder,
    check_reminder_set,
    check_settings,
    check_shop_id,
)
from activities.db import SessionFactory, write_transaction
from activities.mail_render import TEMPLATES
from activities.models import Campaign, CampaignReminder

__all__ = [
    "SETTING_FIELDS",
    "CampaignConfig",
    "CampaignRefused",
    "CouponKind",
    "CouponOffer",
    "ReminderDefinition",
    "ReminderVariant",
    "RestartRule",
    "SessionFactory",
    "check_campaign",
    "check_reminder",
    "check_settings",
    "create_campaign",
    "load_campaign",
    "remove_reminder",
    "replace_campaign",
    "save_campaign",
    "save_reminder",
    "update_campaign",
]

#: the columns of a variant: variant a's are the reminder's own, variant b's are the keys
#: of its ``variant_b`` JSON
_VARIANT_COLUMNS = ("subject", "template", "coupon_kind", "coupon_amount", "coupon_expiry_days")


# --------------------------------------------------------------------------- rows


def _variant_values(variant: ReminderVariant) -> dict[str, Any]:
    coupon = variant.coupon
    return {
        "subject": variant.subject,
        "template": variant.template,
        "coupon_kind": coupon.kind if coupon else None,
        "coupon_amount": coupon.amount if coupon else None,
        "coupon_expiry_days": coupon.expiry_days if coupon else None,
    }


def _variant_of(values: Mapping[str, Any]) -> ReminderVariant:
    kind, amount, days = (values.get(name) for name in _VARIANT_COLUMNS[2:])
    coupon = None
    if kind is not None and amount is not None and days is not None:
        coupon = CouponOffer(kind=kind, amount=amount, expiry_days=days)
    return ReminderVariant(
        subject=str(values["subject"]), template=str(values["template"]), coupon=coupon
    )


def _definition(row: CampaignReminder) -> ReminderDefinition:
    return ReminderDefinition(
        reminder_id=row.reminder_id,
        position=row.position,
        name=row.name,
        delay_seconds=row.delay_seconds,
        automatic=row.automatic,
        a=_variant_of({name: getattr(row, name) for name in _VARIANT_COLUMNS}),
        b=_variant_of(row.variant_b) if row.variant_b else None,
        removed=row.removed_at is not None,
    )


def _reminder_values(reminder: ReminderDefinition, now: datetime) -> dict[str, Any]:
    return {
        "position": reminder.position,
        "name": reminder.name,
        "delay_seconds": reminder.delay_seconds,
        "automatic": reminder.automatic,
        **_variant_values(reminder.a),
        "variant_b": None if reminder.b is None else _variant_values(reminder.b),
        "updated_at": now,
        "removed_at": None,
    }


def _config_of(row: Campaign, reminders: Iterable[ReminderDefinition] = ()) -> CampaignConfig:
    return CampaignConfig(
        shop_id=row.shop_id,
        version=row.version,
        reminders=tuple(reminders),
        **{name: getattr(row, name) for name in SETTING_FIELDS},
    )


def _write_settings(row: Campaign, config: CampaignConfig) -> None:
    for name in SETTING_FIELDS:
        setattr(row, name, getattr(config, name))


# --------------------------------------------------------------------------- reading


async def load_campaign(sessions: SessionFactory, shop_id: str) -> CampaignConfig | None:
    """The shop's campaign, or ``None`` if the shop has none."""
    async with sessions() as session:
        row = await session.get(Campaign, shop_id)
        if row is None:
            return None
        reminders = await session.execute(
            select(CampaignReminder)
            .where(CampaignReminder.shop_id == shop_id)
            .order_by(CampaignReminder.position, CampaignReminder.reminder_id)
        )
        return _config_of(row, (_definition(item) for item in reminders.scalars()))


# --------------------------------------------------------------------------- writing


async def _bump(session: AsyncSession, shop_id: str, now: datetime, by: str | None) -> Campaign:
    """The shop's campaign row, locked (PostgreSQL), made with the default settings if
    there is none, its version bumped."""
    row = await session.get(Campaign, shop_id, with_for_update=True)
    if row is None:
        row = Campaign(shop_id=shop_id, version=0, created_at=now)
        _write_settings(row, CampaignConfig(shop_id=shop_id))
        session.add(row)
    row.version += 1
    row.updated_at = now
    row.updated_by = by
    return row


async def _reminder_rows(session: AsyncSession, shop_id: str) -> list[CampaignReminder]:
    result = await session.execute(
        select(CampaignReminder).where(CampaignReminder.shop_id == shop_id)
    )
    return list(result.scalars())


def _write_reminder(
    session: AsyncSession,
    shop_id: str,
    reminder: ReminderDefinition,
    existing: CampaignReminder | None,
    now: datetime,
) -> None:
    values = _reminder_values(reminder, now)
    if existing is None:
        session.add(
            CampaignReminder(
                shop_id=shop_id, reminder_id=reminder.reminder_id, created_at=now, **values
            )
        )
    else:
        for name, value in values.items():
            setattr(existing, name, value)


def _mark_removed(row: CampaignReminder, now: datetime) -> None:
    row.removed_at = now
    row.updated_at = now


async def save_campaign(
    sessions: SessionFactory, config: CampaignConfig, now: datetime, by: str | None = None
) -> int:
    """Write the shop-level settings of ``config`` (not its reminders); the new version."""
    check_settings(config)
    check_admin(by)

    async def work(session: AsyncSession) -> int:
        row = await _bump(session, config.shop_id, now, by)
        _write_settings(row, config)
        return row.version

    return await write_transaction(sessions, work)


async def update_campaign(
    sessions: SessionFactory,
    shop_id: str,
    changes: Mapping[str, Any],
    now: datetime,
    by: str | None = None,
) -> int:
    """Change the settings named in ``changes`` (``SETTING_FIELDS``), keep the others; a
    shop without a campaign gets one with the default settings and these changes. The
    new version."""
    check_shop_id(shop_id)
    check_admin(by)
    unknown = sorted(set(changes) - set(SETTING_FIELDS))
    if unknown:
        raise CampaignRefused(
            "invalid_setting",
            f"no such setting: {', '.join(unknown)} (settings: {', '.join(SETTING_FIELDS)})",
        )
    # refuse what is wrong before taking the lock (and again on the merged settings below)
    check_settings(dataclasses.replace(CampaignConfig(shop_id=shop_id), **changes))

    async def work(session: AsyncSession) -> int:
        row = await _bump(session, shop_id, now, by)
        check_settings(dataclasses.replace(_config_of(row), **changes))
        for name, value in changes.items():
            setattr(row, name, value)
        return row.version

    return await write_transaction(sessions, work)


async def save_reminder(
    sessions: SessionFactory,
    shop_id: str,
    reminder: ReminderDefinition,
    now: datetime,
    by: str | None = None,
    *,
    templates: Path = TEMPLATES,
) -> int:
    """Add or replace one reminder (a removed one comes back); the campaign's new version.

    Refused when another active reminder has its position (``duplicate_position``) or
    when it would be the campaign's 21st active reminder (``too_many_reminders``)."""
    check_shop_id(shop_id)
    check_admin(by)
    check_reminder(reminder, templates)
    if reminder.removed:
        raise CampaignRefused(
            "invalid_setting", "a reminder is saved active; remove it with remove_reminder"
        )

    async def work(session: AsyncSession) -> int:
        campaign = await _bump(session, shop_id, now, by)
        rows = await _reminder_rows(session, shop_id)
        existing = next((row for row in rows if row.reminder_id == reminder.reminder_id), None)
        check_reminder_set([*(_definition(row) for row in rows if row is not existing), reminder])
        _write_reminder(session, shop_id, reminder, existing, now)
        return campaign.version

    return await write_transaction(sessions, work)


async def remove_reminder(
    sessions: SessionFactory, shop_id: str, reminder_id: str, now: datetime, by: str | None = None
) -> int:
    """Mark a reminder removed (kept for statistics); the campaign's new version."""
    check_admin(by)

    async def work(session: AsyncSession) -> int:
        row = await session.get(CampaignReminder, (shop_id, reminder_id))
        if row is None or row.removed_at is not None:
            raise CampaignRefused(
                "reminder_not_found", f"shop {shop_id!r} has no reminder {reminder_id!r}"
            )
        campaign = await _bump(session, shop_id, now, by)
        _mark_removed(row, now)
        return campaign.version

    return await write_transaction(sessions, work)


async def _replace(
    session: AsyncSession, config: CampaignConfig, now: datetime, by: str | None
) -> int:
    row = await _bump(session, config.shop_id, now, by)
    _write_settings(row, config)
    existing = {item.reminder_id: item for item in await _reminder_rows(session, config.shop_id)}
    active = config.active_reminders
    for item in active:
        _write_reminder(session, config.shop_id, item, existing.get(item.reminder_id), now)
    keep = {item.reminder_id for item in active}
    for reminder_id, stored in existing.items():
        if reminder_id not in keep and stored.removed_at is None:
            _mark_removed(stored, now)
    return row.version


async def replace_campaign(
    sessions: SessionFactory,
    config: CampaignConfig,
    now: datetime,
    by: str | None = None,
    *,
    templates: Path = TEMPLATES,
) -> int:
    """Write a whole campaign in one transaction (one new version): its settings and its
    active reminders. The shop's reminders that ``config`` does not hold as active are
    marked removed (kept, like ``remove_reminder``); removed ones it holds are not
    written. The new version."""
    check_admin(by)
    check_campaign(config, templates)
    return await write_transaction(sessions, lambda session: _replace(session, config, now, by))


async def create_campaign(
    sessions: SessionFactory,
    config: CampaignConfig,
    now: datetime,
    by: str | None = None,
    *,
    templates: Path = TEMPLATES,
) -> int | None:
    """``replace_campaign`` for a shop that has no campaign: its version (1), or ``None``
    (and nothing written) when the shop has one already."""
    check_admin(by)
    check_campaign(config, templates)

    async def work(session: AsyncSession) -> int | None:
        if await session.get(Campaign, config.shop_id, with_for_update=True) is not None:
            return None
        return await _replace(session, config, now, by)

    return await write_transaction(sessions, work)
