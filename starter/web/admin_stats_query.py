"""The statistics page's reads of the read model besides ``activities.stats``: the same
figures per day (for the chart), and the currencies a shop sells in.

``recovery_by_day(sessions, shop_id, first, last)``: one ``DayFigures`` per UTC day from
``first`` to ``last`` (both included, days without anything too): reminder e-mails sent
(by ``sent_at``), recovered orders (carts that came back through a recovery link, by
``ordered_at``), and the revenue of the paid ones per currency. They count what
``activities.stats.recovery_stats`` counts over the same range, so the days add up to
its totals. The database groups by day (``date()`` of the UTC time on SQLite, where
times are stored as naive UTC; ``date(timezone('UTC', ...))`` on PostgreSQL), so a long
range reads one row per day, not one per e-mail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from activities.db import SessionFactory
from activities.models import CartRecord, ReminderSend


@dataclass
class DayFigures:
    day: date
    emails_sent: int = 0
    #: recovered orders (paid or not) and the paid ones
    orders: int = 0
    paid_orders: int = 0
    #: revenue of the paid recovered orders, minor units per currency
    revenue: dict[str, int] = field(default_factory=dict)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _utc_day(column: Any, session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


async def recovery_by_day(
    sessions: SessionFactory, shop_id: str, first: date, last: date
) -> list[DayFigures]:
    """The shop's figures for every day from ``first`` to ``last`` (see the module)."""
    if last < first:
        raise ValueError("the last day is before the first")
    start, end = day_start(first), day_start(last) + timedelta(days=1)
    days = {
        first + timedelta(days=n): DayFigures(first + timedelta(days=n))
        for n in range((last - first).days + 1)
    }
    async with sessions() as session:
        sent_day = _utc_day(ReminderSend.sent_at, session).label("day")
        sent = await session.execute(
            select(sent_day, func.count())
            .where(
                ReminderSend.shop_id == shop_id,
                ReminderSend.status == "sent",
                ReminderSend.sent_at >= start,
                ReminderSend.sent_at < end,
            )
            .group_by(sent_day)
        )
        for day, count in sent.all():
            days[_as_date(day)].emails_sent += int(count)
        order_day = _utc_day(CartRecord.ordered_at, session).label("day")
        paid = and_(CartRecord.order_paid.is_(True), CartRecord.currency.is_not(None))
        orders = await session.execute(
            select(
                order_day,
                CartRecord.currency,
                func.count(),
                func.sum(case((paid, 1), else_=0)),
                func.sum(case((paid, CartRecord.total), else_=0)),
            )
            .where(
                CartRecord.shop_id == shop_id,
                CartRecord.recovered_via.is_not(None),
                CartRecord.ordered_at >= start,
                CartRecord.ordered_at < end,
            )
            .group_by(order_day, CartRecord.currency)
        )
        for day, currency, count, paid_count, revenue in orders.all():
            figures = days[_as_date(day)]
            figures.orders += int(count)
            figures.paid_orders += int(paid_count or 0)
            if currency and paid_count:
                figures.revenue[currency] = figures.revenue.get(currency, 0) + int(revenue or 0)
    return [days[day] for day in sorted(days)]


async def shop_currencies(sessions: SessionFactory, shop_id: str) -> list[str]:
    """The currencies of the shop's carts, the most used first."""
    carts = func.count().label("carts")
    query = (
        select(CartRecord.currency, carts)
        .where(CartRecord.shop_id == shop_id, CartRecord.currency.is_not(None))
        .group_by(CartRecord.currency)
        .order_by(carts.desc(), CartRecord.currency)
        .limit(20)
    )
    async with sessions() as session:
        return [str(currency) for currency, _count in (await session.execute(query)).all()]
