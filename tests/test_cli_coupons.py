"""``cartkeeper coupons check`` and ``coupons redeem`` (and ``starter.coupons``) on a fresh
read model (SQLite, and PostgreSQL with ``TEST_DATABASE_URL``) through click's
``CliRunner``: the discount on a cart's total and currency, redeeming exactly once (the
same cart again is answered the same, another cart gets ``coupon_used``, also when they
race), expiry, and one ``error: <code>: <message>`` line with exit 1 (refused) or 3 (no
such cart)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import starter.cli.coupons as cli_coupons
from activities.coupons import CouponRefused, CouponTerms, IssuedCoupon, issue
from activities.db import make_engine, make_session_factory
from starter.coupons import CouponClient
from tests.cli_fixtures import Cartkeeper, failed, in_process_cli, ok
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_campaigns import a_cart, write_carts
from workflows.contract import CartLine, CartState

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
SHOP = "shop-1"  # the shop of ``tests.test_campaigns.a_cart``
NOW = datetime.now(UTC)
TEN_PERCENT = CouponTerms(kind="percent", amount=10, currency=None, valid_days=7)
FIVE_EUR = CouponTerms(kind="fixed", amount=500, currency="EUR", valid_days=7)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    """Carts of 30.50 EUR (c-1, c-2), a cart in USD, an empty one and a deleted one."""
    async with scratch_database(request.param, tmp_path) as database:
        await write_carts(
            database,
            a_cart("c-1"),
            a_cart("c-2", customer=None),
            a_cart("c-usd", currency="USD"),
            a_cart("c-small", lines=[CartLine("pin", "Pin", 1, 300)]),
            a_cart("c-empty", lines=[], currency=None),
            a_cart("c-deleted", state=CartState.DELETED),
        )
        yield database


@pytest.fixture
def cartkeeper(db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    """The CLI in-process on ``db``."""
    return in_process_cli(db, tmp_path, monkeypatch, [cli_coupons], shop=SHOP)


def coupon(
    db: ScratchDatabase, terms: CouponTerms, *, for_cart: str = "c-1", at: datetime = NOW
) -> IssuedCoupon:
    """A coupon issued (for a reminder of ``for_cart``) at ``at``; from sync tests."""

    async def made() -> IssuedCoupon:
        # a fresh engine on this call's loop (the fixture's belongs to the session loop)
        engine = make_engine(db.url, schema=db.schema)
        try:
            return await issue(make_session_factory(engine), SHOP, for_cart, "winback", terms, at)
        finally:
            await engine.dispose()

    return asyncio.run(made())


def test_check_gives_the_discount_on_the_carts_total(
    cartkeeper: Cartkeeper, db: ScratchDatabase
) -> None:
    percent = coupon(db, TEN_PERCENT)
    typed = percent.code.lower().replace("-", " ")  # as a customer types it
    text = ok(cartkeeper("coupons", "check", typed, "--cart", "c-1"))
    assert (
        f"coupon {percent.code} on cart c-1 (abandoned): 10 % off: 3.05 EUR off 30.50 EUR," in text
    )
    assert "27.45 EUR to pay" in text and "single use, not redeemed yet" in text
    data = json.loads(ok(cartkeeper("coupons", "check", percent.code, "--cart", "c-1", "--json")))
    assert (data["code"], data["kind"], data["amount"]) == (percent.code, "percent", 10)
    assert (data["total"], data["currency"], data["discount"], data["to_pay"]) == (
        3050,
        "EUR",
        305,
        2745,
    )
    assert data["redeemed_at"] is None and data["redeemed_by_this_cart"] is False
    assert datetime.fromisoformat(data["expires_at"]) == percent.expires_at
    # any cart of the shop, in its own currency for a percent
    usd = json.loads(ok(cartkeeper("coupons", "check", percent.code, "--cart", "c-usd", "--json")))
    assert (usd["currency"], usd["discount"]) == ("USD", 305)

    fixed = coupon(db, FIVE_EUR, for_cart="c-2")
    text = ok(cartkeeper("coupons", "check", fixed.code, "--cart", "c-1"))
    assert "5.00 EUR off: 5.00 EUR off 30.50 EUR, 25.50 EUR to pay" in text
    small = json.loads(
        ok(cartkeeper("coupons", "check", fixed.code, "--cart", "c-small", "--json"))
    )
    assert (small["discount"], small["to_pay"]) == (300, 0), "never more than the cart"
    failed(
        cartkeeper("coupons", "check", fixed.code, "--cart", "c-usd"), 1, "coupon_currency_mismatch"
    )


def test_refusals_and_exit_codes(cartkeeper: Cartkeeper, db: ScratchDatabase) -> None:
    code = coupon(db, TEN_PERCENT).code
    failed(cartkeeper("coupons", "check", "ZZZZ-ZZZZ", "--cart", "c-1"), 1, "coupon_not_found")
    failed(
        cartkeeper("coupons", "check", code, "--cart", "c-1", "--shop", "shop-2"),
        3,
        "cart_not_found",
    )
    failed(cartkeeper("coupons", "check", code, "--cart", "ghost"), 3, "cart_not_found")
    failed(cartkeeper("coupons", "redeem", code, "--cart", "ghost"), 3, "cart_not_found")
    failed(cartkeeper("coupons", "check", code, "--cart", "c-empty"), 1, "cart_empty")
    failed(cartkeeper("coupons", "redeem", code, "--cart", "c-deleted"), 1, "cart_deleted")
    usage = cartkeeper("coupons", "check", code)
    assert usage.exit_code == 2 and "--cart" in usage.stderr
    # none of these used the coupon
    ok(cartkeeper("coupons", "redeem", code, "--cart", "c-1"))


def test_redeem_once_the_same_cart_again_another_cart_refused(
    cartkeeper: Cartkeeper, db: ScratchDatabase
) -> None:
    code = coupon(db, FIVE_EUR).code
    first = ok(cartkeeper("coupons", "redeem", code, "--cart", "c-1"))
    assert f"coupon {code} redeemed for cart c-1 (abandoned): 5.00 EUR off:" in first
    assert "25.50 EUR to pay" in first and "redeemed for this cart at" in first
    again = ok(cartkeeper("coupons", "redeem", code, "--cart", "c-1"))
    assert again == first, "the same cart asking again gets the same answer"
    data = json.loads(ok(cartkeeper("coupons", "redeem", code.lower(), "--cart", "c-1", "--json")))
    assert data["redeemed_by"] == "c-1" and data["redeemed_by_this_cart"] is True
    line = failed(cartkeeper("coupons", "redeem", code, "--cart", "c-2"), 1, "coupon_used")
    assert code in line
    failed(cartkeeper("coupons", "check", code, "--cart", "c-2"), 1, "coupon_used")
    held = ok(cartkeeper("coupons", "check", code, "--cart", "c-1"))
    assert "redeemed for this cart" in held and "25.50 EUR to pay" in held


def test_an_expired_coupon(cartkeeper: Cartkeeper, db: ScratchDatabase) -> None:
    old = coupon(db, FIVE_EUR, at=NOW - timedelta(days=8)).code
    line = failed(cartkeeper("coupons", "check", old, "--cart", "c-1"), 1, "coupon_expired")
    assert "expired at" in line
    failed(cartkeeper("coupons", "redeem", old, "--cart", "c-1"), 1, "coupon_expired")


async def test_racing_carts_redeem_once(db: ScratchDatabase) -> None:
    issued = await issue(db.session_factory, SHOP, "c-1", "winback", FIVE_EUR, NOW)
    client = CouponClient(db.session_factory)
    outcomes = await asyncio.gather(
        *(
            client.redeem(SHOP, issued.code, cart)
            for cart in ("c-1", "c-2", "c-usd", "c-small") * 2
        ),
        return_exceptions=True,
    )
    winners = {result.cart_id for result in outcomes if not isinstance(result, BaseException)}
    assert len(winners) == 1
    (winner,) = winners
    refusals = [result for result in outcomes if isinstance(result, BaseException)]
    assert refusals and all(isinstance(error, CouponRefused) for error in refusals)
    codes = {error.code for error in refusals if isinstance(error, CouponRefused)}
    assert codes <= {"coupon_used", "coupon_currency_mismatch"}
    again = await client.redeem(SHOP, issued.code, winner)
    assert again.redeemed_by == winner and again.redeemed_by_this_cart
    assert (await client.check(SHOP, issued.code, winner)).discount == again.discount
