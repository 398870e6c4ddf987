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

The JSON document ``dump`` writes and ``load`` reads is described in
``starter.campaign_json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from activities.campaign_checks import renderer_for
from activities.campaigns import (
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
from activities.coupons import IssuedCoupon
from activities.mail_render import (
    TEMPLATES,
    MailContent,
    MailRenderer,
    RenderedMail,
    TemplateMissing,
)
from starter.campaign_json import campaign_from_json, campaign_json, reminder_json
from starter.read_model_client import ReadModelClient

if TYPE_CHECKING:
    from activities.db import SessionFactory
    from activities.links import Links
    from workflows.state import Cart

#: the coupon code a preview shows (a preview issues no coupon)
PREVIEW_COUPON_CODE = "XXXX-XXXX"
#: the Message-ID of a previewed e-mail (not shown; a sent one gets the ledger's)
_PREVIEW_MESSAGE_ID = "<preview@cartkeeper.invalid>"

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
    #: the message's From and To headers
    sender: str
    recipient: str
    subject: str
    text: str
    html: str
    recovery_url: str
    unsubscribe_url: str
    #: the reminder's coupon; the e-mail shows ``PREVIEW_COUPON_CODE`` (none is issued)
    coupon: CouponOffer | None


class _Observed(MailRenderer):
    """A renderer that keeps what it was given and what it made, so that a preview shows
    the very links, locale and text of the e-mail ``compose`` made with it."""

    def __init__(self, renderer: MailRenderer) -> None:  # the templates stay with it
        self._renderer = renderer
        self.last: tuple[MailContent, RenderedMail] | None = None

    def render(self, name: str, content: MailContent) -> RenderedMail:
        rendered = self._renderer.render(name, content)
        self.last = (content, rendered)
        return rendered


def _sample_coupon(offer: CouponOffer | None, cart: Cart, now: datetime) -> IssuedCoupon | None:
    """The coupon a send would issue, with the sample code (nothing is issued)."""
    if offer is None:
        return None
    return IssuedCoupon(
        shop_id=cart.shop_id,
        code=PREVIEW_COUPON_CODE,
        cart_id=cart.cart_id,
        kind=offer.kind,
        amount=offer.amount,
        currency=cart.currency if offer.kind == "fixed" else None,
        single_use=True,
        expires_at=now + timedelta(days=offer.expiry_days),
        redeemed_at=None,
        redeemed_by=None,
    )


# --------------------------------------------------------------------------- the client


class CampaignClient(ReadModelClient):
    """Read and edit shops' campaigns. ``by`` (who edits, at most 64 characters) is kept
    with the campaign as its last editor."""

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        templates: Path = TEMPLATES,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(sessions, clock=clock)
        self.templates = templates

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
        """Replace the shop's whole campaign with a JSON document (see
        ``starter.campaign_json``): its settings and reminders, in one edit (one new
        version).

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
        base_url: str | None = None,
        variant: Variant = "a",
    ) -> ReminderPreview:
        """Render a reminder for a cart from the read model, as it would be sent now: the
        e-mail is made by the send's own ``activities.reminder_mail.compose``, its links
        under ``base_url`` (default: the ``public_url`` setting's default). Nothing is
        sent, recorded or issued: the coupon code is a sample.

        Refused with ``campaign_not_found``, ``reminder_not_found`` (unknown or removed),
        ``no_variant_b``, ``cart_not_found``, ``no_address`` (the cart has no customer
        e-mail address), ``empty_cart`` or ``unknown_template``."""
        from activities.read_model import get_cart_record
        from activities.reminder_checks import ReminderKey
        from activities.reminder_mail import compose
        from activities.settings import Settings

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
        # compose reads the links' base (and the Message-ID's domain) from the settings
        settings = (
            Settings.model_construct(public_url=base_url)
            if base_url
            else Settings.model_construct()
        )
        renderer = _Observed(renderer_for(self.templates))
        try:
            message = compose(
                settings=settings,
                links=links,
                renderer=renderer,
                key=ReminderKey(shop_id, cart_id, cart.lineage or "", reminder_id),
                cart=cart,
                campaign=config,
                variant=chosen,
                message_id=_PREVIEW_MESSAGE_ID,
                coupon=_sample_coupon(chosen.coupon, cart, now),
                date=now,
            )
        except TemplateMissing as missing:
            raise CampaignRefused("unknown_template", str(missing)) from None
        assert renderer.last is not None  # compose rendered the reminder
        content, rendered = renderer.last
        return ReminderPreview(
            shop_id=shop_id,
            cart_id=cart_id,
            cart_state=str(cart.state),
            reminder_id=reminder_id,
            reminder_name=reminder.name,
            variant=variant,
            template=chosen.template,
            locale=rendered.locale,
            sender=str(message["From"]),
            recipient=str(message["To"]),
            subject=str(message["Subject"]),
            text=rendered.text,
            html=rendered.html,
            recovery_url=content.recovery_url,
            unsubscribe_url=content.unsubscribe_url,
            coupon=chosen.coupon,
        )


__all__ = [
    "PREVIEW_COUPON_CODE",
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
    "reminder_json",
]
