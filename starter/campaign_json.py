"""A reminder campaign as a JSON document: ``campaign_json`` writes it (``cartkeeper
campaigns dump``, ``show --json``), ``campaign_from_json`` reads it (``load``).

The document::

    {
      "shop_id": "demo", "version": 7,                  # informational, ignored by load
      "enabled": true, "shop_name": "Demo Shop", "sender": "shop@example.com",
      "restore_url": "https://shop.example.com/cart/{cart_id}?coupon={coupon}",
      "requires_consent": false, "restart_rule": "continue",
      "quiet_start_minute": 1260, "quiet_end_minute": 480, "default_time_zone": "UTC",
      "cap_count": 3, "cap_period_days": 7,
      "reminders": [
        {"id": "coupon-24h", "position": 1, "name": "A coupon", "delay_seconds": 86400,
         "automatic": true, "subject": "10 % off your cart", "template": "reminder",
         "coupon": {"kind": "percent", "amount": 10, "expiry_days": 7},
         "b": {"subject": "5.00 off your cart", "template": "reminder",
               "coupon": {"kind": "fixed", "amount": 500, "expiry_days": 7}}}
      ]
    }

Every setting key and ``reminders`` are required; in a reminder ``automatic`` (default
true), ``coupon``, ``b`` (default none) and ``removed`` (default false; ``show --json``
writes it) may be left out. A fixed coupon's ``amount`` is in minor units of the cart's
currency (500 is 5.00 EUR, 500 JPY).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from activities.campaigns import (
    SETTING_FIELDS,
    CampaignConfig,
    CampaignRefused,
    CouponOffer,
    ReminderDefinition,
    ReminderVariant,
)
from workflows.validation import is_int


def _variant_json(variant: ReminderVariant) -> dict[str, Any]:
    """A variant's keys: variant a's are the reminder's own, variant b's its ``b``."""
    coupon = variant.coupon
    return {
        "subject": variant.subject,
        "template": variant.template,
        "coupon": None
        if coupon is None
        else {"kind": coupon.kind, "amount": coupon.amount, "expiry_days": coupon.expiry_days},
    }


def reminder_json(item: ReminderDefinition, *, with_removed: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.reminder_id,
        "position": item.position,
        "name": item.name,
        "delay_seconds": item.delay_seconds,
        "automatic": item.automatic,
        **_variant_json(item.a),
        "b": None if item.b is None else _variant_json(item.b),
    }
    if with_removed:
        out["removed"] = item.removed
    return out


def campaign_json(config: CampaignConfig, *, include_removed: bool = False) -> dict[str, Any]:
    """The campaign as the JSON document ``campaign_from_json`` reads: its active
    reminders, or (``include_removed``) every reminder with a ``removed`` flag."""
    return {
        "shop_id": config.shop_id,
        "version": config.version,
        **{name: getattr(config, name) for name in SETTING_FIELDS},
        "reminders": [
            reminder_json(item, with_removed=include_removed)
            for item in config.reminders
            if include_removed or not item.removed
        ],
    }


def _invalid(where: str, message: str) -> CampaignRefused:
    return CampaignRefused("invalid_document", f"{where}: {message}" if where else message)


_BOOL_SETTINGS = {"enabled", "requires_consent"}
_INT_SETTINGS = {"quiet_start_minute", "quiet_end_minute", "cap_count", "cap_period_days"}
_JSON_KINDS: dict[str, Callable[[object], bool]] = {
    "text": lambda value: isinstance(value, str),
    "integer": is_int,
    "boolean": lambda value: isinstance(value, bool),
}


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "array"
    return "object"


def _object(value: object, where: str, required: set[str], optional: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(where, f"must be a JSON object, not {json_type(value)}")
    missing = sorted(required - set(value))
    if missing:
        raise _invalid(where, f"missing key(s) {', '.join(missing)}")
    unknown = sorted(set(value) - required - optional)
    if unknown:
        raise _invalid(
            where,
            f"unknown key(s) {', '.join(map(str, unknown))} (known:"
            f" {', '.join(sorted(required | optional))})",
        )
    return value


def _typed(value: object, kind: str, where: str) -> Any:
    if not _JSON_KINDS[kind](value):
        raise _invalid(where, f"must be a JSON {kind}, not {json_type(value)}")
    return value


def _coupon_from(value: object, where: str) -> CouponOffer | None:
    if value is None:
        return None
    data = _object(value, where, {"kind", "amount", "expiry_days"}, set())
    return CouponOffer(
        kind=_typed(data["kind"], "text", f"{where}.kind"),
        amount=_typed(data["amount"], "integer", f"{where}.amount"),
        expiry_days=_typed(data["expiry_days"], "integer", f"{where}.expiry_days"),
    )


def _variant_from(data: Mapping[str, Any], where: str) -> ReminderVariant:
    return ReminderVariant(
        subject=_typed(data["subject"], "text", f"{where}.subject"),
        template=_typed(data["template"], "text", f"{where}.template"),
        coupon=_coupon_from(data.get("coupon"), f"{where}.coupon"),
    )


def _reminder_from(value: object, where: str) -> ReminderDefinition:
    data = _object(
        value,
        where,
        {"id", "position", "name", "delay_seconds", "subject", "template"},
        {"automatic", "coupon", "b", "removed"},
    )
    b = data.get("b")
    variant_b = None
    if b is not None:
        variant_b = _variant_from(
            _object(b, f"{where}.b", {"subject", "template"}, {"coupon"}), f"{where}.b"
        )
    return ReminderDefinition(
        reminder_id=_typed(data["id"], "text", f"{where}.id"),
        position=_typed(data["position"], "integer", f"{where}.position"),
        name=_typed(data["name"], "text", f"{where}.name"),
        delay_seconds=_typed(data["delay_seconds"], "integer", f"{where}.delay_seconds"),
        automatic=_typed(data.get("automatic", True), "boolean", f"{where}.automatic"),
        a=_variant_from(data, where),
        b=variant_b,
        removed=_typed(data.get("removed", False), "boolean", f"{where}.removed"),
    )


def campaign_from_json(shop_id: str, document: object) -> CampaignConfig:
    """The campaign a JSON document describes, for ``shop_id`` (the document's own
    ``shop_id`` and ``version``, if any, are ignored: a shop's dump can be loaded into
    another shop). Types are checked here (``invalid_document``), values when it is
    written (``activities.campaigns``)."""
    data = _object(document, "", {*SETTING_FIELDS, "reminders"}, {"shop_id", "version"})
    values: dict[str, Any] = {}
    for name in SETTING_FIELDS:
        kind = (
            "boolean" if name in _BOOL_SETTINGS else "integer" if name in _INT_SETTINGS else "text"
        )
        values[name] = _typed(data[name], kind, name)
    reminders = data["reminders"]
    if not isinstance(reminders, list):
        raise _invalid("reminders", f"must be a JSON array, not {json_type(reminders)}")
    return CampaignConfig(
        shop_id=shop_id,
        reminders=tuple(
            _reminder_from(item, f"reminders[{index}]") for index, item in enumerate(reminders)
        ),
        **values,
    )
