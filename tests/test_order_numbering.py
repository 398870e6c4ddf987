"""Order numbers per shop (``activities.order_numbering``): a sequence of each shop's own
without gaps, given once per order whatever the retries and races, a prefix kept in the
order's reference, a next number that only moves forward; and ``cartkeeper order-numbers``.
SQLite, and PostgreSQL with ``TEST_DATABASE_URL``."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

import starter.cli.order_numbers as cli_order_numbers
from activities.cart_activities import CartActivities
from activities.models import OrderNumber
from activities.order_numbering import Numbering, NumberingRefused
from starter.order_numbering import OrderNumberingClient
from tests.cli_fixtures import Cartkeeper, in_process_cli
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


@pytest.fixture
def cartkeeper(db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    """The CLI in-process on ``db``."""
    return in_process_cli(db, tmp_path, monkeypatch, [cli_order_numbers], shop="shop-1")


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


async def test_a_bad_shop_id_is_refused(db: ScratchDatabase) -> None:
    client = OrderNumberingClient(db.session_factory)
    for shop in ("bad shop!", "shop\n", "x" * 65, ""):
        with pytest.raises(NumberingRefused) as refused:
            await client.set(shop, prefix="W-")
        assert refused.value.code == "invalid_shop_id"
        with pytest.raises(NumberingRefused):
            await client.get(shop)


async def downgrade(db: ScratchDatabase, revision: str) -> None:
    from alembic import command

    from activities.db import alembic_config, make_migration_engine

    config = alembic_config(db.url, schema=db.schema)
    engine = make_migration_engine(db.url, schema=db.schema)

    def run(connection: Any) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()


async def test_0009_is_undone_only_while_numbers_are_unique_across_shops(
    db: ScratchDatabase,
) -> None:
    await allocate(db, "shop-a", "a1")
    await allocate(db, "shop-b", "b1")  # both number 1
    with pytest.raises(RuntimeError, match="several shops have order number 1"):
        await downgrade(db, "0008")
    assert await references(db, "shop-a") == [(1, "1")], "nothing changed"
    await allocate(db, "shop-a", "a2")  # 2
    async with db.session_factory() as session:
        await session.execute(delete(OrderNumber).where(OrderNumber.shop_id == "shop-b"))
        await session.commit()
    await downgrade(db, "0008")  # one shop's numbers: a global sequence again
    await db.upgrade()
    assert await references(db, "shop-a") == [(1, "1"), (2, "2")]
    assert await allocate(db, "shop-a", "a3") == 3, "the counter goes on after them"
