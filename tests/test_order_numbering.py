"""Order numbers per shop (``activities.order_numbering``): a sequence of each shop's own
without gaps, given once per order whatever the retries and races, a prefix kept in the
order's reference, a next number that only moves forward; and ``cartkeeper order-numbers``.
SQLite, and PostgreSQL with ``TEST_DATABASE_URL``."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pydantic import SecretStr
from sqlalchemy import select

import starter.cli.order_numbers as cli_order_numbers
from activities.cart_activities import CartActivities
from activities.db import make_engine, make_session_factory
from activities.models import OrderNumber
from activities.order_numbering import Numbering, NumberingRefused
from activities.settings import Settings
from starter.cli import cli
from starter.order_numbering import OrderNumberingClient
from tests.conftest_db import ScratchDatabase, scratch_database
from workflows.contract import AllocateOrderNumberInput

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


async def allocate(db: ScratchDatabase, shop: str, cart: str, lineage: str = "run") -> int:
    acts = CartActivities(db.session_factory)
    return await acts.allocate_order_number(AllocateOrderNumberInput(shop, cart, lineage))


async def references(db: ScratchDatabase, shop: str) -> list[tuple[int, str]]:
    async with db.session_factory() as session:
        rows = await session.execute(
            select(OrderNumber.number, OrderNumber.reference)
            .where(OrderNumber.shop_id == shop)
            .order_by(OrderNumber.number)
        )
        return [(number, reference) for number, reference in rows]


async def test_each_shop_counts_its_own_orders_and_keeps_the_reference(
    db: ScratchDatabase,
) -> None:
    client = OrderNumberingClient(db.session_factory, clock=lambda: T0)
    assert await client.get("shop-a") == Numbering("shop-a", "", 1)
    assert [await allocate(db, "shop-a", f"a{i}") for i in range(3)] == [1, 2, 3]
    assert [await allocate(db, "shop-b", f"b{i}") for i in range(2)] == [1, 2]
    assert await allocate(db, "shop-a", "a1") == 2, "a retry finds its number"
    # a prefix and a start for the orders to come; the earlier ones keep theirs
    assert await client.set("shop-a", prefix="WEB-", start=1000) == Numbering(
        "shop-a", "WEB-", 1000
    )
    assert await allocate(db, "shop-a", "a3") == 1000
    assert await client.set("shop-a", prefix="") == Numbering("shop-a", "", 1001)
    assert await allocate(db, "shop-a", "a4") == 1001
    assert await references(db, "shop-a") == [
        (1, "1"),
        (2, "2"),
        (3, "3"),
        (1000, "WEB-1000"),
        (1001, "1001"),
    ]
    assert await references(db, "shop-b") == [(1, "1"), (2, "2")]


async def test_the_next_number_only_moves_forward_and_bad_input_is_refused(
    db: ScratchDatabase,
) -> None:
    client = OrderNumberingClient(db.session_factory)
    for _ in range(3):
        await allocate(db, "shop-a", f"cart-{_}")
    with pytest.raises(NumberingRefused) as low:
        await client.set("shop-a", start=3)
    assert low.value.code == "order_number_start_too_low" and "4 or more" in low.value.message
    assert (await client.set("shop-a", start=4)).next_number == 4  # where it is: fine
    for prefix in (" WEB", "-x", "a" * 17, "ü", "a b", "x\x1b[31m"):
        with pytest.raises(NumberingRefused) as bad:
            await client.set("shop-a", prefix=prefix)
        assert bad.value.code == "invalid_order_number_prefix", prefix
    for start in (0, -5, 10**19, True, 2.5, "7"):
        with pytest.raises(NumberingRefused) as wrong:
            await client.set("shop-a", start=start)  # type: ignore[arg-type]
        assert wrong.value.code == "invalid_order_number_start", start
    assert await client.get("shop-a") == Numbering("shop-a", "", 4), "nothing changed"


async def test_racing_orders_of_one_shop_get_consecutive_numbers_once_each(
    db: ScratchDatabase,
) -> None:
    """Concurrent allocations (projections of many carts, retries of the same cart) on
    two shops: each order one number, a shop's numbers 1..n without gaps."""
    calls = [("shop-a", f"a{i}") for i in range(15)] + [("shop-b", f"b{i}") for i in range(8)]
    calls += [("shop-a", "a3")] * 4 + [("shop-b", "b0")] * 3
    random.Random(7).shuffle(calls)
    numbers = await asyncio.gather(*(allocate(db, shop, cart) for shop, cart in calls))
    given: dict[tuple[str, str], set[int]] = {}
    for call, number in zip(calls, numbers, strict=True):
        given.setdefault(call, set()).add(number)
    assert all(len(found) == 1 for found in given.values())
    for shop, count in (("shop-a", 15), ("shop-b", 8)):
        mine = sorted(n for (s, _c), found in given.items() if s == shop for n in found)
        assert mine == list(range(1, count + 1))
    assert (await OrderNumberingClient(db.session_factory).get("shop-a")).next_number == 16


# --------------------------------------------------------------------------- the CLI

Cartkeeper = Callable[..., Result]


@pytest.fixture
def cartkeeper(db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db.url,
        default_shop="shop-1",
        secret_key=SecretStr("s" * 40),
    )
    monkeypatch.setattr("activities.settings.get_settings", lambda: settings)
    if db.schema is not None:  # DATABASE_URL names no schema: the test's own one
        schema = db.schema

        def read_model(_settings: Settings) -> tuple[Any, Any]:
            engine = make_engine(db.url, schema=schema)
            return engine, make_session_factory(engine)

        monkeypatch.setattr(cli_order_numbers, "read_model", read_model)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_the_cli_shows_and_sets_the_numbering(cartkeeper: Cartkeeper) -> None:
    shown = cartkeeper("order-numbers", "show")
    assert shown.exit_code == 0, shown.output
    assert "shop shop-1: no prefix; the next order gets number 1 (1)" in shown.output
    changed = cartkeeper("order-numbers", "set", "--prefix", "SO/", "--start", "500", "--json")
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.output) == {
        "shop_id": "shop-1",
        "prefix": "SO/",
        "next_number": 500,
        "next_reference": "SO/500",
    }
    lower = cartkeeper("order-numbers", "set", "--start", "20", "--shop", "shop-1")
    assert lower.exit_code == 1
    assert lower.output.startswith("error: order_number_start_too_low: ")
    escaped = cartkeeper("order-numbers", "set", "--prefix", "\x1b[31mX")
    assert escaped.exit_code == 1 and "\x1b" not in escaped.output
    assert "invalid_order_number_prefix" in escaped.output
    nothing = cartkeeper("order-numbers", "set")
    assert nothing.exit_code == 2 and "--prefix and/or --start" in nothing.output
