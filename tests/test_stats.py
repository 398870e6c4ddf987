"""Recovery statistics (``activities.stats``, ``cartkeeper stats recovery``) on SQLite and
PostgreSQL: per reminder and variant, skips by reason, clicks, recovered orders (only
through a recovery link), revenue per currency and month; deleted carts still count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from activities.db import write_session
from activities.models import CampaignReminder, CartRecord, RecoveryClick, ReminderSend
from activities.read_model import cart_values
from activities.stats import recovery_stats
from starter.cli.stats import render
from tests.conftest_db import ScratchDatabase, scratch_database
from workflows.contract import Cart, CartLine, CartState, CustomerInfo, Order, OrderSource

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


def send(cart: str, reminder: str, status: str, **values: Any) -> ReminderSend:
    at = values.pop("at", T0)
    return ReminderSend(
        shop_id=values.pop("shop", "demo"),
        cart_id=cart,
        lineage="L",
        reminder_id=reminder,
        status=status,
        reason=values.pop("reason", None),
        variant=values.pop("variant", None),
        manual=False,
        email=values.pop("email", f"{cart}@example.com"),
        created_at=at,
        updated_at=at,
        sent_at=at if status == "sent" else None,
        **values,
    )


def cart_row(
    cart_id: str,
    *,
    total: int,
    currency: str = "EUR",
    paid: bool = True,
    recovered_via: str | None = "first",
    ordered_at: datetime = T0 + timedelta(hours=2),
    state: CartState = CartState.ORDERED,
) -> CartRecord:
    cart = Cart(
        shop_id="demo",
        cart_id=cart_id,
        state=state,
        version=3,
        currency=currency,
        lines=[CartLine("tea", "Tea", 1, total)],
        customer=CustomerInfo(email=f"{cart_id}@example.com"),
        created_at=T0 - timedelta(days=1),
        updated_at=ordered_at,
        ordered_at=ordered_at,
        order=Order(
            status="P" if paid else "O",
            source=OrderSource.ONLINE_PAYMENT,
            total=total,
            currency=currency,
            created_at=ordered_at,
            paid=paid,
            amount_paid=total if paid else 0,
        ),
        recovered_via=recovered_via,
    )
    values = cart_values(cart, ordered_at)
    values["recovered_via"] = recovered_via
    return CartRecord(**values)


async def fill(db: ScratchDatabase) -> None:
    async with write_session(db.session_factory) as session:
        session.add_all(
            [
                CampaignReminder(
                    shop_id="demo",
                    reminder_id="first",
                    position=1,
                    name="We saved your cart",
                    delay_seconds=3600,
                    automatic=True,
                    subject="s",
                    template="reminder",
                    created_at=T0,
                    updated_at=T0,
                ),
                send("c1", "first", "sent", variant="a"),
                send("c2", "first", "sent", variant="b"),
                send("c3", "first", "sent", variant="a", email="c1@example.com"),
                send("c4", "first", "skipped", reason="unsubscribed", variant="a"),
                send("c5", "first", "skipped", reason="quiet_hours", variant="b"),
                send("c6", "first", "skipped", reason="cart_active"),
                send("c1", "second", "sent"),
                # outside the range: not counted
                send("c7", "first", "sent", at=T0 - timedelta(days=40)),
                # another shop
                send("x1", "first", "sent", shop="other"),
                RecoveryClick(
                    shop_id="demo", cart_id="c1", lineage="L", reminder_id="first", clicked_at=T0
                ),
                RecoveryClick(
                    shop_id="demo", cart_id="c1", lineage="L", reminder_id="first", clicked_at=T0
                ),
                RecoveryClick(
                    shop_id="demo", cart_id="c2", lineage="L", reminder_id="first", clicked_at=T0
                ),
                # c1: recovered through "first" (variant a), paid, EUR
                cart_row("c1", total=5000),
                # c2: recovered, paid in another currency, another month
                cart_row(
                    "c2", total=3000, currency="CHF", ordered_at=datetime(2026, 12, 1, tzinfo=UTC)
                ),
                # c3: ordered after a reminder but without a click: not recovered
                cart_row("c3", total=9999, recovered_via=None),
                # c8: recovered, not paid yet
                cart_row("c8", total=700, paid=False),
            ]
        )


async def test_figures_per_reminder_and_variant(db: ScratchDatabase) -> None:
    await fill(db)
    start, end = T0 - timedelta(days=5), datetime(2026, 12, 31, tzinfo=UTC)
    result = await recovery_stats(db.session_factory, start, end, "demo")
    by = {(f.reminder_id, f.variant): f for f in result.reminders}
    a, b = by[("first", "a")], by[("first", "b")]
    assert (a.emails_sent, a.carts_sent, a.customers_sent) == (2, 2, 1)
    assert a.skipped_by_reason == {"unsubscribed": 1}
    assert b.skipped_by_reason == {"quiet_hours": 1}
    assert by[("first", None)].skipped_by_reason == {"cart_active": 1}
    assert a.name == "We saved your cart"
    assert (a.carts_clicked, b.carts_clicked) == (1, 1)
    assert (a.paid_orders, a.revenue) == (1, {"EUR": 5000})
    assert (b.paid_orders, b.revenue) == (1, {"CHF": 3000})
    total = result.total
    assert (total.emails_sent, total.carts_sent, total.skipped) == (4, 3, 3)
    assert total.skipped_by_reason == {"cart_active": 1, "quiet_hours": 1, "unsubscribed": 1}
    assert (total.orders, total.paid_orders) == (3, 2), "c3 came back without a link"
    assert total.revenue == {"CHF": 3000, "EUR": 5000}
    assert [(m.month, m.currency, m.orders, m.revenue) for m in result.months] == [
        ("2026-11", "EUR", 1, 5000),
        ("2026-12", "CHF", 1, 3000),
    ]
    assert result.recovery_rate == pytest.approx(2 / 3)
    text = render(result)
    assert "unsubscribed 1" in text and "50.00 EUR" in text and "66.7%" in text


async def test_deleted_carts_still_count_and_ranges_and_shops_filter(db: ScratchDatabase) -> None:
    await fill(db)
    async with write_session(db.session_factory) as session:
        await session.execute(delete(CartRecord).where(CartRecord.cart_id == "c4"))
    start, end = T0 - timedelta(days=5), T0 + timedelta(days=1)
    result = await recovery_stats(db.session_factory, start, end, "demo")
    assert result.total.skipped_by_reason["unsubscribed"] == 1
    assert result.total.revenue == {"EUR": 5000}, "December is outside the range"
    everything = await recovery_stats(db.session_factory, start, end)
    assert everything.total.emails_sent == 5
    nothing = await recovery_stats(
        db.session_factory, T0 + timedelta(days=60), T0 + timedelta(days=61)
    )
    assert nothing.recovery_rate is None and nothing.reminders == []
