"""The text of ``cartkeeper campaigns``: option values read (durations, coupons, caps,
quiet hours) and a campaign rendered for a terminal."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from activities.campaigns import CampaignConfig, CouponKind, CouponOffer

# --------------------------------------------------------------------------- option values


_DURATION_PART = re.compile(r"(\d+)([dhms])")
_DURATION_UNITS = {"d": 86_400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> int:
    """``90m``, ``1h``, ``24h``, ``1h30m``, ``3d``, ``45s`` or plain seconds (``3600``)."""
    value = text.strip().lower()
    if value.isdigit():
        return int(value)
    if value and re.fullmatch(r"(?:\d+[dhms])+", value):
        return sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(value))
    raise ValueError(f"{text!r} is not a duration: use 90m, 1h, 24h, 1h30m, 3d or seconds (3600)")


def parse_coupon(text: str) -> tuple[CouponKind, int] | None:
    """``10%`` (percent), ``500`` (a fixed amount in minor units) or ``none``."""
    value = text.strip()
    if value.lower() == "none":
        return None
    percent = re.fullmatch(r"(\d+)\s*%", value)
    if percent:
        return ("percent", int(percent.group(1)))
    if value.isdigit():
        return ("fixed", int(value))
    if re.fullmatch(r"\d+[.,]\d+", value):
        raise ValueError(
            f"{text!r}: a fixed amount is given in minor units of the cart's currency"
            " (500 for 5.00 EUR), not as a decimal"
        )
    raise ValueError(f"{text!r} is not a coupon: use 10% (percent), 500 (minor units) or none")


def parse_cap(text: str) -> tuple[int, int]:
    """``3/7d``: at most 3 reminders per customer in 7 days."""
    found = re.fullmatch(r"(\d+)/(\d+)d?", text.strip().lower())
    if not found:
        raise ValueError(f"{text!r} is not a cap: use COUNT/DAYSd, e.g. 3/7d")
    return int(found.group(1)), int(found.group(2))


def parse_quiet_hours(text: str) -> tuple[int, int]:
    """``21:00-08:00`` (minutes after midnight, start and end) or ``none`` (``(0, 0)``)."""
    value = text.strip().lower()
    if value == "none":
        return (0, 0)
    found = re.fullmatch(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", value)
    if not found:
        raise ValueError(f"{text!r} is not quiet hours: use 21:00-08:00 or none")
    hours = (int(found.group(1)), int(found.group(3)))
    minutes = (int(found.group(2)), int(found.group(4)))
    if max(hours) > 23 or max(minutes) > 59:
        raise ValueError(f"{text!r}: a time is 00:00 to 23:59")
    start, end = (h * 60 + m for h, m in zip(hours, minutes, strict=True))
    if start == end:
        raise ValueError(f"{text!r}: start and end are equal (none: no quiet hours)")
    return start, end


def parsed(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """An option callback: ``parse`` the given text; a ``ValueError`` is a usage error."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as error:
            raise click.BadParameter(str(error), ctx, param) from None

    return callback


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def format_coupon(coupon: CouponOffer | None) -> str:
    if coupon is None:
        return "-"
    value = f"{coupon.amount}%" if coupon.kind == "percent" else f"{coupon.amount} minor units"
    return f"{value}, {coupon.expiry_days}d"


# --------------------------------------------------------------------------- output


def render_campaign(config: CampaignConfig) -> str:
    from starter.output import format_duration, safe, table

    quiet = (
        "none"
        if config.quiet_start_minute == config.quiet_end_minute
        else f"{format_minute(config.quiet_start_minute)}-{format_minute(config.quiet_end_minute)}"
    )
    head = [
        f"campaign of shop {safe(config.shop_id)}: "
        f"{'enabled' if config.enabled else 'disabled'}, version {config.version}",
        f"  shop name      {safe(config.shop_name)}",
        f"  sender         {safe(config.sender)}",
        f"  restore URL    {safe(config.restore_url)}",
        f"  consent        {'required' if config.requires_consent else 'not required'}",
        f"  restart rule   {config.restart_rule}",
        f"  quiet hours    {quiet} (customer's time; default time zone"
        f" {safe(config.default_time_zone)})",
        f"  cap            {config.cap_count} reminders per customer in"
        f" {config.cap_period_days} days",
        "",
    ]
    if not config.reminders:
        return "\n".join([*head, "no reminders (`cartkeeper campaigns reminder-set --help`)"])
    rows = []
    for item in config.reminders:
        b = item.b
        rows.append(
            [
                item.reminder_id,
                str(item.position),
                format_duration(item.delay_seconds),
                ("removed" if item.removed else "automatic" if item.automatic else "manual"),
                item.name,
                f"{item.a.subject} [{item.a.template}]",
                format_coupon(item.a.coupon),
                "-" if b is None else f"{b.subject} [{b.template}], {format_coupon(b.coupon)}",
            ]
        )
    body = table(
        ["ID", "POS", "DELAY", "MODE", "NAME", "SUBJECT [TEMPLATE]", "COUPON", "VARIANT B"],
        rows,
        right=(1, 2),
    )
    active = len(config.active_reminders)
    removed = len(config.reminders) - active
    tail = f"{active} reminder{'s' if active != 1 else ''}" + (
        f" ({removed} removed, kept for statistics)" if removed else ""
    )
    return "\n".join([*head, body, tail])
