"""Coupons (``activities.coupons``) on SQLite and PostgreSQL: issued once per cart and
reminder, checked against a cart, redeemed exactly once, also by concurrent callers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.coupons import (
    ALPHABET,
    CouponRefused,
    CouponTerms,
    check,
    discount,
    find,
    issue,
    redeem,
)
from tests.conftest_db import ScratchDatabase, scratch_database

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TEN_EUR = CouponTerms(kind="fixed", amount=1000, currency="EUR", valid_days=3)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


async def test_a_coupon_is_issued_once_per_cart_and_reminder(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    first = await issue(sessions, "shop", "cart-1", "reminder-2", TEN_EUR, T0)
    again = await issue(sessions, "shop", "cart-1", "reminder-2", TEN_EUR, T0 + timedelta(hours=1))
    other = await issue(sessions, "shop", "cart-1", "reminder-3", TEN_EUR, T0)
    assert again == first and other.code != first.code
    assert first.expires_at == T0 + timedelta(days=3)
    raw = first.code.replace("-", "")
    assert len(raw) == 8 and set(raw) <= set(ALPHABET)
    # concurrent first calls (an activity and its retry) agree on one coupon
    racing = await asyncio.gather(
        *(issue(sessions, "shop", "cart-9", "reminder-1", TEN_EUR, T0) for _ in range(8))
    )
    assert len({coupon.code for coupon in racing}) == 1


async def test_check_gives_the_discount_or_says_why_not(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    coupon = await issue(sessions, "shop", "cart-1", "r1", TEN_EUR, T0)
    typed = coupon.code.lower().replace("-", "- ")
    _, off = await check(sessions, "shop", typed, total=3050, currency="EUR", now=T0)
    assert off == 1000
    _, small = await check(sessions, "shop", coupon.code, total=700, currency="EUR", now=T0)
    assert small == 700, "never more than the cart"
    refusals = {
        "coupon_currency_mismatch": dict(total=3050, currency="USD", now=T0),
        "coupon_expired": dict(total=3050, currency="EUR", now=T0 + timedelta(days=3)),
    }
    for code, kwargs in refusals.items():
        with pytest.raises(CouponRefused) as refused:
            await check(sessions, "shop", coupon.code, **kwargs)  # type: ignore[arg-type]
        assert refused.value.code == code
    with pytest.raises(CouponRefused) as missing:
        await check(sessions, "other-shop", coupon.code, total=1, currency="EUR", now=T0)
    assert missing.value.code == "coupon_not_found"
    percent = await issue(
        sessions,
        "shop",
        "cart-2",
        "r1",
        CouponTerms(kind="percent", amount=15, currency=None, valid_days=7),
        T0,
    )
    assert discount(percent, 3050, "JPY") == 457


@pytest.mark.parametrize(
    "terms",
    [
        dict(kind="fixed", amount=0, currency="EUR", valid_days=3),
        dict(kind="fixed", amount=100, currency="XYZ", valid_days=3),
        dict(kind="percent", amount=101, currency=None, valid_days=3),
        dict(kind="percent", amount=10, currency="EUR", valid_days=3),
        dict(kind="free_shipping", amount=1, currency=None, valid_days=3),
        dict(kind="fixed", amount=100, currency="EUR", valid_days=0),
    ],
)
def test_terms_that_make_no_sense_are_refused(terms: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CouponTerms(**terms)  # type: ignore[arg-type]


async def test_a_single_use_coupon_is_redeemed_exactly_once(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    coupon = await issue(sessions, "shop", "cart-1", "r1", TEN_EUR, T0)
    outcomes = await asyncio.gather(
        *(redeem(sessions, "shop", coupon.code, by=f"order-{n}", now=T0) for n in range(10)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1 and len(losers) == 9
    assert all(isinstance(o, CouponRefused) and o.code == "coupon_used" for o in losers)
    winner = winners[0].redeemed_by
    # the winner asking again (a retry) is answered the same; the coupon counts one use
    again = await redeem(sessions, "shop", coupon.code, by=str(winner), now=T0)
    assert again.redeemed_by == winner
    stored = await find(sessions, "shop", coupon.code)
    assert stored.redeemed_by == winner and stored.redeemed_at == T0
    with pytest.raises(CouponRefused) as used:
        await check(sessions, "shop", coupon.code, total=3050, currency="EUR", now=T0)
    assert used.value.code == "coupon_used"


async def test_an_expired_coupon_cannot_be_redeemed(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    coupon = await issue(sessions, "shop", "cart-1", "r1", TEN_EUR, T0)
    with pytest.raises(CouponRefused) as expired:
        await redeem(sessions, "shop", coupon.code, by="order-1", now=T0 + timedelta(days=4))
    assert expired.value.code == "coupon_expired"
    assert (await find(sessions, "shop", coupon.code)).redeemed_at is None


async def test_a_coupon_for_many_uses(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    terms = CouponTerms(kind="percent", amount=10, currency=None, valid_days=3, single_use=False)
    coupon = await issue(sessions, "shop", "cart-1", "r1", terms, T0)
    for n in range(3):
        await redeem(sessions, "shop", coupon.code, by=f"order-{n}", now=T0)
    _, off = await check(sessions, "shop", coupon.code, total=1000, currency="EUR", now=T0)
    assert off == 100


async def test_what_a_customer_types_is_found(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    coupon = await issue(sessions, "shop", "cart-1", "r1", TEN_EUR, T0)
    raw = coupon.code.replace("-", "")
    for typed in (raw.lower(), f"{raw[:4]} {raw[4:]}", f"{raw[:4]}\u2013{raw[4:]}", f" {raw} "):
        assert (await find(sessions, "shop", typed)).code == coupon.code


async def test_the_winner_retrying_after_the_expiry_keeps_its_redemption(
    db: ScratchDatabase,
) -> None:
    sessions = db.session_factory
    coupon = await issue(sessions, "shop", "cart-1", "r1", TEN_EUR, T0)
    await redeem(sessions, "shop", coupon.code, by="order-1", now=T0)
    late = T0 + timedelta(days=5)
    again = await redeem(sessions, "shop", coupon.code, by="order-1", now=late)
    assert again.redeemed_by == "order-1" and again.redeemed_at == T0
    with pytest.raises(CouponRefused) as used:
        await redeem(sessions, "shop", coupon.code, by="order-2", now=T0)
    assert used.value.code == "coupon_used"


async def test_a_multi_use_retry_counts_once(db: ScratchDatabase) -> None:
    from sqlalchemy import select

    from activities.models import Coupon

    sessions = db.session_factory
    terms = CouponTerms(kind="percent", amount=10, currency=None, valid_days=3, single_use=False)
    coupon = await issue(sessions, "shop", "cart-1", "r1", terms, T0)
    for by in ("order-1", "order-1", "order-2"):
        await redeem(sessions, "shop", coupon.code, by=by, now=T0)
    async with sessions() as session:
        uses = (
            await session.execute(select(Coupon.redemptions).where(Coupon.code == coupon.code))
        ).scalar_one()
    assert uses == 2


async def test_naive_times_are_refused(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    naive = T0.replace(tzinfo=None)
    with pytest.raises(ValueError):
        await issue(sessions, "shop", "cart-1", "r1", TEN_EUR, naive)
    coupon = await issue(sessions, "shop", "cart-1", "r1", TEN_EUR, T0)
    with pytest.raises(ValueError):
        await redeem(sessions, "shop", coupon.code, by="order-1", now=naive)
    with pytest.raises(ValueError):
        await check(sessions, "shop", coupon.code, total=1, currency="EUR", now=naive)


async def test_no_discount_on_an_empty_or_negative_total(db: ScratchDatabase) -> None:
    coupon = await issue(db.session_factory, "shop", "cart-1", "r1", TEN_EUR, T0)
    assert discount(coupon, 0, "EUR") == 0 and discount(coupon, -500, "EUR") == 0
