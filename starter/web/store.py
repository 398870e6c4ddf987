"""What the link endpoints read and write in the read-model database.

- ``recovery_facts``: the cart's lineage (from its projected row) and the coupon its
  reminder gave, if it can still be used;
- ``record_click``: one ``recovery_clicks`` row per click (every click is kept);
- ``record_unsubscribe``: the address's suppression for the shop, once (a second one
  keeps the first row, whatever recorded it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from activities import coupons
from activities import reminder_ledger as ledger
from activities.db import SessionFactory, write_session
from activities.models import CartRecord, Coupon, RecoveryClick
from activities.reminder_checks import ReminderKey

#: ``Suppression.reason`` of an address that unsubscribed
UNSUBSCRIBED = "unsubscribed"
#: ``Suppression.source``: the mail client's one-click POST (RFC 8058), or the page's form
ONE_CLICK = "one_click"
LINK = "link"


@dataclass(frozen=True)
class RecoveryFacts:
    #: ``Cart.lineage`` as projected ("" when the cart has no row, or no lineage yet)
    lineage: str
    #: the coupon of (shop, cart, reminder) when there is one and it can still be used
    coupon_code: str | None


async def recovery_facts(
    sessions: SessionFactory, shop_id: str, cart_id: str, reminder_id: str, now: datetime
) -> RecoveryFacts:
    """The coupon is the one the reminder's e-mail carried (its ledger row, this lineage),
    else the one issued for (cart, reminder); ``None`` when there is none or it expired or
    was used (a link never hands out a coupon that would be refused at checkout)."""
    async with sessions() as session:
        lineage = (
            await session.execute(
                select(CartRecord.lineage).where(
                    CartRecord.shop_id == shop_id, CartRecord.cart_id == cart_id
                )
            )
        ).scalar_one_or_none() or ""
        sent = await ledger.stored(session, ReminderKey(shop_id, cart_id, lineage, reminder_id))
        issued = (
            await session.execute(
                select(Coupon.code).where(
                    Coupon.shop_id == shop_id,
                    Coupon.cart_id == cart_id,
                    Coupon.issued_for == reminder_id,
                )
            )
        ).scalar_one_or_none()  # one per (shop, cart, issued_for)
    candidates = (sent.coupon_code if sent else None, issued)
    for code in dict.fromkeys(code for code in candidates if code):  # in order, once each
        try:
            coupon = await coupons.find(sessions, shop_id, code)
        except coupons.CouponRefused:  # coupon_not_found
            continue
        if coupons.usable(coupon, now):
            return RecoveryFacts(lineage=lineage, coupon_code=coupon.code)
    return RecoveryFacts(lineage=lineage, coupon_code=None)


async def record_click(
    sessions: SessionFactory,
    shop_id: str,
    cart_id: str,
    lineage: str,
    reminder_id: str,
    now: datetime,
) -> None:
    async with write_session(sessions) as session:
        session.add(
            RecoveryClick(
                shop_id=shop_id,
                cart_id=cart_id,
                lineage=lineage,
                reminder_id=reminder_id,
                clicked_at=now,
            )
        )


async def record_unsubscribe(
    sessions: SessionFactory, shop_id: str, email: str, source: str, now: datetime
) -> bool:
    """Suppress ``email`` for the shop; ``False`` when it already was (the first row is
    kept; ``activities.reminder_ledger.suppress``)."""
    async with write_session(sessions) as session:
        return await ledger.suppress(
            session, shop_id, email, reason=UNSUBSCRIBED, source=source, cart_id=None, now=now
        )
