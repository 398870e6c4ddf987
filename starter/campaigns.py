"""The Python client for reminder campaigns: read and edit a shop's campaign in the
read-model database (``activities.campaigns`` does the writing and the checking).

    async with CampaignClient.connect(Settings()) as campaigns:
        await campaigns.init("demo")                      # the default campaign, once
        await campaigns.set_settings("demo", sender="hello@shop.example", cap_count=2)
        await campaigns.set_reminder("demo", ReminderDefinition(...))
        await campaigns.remove_reminder("demo", "last-chance")
        document = await campaigns.dump("demo")           # JSON, for `load`
        await campaigns.load("demo", document)            # the whole campaign at once
        preview = await campaigns.preview("demo", "coupon-24h", "cart-1", links=..., ...)

Every edit bumps the campaign's ``version``; a refused one raises ``CampaignRefused`` with
a ``lower_snake`` code and changes nothing. No Temporal connection is needed: carts read
the campaign when they plan and when they send (``workflows.reminders`` says which edits
reach carts already in a sequence).

The JSON document (``dump`` writes it, ``load`` reads it)::

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

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from activities.campaigns import (
    SETTING_FIELDS,
    CampaignConfig,
    CampaignRefused,
    CouponOffer,
    ReminderDefinition,
    ReminderVariant,
    create_campaign,
    load_campaign,
    remove_reminder,
    replace_campaign,
    save_reminder,
    update_campaign,
)
from activities.mail_render import (
    DEFAULT_LOCALE,
    TEMPLATES,
    MailContent,
    MailCoupon,
    MailLine,
    MailRenderer,
    TemplateMissing,
)

if TYPE_CHECKING:
    from activities.db import SessionFactory
    from activities.links import Links
    from activities.settings import Settings

#: the base of the links in e-mail when the settings have no ``public_url``
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
#: where the links of an e-mail point, under the public URL (the token follows), as
#: ``starter.web.links`` serves them and ``activities.reminder_activities`` writes them
RECOVERY_PATH = "/r/"
UNSUBSCRIBE_PATH = "/u/"
#: the coupon code a preview shows (a preview issues no coupon)
PREVIEW_COUPON_CODE = "XXXX-XXXX"

Variant = Literal["a", "b"]


# --------------------------------------------------------------------------- the default


def default_campaign(shop_id: str) -> CampaignConfig:
    """A sensible start: three automatic reminders with the ``reminder`` template.

    - after 1 hour, "We saved your cart";
    - after 24 hours, a 10 % coupon valid 7 days; variant b (half the carts) offers a
      fixed 500 minor units of the cart's currency (5.00 EUR) instead;
    - after 72 hours, "Last chance".
    """
    return CampaignConfig(
        shop_id=shop_id,
        reminders=(
            ReminderDefinition(
                reminder_id="saved-cart",
                position=0,
                name="We saved your cart",
                delay_seconds=3600,
                automatic=True,
                a=ReminderVariant(subject="We saved your cart", template="reminder"),
            ),
            ReminderDefinition(
                reminder_id="coupon-24h",
                position=1,
                name="A coupon after a day",
                delay_seconds=24 * 3600,
                automatic=True,
                a=ReminderVariant(
                    subject="10 % off the cart you left",
                    template="reminder",
                    coupon=CouponOffer(kind="percent", amount=10, expiry_days=7),
                ),
                b=ReminderVariant(
                    subject="A discount on the cart you left",
                    template="reminder",
                    coupon=CouponOffer(kind="fixed", amount=500, expiry_days=7),
                ),
            ),
            ReminderDefinition(
                reminder_id="last-chance",
                position=2,
                name="Last chance",
                delay_seconds=72 * 3600,
                automatic=True,
                a=ReminderVariant(
                    subject="Last chance: your cart is still waiting", template="reminder"
                ),
            ),
        ),
    )


# --------------------------------------------------------------------------- JSON


def _coupon_json(coupon: CouponOffer | None) -> dict[str, Any] | None:
    if coupon is None:
        return None
    return {"kind": coupon.kind, "amount": coupon.amount, "expiry_days": coupon.expiry_days}


def reminder_json(item: ReminderDefinition, *, with_removed: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.reminder_id,
        "position": item.position,
        "name": item.name,
        "delay_seconds": item.delay_seconds,
        "automatic": item.automatic,
        "subject": item.a.subject,
        "template": item.a.template,
        "coupon": _coupon_json(item.a.coupon),
        "b": None
        if item.b is None
        else {
            "subject": item.b.subject,
            "template": item.b.template,
            "coupon": _coupon_json(item.b.coupon),
        },
    }
    if with_removed:
        out["removed"] = item.removed
    return out


def campaign_json(config: CampaignConfig, *, include_removed: bool = False) -> dict[str, Any]:
    """The campaign as the JSON document ``campaign_from_json`` reads: its active
    reminders, or (``include_removed``) every reminder with a ``removed`` flag."""
    out: dict[str, Any] = {"shop_id": config.shop_id, "version": config.version}
    for name in SETTING_FIELDS:
        out[name] = getattr(config, name)
    out["reminders"] = [
        reminder_json(item, with_removed=include_removed)
        for item in config.reminders
        if include_removed or not item.removed
    ]
    return out


def _invalid(where: str, message: str) -> CampaignRefused:
    return CampaignRefused("invalid_document", f"{where}: {message}" if where else message)


_BOOL_SETTINGS = {"enabled", "requires_consent"}
_INT_SETTINGS = {"quiet_start_minute", "quiet_end_minute", "cap_count", "cap_period_days"}


def _object(value: object, where: str, required: set[str], optional: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(where, f"must be a JSON object, not {type(value).__name__}")
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
    ok = {
        "text": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[kind]
    if not ok:
        raise _invalid(where, f"must be a JSON {kind}, not {json_type(value)}")
    return value


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


def _coupon_from(value: object, where: str) -> CouponOffer | None:
    if value is None:
        return None
    data = _object(value, where, {"kind", "amount", "expiry_days"}, set())
    return CouponOffer(
        kind=_typed(data["kind"], "text", f"{where}.kind"),
        amount=_typed(data["amount"], "integer", f"{where}.amount"),
        expiry_days=_typed(data["expiry_days"], "integer", f"{where}.expiry_days"),
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
        b_data = _object(b, f"{where}.b", {"subject", "template"}, {"coupon"})
        variant_b = ReminderVariant(
            subject=_typed(b_data["subject"], "text", f"{where}.b.subject"),
            template=_typed(b_data["template"], "text", f"{where}.b.template"),
            coupon=_coupon_from(b_data.get("coupon"), f"{where}.b.coupon"),
        )
    return ReminderDefinition(
        reminder_id=_typed(data["id"], "text", f"{where}.id"),
        position=_typed(data["position"], "integer", f"{where}.position"),
        name=_typed(data["name"], "text", f"{where}.name"),
        delay_seconds=_typed(data["delay_seconds"], "integer", f"{where}.delay_seconds"),
        automatic=_typed(data.get("automatic", True), "boolean", f"{where}.automatic"),
        a=ReminderVariant(
            subject=_typed(data["subject"], "text", f"{where}.subject"),
            template=_typed(data["template"], "text", f"{where}.template"),
            coupon=_coupon_from(data.get("coupon"), f"{where}.coupon"),
        ),
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


# --------------------------------------------------------------------------- preview


@dataclass(frozen=True)
class ReminderPreview:
    """What reminder ``reminder_id`` (variant ``variant``) would say to a cart now."""

    shop_id: str
    cart_id: str
    cart_state: str
    reminder_id: str
    reminder_name: str
    variant: Variant
    template: str
    #: the templates' locale used (after falling back)
    locale: str
    sender: str
    recipient: str
    subject: str
    text: str
    html: str
    recovery_url: str
    unsubscribe_url: str
    #: the reminder's coupon; the e-mail shows ``PREVIEW_COUPON_CODE`` (none is issued)
    coupon: CouponOffer | None


def public_url(settings: Settings) -> str:
    """The base URL of the links in e-mail: the ``public_url`` setting (else
    ``DEFAULT_PUBLIC_URL``), without a trailing slash."""
    value = getattr(settings, "public_url", None)
    return str(value or DEFAULT_PUBLIC_URL).rstrip("/")


def mail_links(
    links: Links, base_url: str, shop_id: str, cart_id: str, reminder_id: str, email: str
) -> tuple[str, str]:
    """The recovery and unsubscribe links of a reminder to ``email`` about a cart."""
    from activities.links import RecoveryClaim, UnsubscribeClaim

    base = base_url.rstrip("/")
    recovery = links.recovery_token(RecoveryClaim(shop_id, cart_id, reminder_id))
    unsubscribe = links.unsubscribe_token(UnsubscribeClaim(shop_id, email))
    return f"{base}{RECOVERY_PATH}{recovery}", f"{base}{UNSUBSCRIBE_PATH}{unsubscribe}"


def _mailbox(name: str | None, address: str) -> str:
    return f"{name} <{address}>" if name else address


# --------------------------------------------------------------------------- the client


class CampaignClient:
    """Read and edit shops' campaigns. ``by`` (who edits, at most 64 characters) is kept
    with the campaign as its last editor."""

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        templates: Path = TEMPLATES,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.sessions = sessions
        self.templates = templates
        self._clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    @asynccontextmanager
    async def connect(cls, settings: Settings) -> AsyncIterator[CampaignClient]:
        """A client on the settings' read model (``DATABASE_URL``), closed afterwards."""
        from activities.db import make_engine, make_session_factory

        engine = make_engine(settings.resolved_database_url())
        try:
            yield cls(make_session_factory(engine))
        finally:
            await engine.dispose()

    # ------------------------------------------------------------------ reading

    async def get(self, shop_id: str) -> CampaignConfig | None:
        """The shop's campaign (removed reminders included), or ``None``."""
        return await load_campaign(self.sessions, shop_id)

    async def show(self, shop_id: str) -> CampaignConfig:
        """The shop's campaign; ``campaign_not_found`` if it has none."""
        config = await self.get(shop_id)
        if config is None:
            raise CampaignRefused(
                "campaign_not_found",
                f"shop {shop_id!r} has no campaign (`cartkeeper campaigns init` makes one)",
            )
        return config

    async def dump(self, shop_id: str) -> dict[str, Any]:
        """The shop's campaign as the JSON document ``load`` reads (active reminders)."""
        return campaign_json(await self.show(shop_id))

    # ------------------------------------------------------------------ editing

    async def set_settings(
        self,
        shop_id: str,
        *,
        enabled: bool | None = None,
        shop_name: str | None = None,
        sender: str | None = None,
        restore_url: str | None = None,
        requires_consent: bool | None = None,
        restart_rule: str | None = None,
        quiet_start_minute: int | None = None,
        quiet_end_minute: int | None = None,
        default_time_zone: str | None = None,
        cap_count: int | None = None,
        cap_period_days: int | None = None,
        by: str | None = None,
    ) -> CampaignConfig:
        """Change the shop-level settings given (not ``None``); the others stay. A shop
        without a campaign gets one (default settings, no reminders)."""
        given = {
            "enabled": enabled,
            "shop_name": shop_name,
            "sender": sender,
            "restore_url": restore_url,
            "requires_consent": requires_consent,
            "restart_rule": restart_rule,
            "quiet_start_minute": quiet_start_minute,
            "quiet_end_minute": quiet_end_minute,
            "default_time_zone": default_time_zone,
            "cap_count": cap_count,
            "cap_period_days": cap_period_days,
        }
        changes = {name: value for name, value in given.items() if value is not None}
        if not changes:
            raise ValueError("set_settings: give at least one setting to change")
        await update_campaign(self.sessions, shop_id, changes, self._clock(), by)
        return await self.show(shop_id)

    async def set_reminder(
        self, shop_id: str, reminder: ReminderDefinition, *, by: str | None = None
    ) -> CampaignConfig:
        """Add the reminder, or replace the one with its id (a removed one comes back)."""
        await save_reminder(
            self.sessions, shop_id, reminder, self._clock(), by, templates=self.templates
        )
        return await self.show(shop_id)

    async def remove_reminder(
        self, shop_id: str, reminder_id: str, *, by: str | None = None
    ) -> CampaignConfig:
        """Remove a reminder: it is kept, flagged removed (statistics and sequences that
        planned it still name it; those sequences skip it)."""
        await remove_reminder(self.sessions, shop_id, reminder_id, self._clock(), by)
        return await self.show(shop_id)

    async def load(
        self, shop_id: str, document: object, *, by: str | None = None
    ) -> CampaignConfig:
        """Replace the shop's whole campaign with a JSON document (see the module's
        docstring): its settings and reminders, in one edit (one new version).

        **The shop's reminders that the document does not list (or lists with
        ``"removed": true``) are removed** (kept, flagged removed, as by
        ``remove_reminder``); removed ones it lists come back."""
        config = campaign_from_json(shop_id, document)
        await replace_campaign(self.sessions, config, self._clock(), by, templates=self.templates)
        return await self.show(shop_id)

    async def init(self, shop_id: str, *, by: str | None = None) -> tuple[CampaignConfig, bool]:
        """Write ``default_campaign(shop_id)`` if the shop has no campaign; idempotent.
        ``(campaign, True)`` when it was written, ``(existing campaign, False)`` if not."""
        created = await create_campaign(
            self.sessions,
            default_campaign(shop_id),
            self._clock(),
            by,
            templates=self.templates,
        )
        return await self.show(shop_id), created is not None

    # ------------------------------------------------------------------ preview

    async def preview(
        self,
        shop_id: str,
        reminder_id: str,
        cart_id: str,
        *,
        links: Links,
        base_url: str = DEFAULT_PUBLIC_URL,
        variant: Variant = "a",
    ) -> ReminderPreview:
        """Render a reminder for a cart from the read model, as it would be sent now
        (nothing is sent, recorded or issued: the coupon code is a sample).

        Refused with ``campaign_not_found``, ``reminder_not_found`` (unknown or removed),
        ``no_variant_b``, ``cart_not_found``, ``no_address`` (the cart has no customer
        e-mail address), ``empty_cart`` or ``unknown_template``."""
        from activities.read_model import get_cart_record

        if variant not in ("a", "b"):
            raise ValueError(f"variant is 'a' or 'b', not {variant!r}")
        config = await self.show(shop_id)
        reminder = config.reminder(reminder_id)
        if reminder is None or reminder.removed:
            known = ", ".join(item.reminder_id for item in config.active_reminders) or "none"
            what = "a removed reminder" if reminder is not None else "no reminder"
            raise CampaignRefused(
                "reminder_not_found",
                f"shop {shop_id!r} has {what} {reminder_id!r} (reminders: {known})",
            )
        if variant == "b" and reminder.b is None:
            raise CampaignRefused("no_variant_b", f"reminder {reminder_id!r} has no variant b")
        chosen = reminder.variant(variant)
        cart = await get_cart_record(self.sessions, shop_id, cart_id)
        if cart is None:
            raise CampaignRefused(
                "cart_not_found", f"no cart {cart_id!r} of shop {shop_id!r} in the read model"
            )
        customer = cart.customer
        if customer is None or not customer.email:
            raise CampaignRefused(
                "no_address", f"cart {cart_id!r} has no customer e-mail address to remind"
            )
        if not cart.lines or cart.currency is None:
            raise CampaignRefused("empty_cart", f"cart {cart_id!r} has no items")
        now = self._clock()
        recovery_url, unsubscribe_url = mail_links(
            links, base_url, shop_id, cart_id, reminder_id, customer.email
        )
        offer = chosen.coupon
        coupon = None
        if offer is not None:
            coupon = MailCoupon(
                PREVIEW_COUPON_CODE,
                amount=offer.amount if offer.kind == "fixed" else None,
                percent=offer.amount if offer.kind == "percent" else None,
                expires_at=now + timedelta(days=offer.expiry_days),
            )
        content = MailContent(
            shop_name=config.shop_name,
            customer_name=customer.name,
            locale=customer.locale or DEFAULT_LOCALE,
            currency=cart.currency,
            lines=tuple(MailLine(line.name, line.quantity, line.subtotal) for line in cart.lines),
            total=cart.total,
            recovery_url=recovery_url,
            unsubscribe_url=unsubscribe_url,
            coupon=coupon,
        )
        try:
            rendered = MailRenderer(self.templates).render(chosen.template, content)
        except TemplateMissing as missing:
            raise CampaignRefused("unknown_template", str(missing)) from None
        return ReminderPreview(
            shop_id=shop_id,
            cart_id=cart_id,
            cart_state=str(cart.state),
            reminder_id=reminder_id,
            reminder_name=reminder.name,
            variant=variant,
            template=chosen.template,
            locale=rendered.locale,
            sender=_mailbox(config.shop_name, config.sender),
            recipient=_mailbox(customer.name, customer.email.strip()),
            # as the send activity does: the campaign's subject on one line, else the
            # template's
            subject=" ".join(chosen.subject.split()) or rendered.subject,
            text=rendered.text,
            html=rendered.html,
            recovery_url=recovery_url,
            unsubscribe_url=unsubscribe_url,
            coupon=offer,
        )


__all__ = [
    "DEFAULT_PUBLIC_URL",
    "PREVIEW_COUPON_CODE",
    "RECOVERY_PATH",
    "UNSUBSCRIBE_PATH",
    "CampaignClient",
    "CampaignConfig",
    "CampaignRefused",
    "CouponOffer",
    "ReminderDefinition",
    "ReminderPreview",
    "ReminderVariant",
    "campaign_from_json",
    "campaign_json",
    "default_campaign",
    "mail_links",
    "public_url",
    "reminder_json",
]
