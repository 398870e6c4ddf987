"""A reminder's e-mail: what the campaign says now (subject, template, coupon), the
cart's lines and total in its own currency, the customer's locale, the signed recovery
and unsubscribe links, and the Message-ID the ledger claimed."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage

from activities.campaigns import CampaignConfig, ReminderVariant
from activities.coupons import IssuedCoupon
from activities.links import Links, RecoveryClaim, UnsubscribeClaim
from activities.mail_render import (
    DEFAULT_LOCALE,
    MailContent,
    MailCoupon,
    MailLine,
    MailRenderer,
    build_message,
    message_domain,
)
from activities.reminder_checks import ReminderKey
from activities.settings import Settings
from workflows.state import Cart


def mail_domain(settings: Settings, campaign: CampaignConfig) -> str:
    """The Message-ID's domain: the setting, else the campaign sender's domain."""
    return message_domain(settings.mail_domain, campaign.sender)


def links_of(settings: Settings, links: Links, key: ReminderKey, email: str) -> tuple[str, str]:
    """The recovery link (``{public_url}/r/<token>``) and the unsubscribe link
    (``{public_url}/u/<token>``)."""
    base = settings.public_url.rstrip("/")
    recovery = links.recovery_token(RecoveryClaim(key.shop_id, key.cart_id, key.reminder_id))
    unsubscribe = links.unsubscribe_token(UnsubscribeClaim(key.shop_id, email))
    return f"{base}/r/{recovery}", f"{base}/u/{unsubscribe}"


def compose(
    *,
    settings: Settings,
    links: Links,
    renderer: MailRenderer,
    key: ReminderKey,
    cart: Cart,
    campaign: CampaignConfig,
    variant: ReminderVariant,
    message_id: str,
    coupon: IssuedCoupon | None,
    date: datetime,
) -> EmailMessage:
    """The whole message. ``TemplateMissing`` or ``ValueError`` when it cannot be made
    (a template, a currency, an address or a link that does not work)."""
    customer = cart.customer
    if customer is None or not customer.email or cart.currency is None:
        raise ValueError("the cart has no customer address or no currency")
    recovery_url, unsubscribe_url = links_of(settings, links, key, customer.email)
    offer = None
    if coupon is not None:
        offer = MailCoupon(
            code=coupon.code,
            amount=coupon.amount if coupon.kind == "fixed" else None,
            percent=coupon.amount if coupon.kind == "percent" else None,
            expires_at=coupon.expires_at,
        )
    content = MailContent(
        shop_name=campaign.shop_name,
        customer_name=customer.name,
        locale=customer.locale or DEFAULT_LOCALE,
        currency=cart.currency,
        lines=tuple(MailLine(line.name, line.quantity, line.subtotal) for line in cart.lines),
        total=cart.total,
        recovery_url=recovery_url,
        unsubscribe_url=unsubscribe_url,
        coupon=offer,
    )
    rendered = renderer.render(variant.template, content)
    subject = " ".join(variant.subject.split())
    if subject:  # the campaign's subject as it is now (else the template's)
        rendered = replace(rendered, subject=subject)
    message = build_message(
        rendered,
        sender=(campaign.shop_name, campaign.sender),
        recipient=(customer.name, customer.email.strip()),
        shop_id=key.shop_id,
        cart_id=key.cart_id,
        key=key.message_key,
        unsubscribe_url=unsubscribe_url,
        domain=mail_domain(settings, campaign),
        date=date,
        fixed_message_id=message_id,  # the ledger's: a retry sends the same message
    )
    return message
