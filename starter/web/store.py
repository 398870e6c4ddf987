"""What the link endpoints read and write in the read-model database.

- ``recovery_facts``: the cart's lineage (from its projected row) and the coupon its
  reminder gave, if it can still be used;
- ``record_click``: one ``recovery_clicks`` row per click (every click is kept);
- ``record_unsubscribe``: the address's suppression for the shop, once (a second one
  keeps the first row, whatever recorded it);
- ``shop_campaign``: the shop's campaign (its name and ``restore_url``), or ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Executable, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from activities.campaigns import CampaignConfig, load_campaign
from activities.db import SessionFactory, write_session
from activities.models import CartRecord, Coupon, RecoveryClick, ReminderSend, Suppression

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
    async with sessions() as session:
        lineage = (
            await session.execute(
                select(CartRecord.lineage).where(
                    CartRecord.shop_id == shop_id, CartRecord.cart_id == cart_id
                )
            )
        ).scalar_one_or_none() or ""
        coupon = await _coupon(session, shop_id, cart_id, lineage, reminder_id, now)
        return RecoveryFacts(lineage=lineage, coupon_code=coupon)


async def _coupon(
    session: AsyncSession,
    shop_id: str,
    cart_id: str,
    lineage: str,
    reminder_id: str,
    now: datetime,
) -> str | None:
    """The code the reminder's e-mail carried (the ledger, this lineage first), else the
    coupon issued for (cart, reminder); ``None`` when there is none or it expired or was
    used (a link never hands out a coupon that would be refused at checkout)."""
    sent = (
        await session.execute(
            select(ReminderSend.coupon_code, ReminderSend.lineage)
            .where(
                ReminderSend.shop_id == shop_id,
                ReminderSend.cart_id == cart_id,
                ReminderSend.reminder_id == reminder_id,
                ReminderSend.coupon_code.is_not(None),
            )
            .order_by(ReminderSend.updated_at.desc())
        )
    ).all()
    codes = [code for code, row_lineage in sent if row_lineage == lineage]
    codes += [code for code, row_lineage in sent if row_lineage != lineage]
    issued = (
        await session.execute(
            select(Coupon.code)
            .where(
                Coupon.shop_id == shop_id,
                Coupon.cart_id == cart_id,
                Coupon.issued_for == reminder_id,
            )
            .order_by(Coupon.created_at.desc())
        )
    ).scalars()
    codes += list(issued)
    for code in dict.fromkeys(codes):  # in order, once each
        row = await session.get(Coupon, (shop_id, code))
        if row is None or now >= row.expires_at:
            continue
        if row.single_use and row.redeemed_at is not None:
            continue
        return row.code
    return None


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
    kept). One ``INSERT ... ON CONFLICT DO NOTHING``: safe with concurrent requests."""
    values = {
        "shop_id": shop_id,
        "email": email.strip().lower(),
        "reason": UNSUBSCRIBED,
        "source": source,
        "cart_id": None,
        "created_at": now,
    }
    async with write_session(sessions) as session:
        dialect = session.get_bind().dialect.name
        statement: Executable
        if dialect == "postgresql":
            statement = postgresql_insert(Suppression).values(values).on_conflict_do_nothing()
        elif dialect == "sqlite":
            statement = sqlite_insert(Suppression).values(values).on_conflict_do_nothing()
        else:  # pragma: no cover - the read model is PostgreSQL or SQLite
            raise RuntimeError(f"unsupported database {dialect!r}")
        result = await session.execute(statement)
        return bool(getattr(result, "rowcount", 0))


async def shop_campaign(sessions: SessionFactory, shop_id: str) -> CampaignConfig | None:
    return await load_campaign(sessions, shop_id)
