"""Recovery statistics from the reminder ledger, the recovery clicks and the read model.

Over a date range ``[start, end)`` (UTC) and optionally one shop:

- per reminder and variant: e-mails sent, carts and customers (distinct e-mail) reached,
  skips by reason, carts that clicked, ordered and paid after a click on that reminder,
  and the revenue of those paid orders per currency;
- in total, the same; and recovered orders and revenue per month and currency;
- the recovery rate: recovered (paid) orders over carts that were sent a reminder.

An order counts as recovered only when the customer came back through a recovery link
(``carts.recovered_via``, seed 001's rule): a customer who returns by herself after a
reminder is not counted. Ledger rows and clicks are never deleted with a cart, so the
figures survive deleted carts. Sent e-mails count by ``sent_at``, skips by when they were
recorded, clicks by ``clicked_at``, orders by ``ordered_at``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.models import CampaignReminder, CartRecord, RecoveryClick, ReminderSend


@dataclass
class Figures:
    emails_sent: int = 0
    carts_sent: int = 0
    customers_sent: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    carts_clicked: int = 0
    orders: int = 0
    paid_orders: int = 0
    #: revenue of the paid recovered orders, minor units per currency
    revenue: dict[str, int] = field(default_factory=dict)


@dataclass
class ReminderFigures(Figures):
    reminder_id: str = ""
    name: str | None = None
    variant: str | None = None


@dataclass
class MonthFigures:
    month: str
    currency: str
    orders: int
    revenue: int


@dataclass
class RecoveryStats:
    start: datetime
    end: datetime
    shop_id: str | None
    reminders: list[ReminderFigures]
    total: Figures
    months: list[MonthFigures]
    #: paid recovered orders over carts sent at least one reminder (``None``: no sends)
    recovery_rate: float | None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"] = self.start.isoformat()
        data["end"] = self.end.isoformat()
        return data


def _shop(column: Any, shop_id: str | None) -> Any:
    return column == shop_id if shop_id is not None else True


async def recovery_stats(
    sessions: async_sessionmaker[AsyncSession],
    start: datetime,
    end: datetime,
    shop_id: str | None = None,
) -> RecoveryStats:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("statistics ranges are timezone-aware (UTC)")
    async with sessions() as session:
        sends = (
            await session.execute(
                select(
                    ReminderSend.shop_id,
                    ReminderSend.cart_id,
                    ReminderSend.reminder_id,
                    ReminderSend.variant,
                    ReminderSend.email,
                    ReminderSend.status,
                    ReminderSend.reason,
                ).where(
                    _shop(ReminderSend.shop_id, shop_id),
                    (
                        and_(
                            ReminderSend.status == "sent",
                            ReminderSend.sent_at >= start,
                            ReminderSend.sent_at < end,
                        )
                    )
                    | (
                        and_(
                            ReminderSend.status == "skipped",
                            ReminderSend.updated_at >= start,
                            ReminderSend.updated_at < end,
                        )
                    ),
                )
            )
        ).all()
        clicks = (
            await session.execute(
                select(RecoveryClick.shop_id, RecoveryClick.cart_id, RecoveryClick.reminder_id)
                .where(
                    _shop(RecoveryClick.shop_id, shop_id),
                    RecoveryClick.clicked_at >= start,
                    RecoveryClick.clicked_at < end,
                )
                .distinct()
            )
        ).all()
        orders = (
            await session.execute(
                select(
                    CartRecord.shop_id,
                    CartRecord.cart_id,
                    CartRecord.recovered_via,
                    CartRecord.order_paid,
                    CartRecord.total,
                    CartRecord.currency,
                    CartRecord.ordered_at,
                ).where(
                    _shop(CartRecord.shop_id, shop_id),
                    CartRecord.recovered_via.is_not(None),
                    CartRecord.ordered_at >= start,
                    CartRecord.ordered_at < end,
                )
            )
        ).all()
        names = {
            (row.shop_id, row.reminder_id): row.name
            for row in (
                await session.execute(
                    select(
                        CampaignReminder.shop_id,
                        CampaignReminder.reminder_id,
                        CampaignReminder.name,
                    ).where(_shop(CampaignReminder.shop_id, shop_id))
                )
            ).all()
        }
    # The variant a cart got for a reminder (to attribute clicks and orders to it).
    variant_of = {(r.shop_id, r.cart_id, r.reminder_id): r.variant for r in sends}
    per: dict[tuple[str, str | None], ReminderFigures] = {}
    carts_per: dict[tuple[str, str | None], set[tuple[str, str]]] = defaultdict(set)
    customers_per: dict[tuple[str, str | None], set[str]] = defaultdict(set)
    total = Figures()
    carts_total: set[tuple[str, str]] = set()
    customers_total: set[str] = set()
    skips_total: Counter[str] = Counter()

    def figures(reminder_id: str, variant: str | None, shop: str) -> ReminderFigures:
        key = (reminder_id, variant)
        if key not in per:
            per[key] = ReminderFigures(
                reminder_id=reminder_id, variant=variant, name=names.get((shop, reminder_id))
            )
        return per[key]

    for row in sends:
        item = figures(row.reminder_id, row.variant, row.shop_id)
        key = (row.reminder_id, row.variant)
        if row.status == "sent":
            item.emails_sent += 1
            total.emails_sent += 1
            carts_per[key].add((row.shop_id, row.cart_id))
            carts_total.add((row.shop_id, row.cart_id))
            if row.email:
                customers_per[key].add(row.email)
                customers_total.add(row.email)
        else:
            reason = row.reason or "unknown"
            item.skipped += 1
            item.skipped_by_reason[reason] = item.skipped_by_reason.get(reason, 0) + 1
            total.skipped += 1
            skips_total[reason] += 1
    for key, carts in carts_per.items():
        per[key].carts_sent = len(carts)
        per[key].customers_sent = len(customers_per[key])
    total.carts_sent = len(carts_total)
    total.customers_sent = len(customers_total)
    total.skipped_by_reason = dict(sorted(skips_total.items()))
    clicked_total: set[tuple[str, str]] = set()
    for click in clicks:
        variant = variant_of.get((click.shop_id, click.cart_id, click.reminder_id))
        figures(click.reminder_id, variant, click.shop_id).carts_clicked += 1
        clicked_total.add((click.shop_id, click.cart_id))
    total.carts_clicked = len(clicked_total)
    months: Counter[tuple[str, str]] = Counter()
    month_revenue: Counter[tuple[str, str]] = Counter()
    for order in orders:
        reminder_id = order.recovered_via or ""
        variant = variant_of.get((order.shop_id, order.cart_id, reminder_id))
        item = figures(reminder_id, variant, order.shop_id)
        item.orders += 1
        total.orders += 1
        if order.order_paid and order.currency:
            currency = order.currency
            item.paid_orders += 1
            total.paid_orders += 1
            item.revenue[currency] = item.revenue.get(currency, 0) + order.total
            total.revenue[currency] = total.revenue.get(currency, 0) + order.total
            month = f"{order.ordered_at:%Y-%m}"
            months[(month, currency)] += 1
            month_revenue[(month, currency)] += order.total
    reminders = sorted(per.values(), key=lambda f: (f.reminder_id, f.variant or ""))
    return RecoveryStats(
        start=start,
        end=end,
        shop_id=shop_id,
        reminders=reminders,
        total=total,
        months=[
            MonthFigures(month=m, currency=c, orders=months[(m, c)], revenue=month_revenue[(m, c)])
            for m, c in sorted(months)
        ],
        recovery_rate=(total.paid_orders / total.carts_sent) if total.carts_sent else None,
    )
