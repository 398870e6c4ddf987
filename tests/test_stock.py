"""Stock levels and movements (``activities.stock``) on SQLite and PostgreSQL: levels set
and read, pages by SKU (keyset), takes that are all or nothing and never go below zero,
give-backs, movements applied once per key, the race for the last unit, untracked SKUs,
and every refusal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from activities.catalog_models import StockMovementRecord
from activities.stock import (
    MAX_STOCK_LEVEL,
    StockRefused,
    give_back_stock,
    list_stock_levels,
    set_stock_level,
    stock_level,
    take_stock,
)
from tests.conftest_db import ScratchDatabase, scratch_database

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
SHOP = "shop-1"


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


async def levels(db: ScratchDatabase, *skus: str) -> dict[str, int | None]:
    found = {}
    for sku in skus:
        level = await stock_level(db.session_factory, SHOP, sku)
        found[sku] = None if level is None else level.level
    return found


async def movements(db: ScratchDatabase) -> int:
    async with db.session_factory() as session:
        count = await session.scalar(select(func.count()).select_from(StockMovementRecord))
        return int(count or 0)


# --------------------------------------------------------------------------- levels


async def test_a_level_is_set_read_and_replaced(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    assert await stock_level(sessions, SHOP, "mug") is None, "not tracked"
    first = await set_stock_level(sessions, SHOP, "mug", 12, now=T0)
    assert (first.sku, first.level, first.updated_at) == ("mug", 12, T0)
    await set_stock_level(sessions, SHOP, "mug", 0, now=T1)
    read = await stock_level(sessions, SHOP, "mug")
    assert read is not None and (read.level, read.updated_at) == (0, T1)
    assert await stock_level(sessions, "other-shop", "mug") is None, "levels are per shop"
    await set_stock_level(sessions, SHOP, "big", MAX_STOCK_LEVEL)
    await set_stock_level(sessions, SHOP, "Tee shirt / XL ✓", 3)  # any cart line's SKU
    assert await levels(db, "big", "Tee shirt / XL ✓") == {
        "big": MAX_STOCK_LEVEL,
        "Tee shirt / XL ✓": 3,
    }


@pytest.mark.parametrize("level", [-1, 1.5, "3", True, None, MAX_STOCK_LEVEL + 1])
async def test_an_invalid_level_is_refused(db: ScratchDatabase, level: Any) -> None:
    sessions = db.session_factory
    await set_stock_level(sessions, SHOP, "mug", 5)
    with pytest.raises(StockRefused) as refused:
        await set_stock_level(sessions, SHOP, "mug", level)
    assert refused.value.code == "invalid_stock_level"
    assert "'mug'" in refused.value.message
    assert await levels(db, "mug") == {"mug": 5}


@pytest.mark.parametrize("sku", ["", "   ", "x" * 201, None, 7, "mug\x00", "mug\x1b[2J"])
async def test_an_invalid_sku_is_refused(db: ScratchDatabase, sku: Any) -> None:
    sessions = db.session_factory
    for call in (
        set_stock_level(sessions, SHOP, sku, 1),
        stock_level(sessions, SHOP, sku),
        take_stock(sessions, SHOP, "k-1", [(sku, 1)]),
        give_back_stock(sessions, SHOP, "k-2", [(sku, 1)]),
    ):
        with pytest.raises(StockRefused) as refused:
            await call
        assert refused.value.code == "invalid_sku"
    assert await movements(db) == 0


async def test_an_invalid_shop_is_refused(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    for call in (
        set_stock_level(sessions, "bad shop", "mug", 1),
        stock_level(sessions, "", "mug"),
        list_stock_levels(sessions, "x" * 65),
        take_stock(sessions, "bad shop", "k", [("mug", 1)]),
    ):
        with pytest.raises(StockRefused) as refused:
            await call
        assert refused.value.code == "invalid_shop_id"


async def test_levels_are_listed_by_sku_a_page_at_a_time(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    skus = ["mug-2", "Mug-1", "mug-10", "a", "b_1", "b-1", "é", "Z"]
    for n, sku in enumerate(skus):
        await set_stock_level(sessions, SHOP, sku, n)
    await set_stock_level(sessions, "other-shop", "mug-3", 1)
    expected = sorted(skus)  # code point order, the same on every backend
    assert expected == ["Mug-1", "Z", "a", "b-1", "b_1", "mug-10", "mug-2", "é"]
    whole = await list_stock_levels(sessions, SHOP)
    assert [level.sku for level in whole.levels] == expected and whole.next_after is None
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = await list_stock_levels(sessions, SHOP, after=after, limit=3)
        pages += 1
        seen += [level.sku for level in page.levels]
        if page.next_after is None:
            break
        assert page.next_after == page.levels[-1].sku
        after = page.next_after
        if pages == 1:
            # a level added before the cursor does not shift the next page (keyset)
            await set_stock_level(sessions, SHOP, "A", 1)
    assert seen == expected and pages == 3
    exact = await list_stock_levels(sessions, SHOP, limit=9)
    assert len(exact.levels) == 9 and exact.next_after is None
    assert (await list_stock_levels(sessions, SHOP, after="é")).levels == ()
    assert [level.sku for level in (await list_stock_levels(sessions, SHOP, after="b")).levels][
        :2
    ] == ["b-1", "b_1"]
    for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "5"}, {"after": 5}):
        with pytest.raises(StockRefused) as refused:
            await list_stock_levels(sessions, SHOP, **bad)
        assert refused.value.code == "invalid_page"


# --------------------------------------------------------------------------- movements


async def test_a_take_takes_every_line_once_per_key(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await set_stock_level(sessions, SHOP, "mug", 5)
    await set_stock_level(sessions, SHOP, "tea", 2)
    lines = [("tea", 2), ("mug", 3), ("gift-card", 1)]
    taken = await take_stock(sessions, SHOP, "order-5:take", lines, now=T0)
    assert taken.applied and not taken.repeated and taken.short == ()
    assert taken.lines == (("gift-card", 1), ("mug", 3), ("tea", 2)), "by sku"
    assert taken.levels == (("gift-card", None), ("mug", 2), ("tea", 0))
    assert taken.untracked == ("gift-card",)
    assert (taken.kind, taken.at, taken.movement_key) == ("take", T0, "order-5:take")
    assert await levels(db, "mug", "tea", "gift-card") == {"mug": 2, "tea": 0, "gift-card": None}
    # the same key again (a retry): nothing changes, the recorded answer
    again = await take_stock(sessions, SHOP, "order-5:take", list(reversed(lines)), now=T1)
    assert again.repeated and again.applied
    assert (again.lines, again.levels, again.at) == (taken.lines, taken.levels, T0)
    assert await levels(db, "mug", "tea") == {"mug": 2, "tea": 0}
    assert await movements(db) == 1
    # the same key in another shop is another movement
    other = await take_stock(sessions, "other-shop", "order-5:take", [("mug", 1)])
    assert other.applied and not other.repeated and other.levels == (("mug", None),)


async def test_a_take_is_all_or_nothing(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await set_stock_level(sessions, SHOP, "mug", 5)
    await set_stock_level(sessions, SHOP, "tea", 1)
    await set_stock_level(sessions, SHOP, "zine", 0)
    lines = [("mug", 3), ("tea", 2), ("card", 4), ("zine", 1)]
    short = await take_stock(sessions, SHOP, "order-6:take", lines)
    assert not short.applied and not short.repeated and short.at is None
    assert short.short == ("tea", "zine"), "every short sku, by sku"
    # the levels found: nothing was taken, not even the mugs that were there
    assert short.levels == (("card", None), ("mug", 5), ("tea", 1), ("zine", 0))
    assert await levels(db, "mug", "tea", "zine") == {"mug": 5, "tea": 1, "zine": 0}
    assert await movements(db) == 0, "a take that ran short is not recorded"
    # after a restock the same key goes through (e.g. the backordered order, retried)
    await set_stock_level(sessions, SHOP, "tea", 10)
    await set_stock_level(sessions, SHOP, "zine", 1)
    taken = await take_stock(sessions, SHOP, "order-6:take", lines)
    assert taken.applied and not taken.repeated
    assert await levels(db, "mug", "tea", "zine") == {"mug": 2, "tea": 8, "zine": 0}


async def test_a_take_never_makes_a_level_negative(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await set_stock_level(sessions, SHOP, "mug", 2)
    short = await take_stock(sessions, SHOP, "k-1", [("mug", 3)])
    assert short.short == ("mug",) and short.levels == (("mug", 2),)
    exact = await take_stock(sessions, SHOP, "k-2", [("mug", 2)])
    assert exact.applied and exact.levels == (("mug", 0),)
    assert (await take_stock(sessions, SHOP, "k-3", [("mug", 1)])).short == ("mug",)
    assert await levels(db, "mug") == {"mug": 0}


async def test_untracked_skus_are_unlimited(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    for n in range(3):
        taken = await take_stock(sessions, SHOP, f"order-{n}", [("ebook", 100_000)])
        assert taken.applied and taken.untracked == ("ebook",)
    given = await give_back_stock(sessions, SHOP, "order-0:back", [("ebook", 5)])
    assert given.applied and given.levels == (("ebook", None),)
    assert await stock_level(sessions, SHOP, "ebook") is None, "it stays untracked"


async def test_give_back_adds_once_per_key(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await set_stock_level(sessions, SHOP, "mug", 1)
    await take_stock(sessions, SHOP, "order-7:take", [("mug", 1)])
    given = await give_back_stock(sessions, SHOP, "order-7:back", [("mug", 1), ("pen", 2)], now=T1)
    assert given.applied and given.kind == "give_back" and given.at == T1
    assert given.levels == (("mug", 1), ("pen", None))
    again = await give_back_stock(sessions, SHOP, "order-7:back", [("pen", 2), ("mug", 1)])
    assert again.repeated and again.levels == given.levels
    assert await levels(db, "mug") == {"mug": 1}
    assert await movements(db) == 2


async def test_a_key_reused_for_another_movement_is_refused(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await set_stock_level(sessions, SHOP, "mug", 5)
    await take_stock(sessions, SHOP, "order-8", [("mug", 1)])
    for call in (
        take_stock(sessions, SHOP, "order-8", [("mug", 2)]),
        take_stock(sessions, SHOP, "order-8", [("mug", 1), ("tea", 1)]),
        give_back_stock(sessions, SHOP, "order-8", [("mug", 1)]),
    ):
        with pytest.raises(StockRefused) as refused:
            await call
        assert refused.value.code == "stock_movement_conflict"
        assert "'order-8'" in refused.value.message
    assert await levels(db, "mug") == {"mug": 4}


INVALID_MOVEMENTS: list[tuple[Any, Any]] = [
    ("k", []),
    ("k", "mug"),
    ("k", [("mug",)]),
    ("k", [("mug", 1, 2)]),
    ("k", ["mu"]),
    ("k", [("mug", 0)]),
    ("k", [("mug", -1)]),
    ("k", [("mug", 1.0)]),
    ("k", [("mug", "1")]),
    ("k", [("mug", True)]),
    ("k", [("mug", 100_001)]),
    ("k", [("mug", 1), ("mug", 2)]),
    ("k", [(f"sku-{n}", 1) for n in range(201)]),
    ("", [("mug", 1)]),
    ("-k", [("mug", 1)]),
    ("with space", [("mug", 1)]),
    ("k" * 256, [("mug", 1)]),
    (None, [("mug", 1)]),
]


@pytest.mark.parametrize(("key", "lines"), INVALID_MOVEMENTS)
async def test_an_invalid_movement_is_refused(db: ScratchDatabase, key: Any, lines: Any) -> None:
    sessions = db.session_factory
    await set_stock_level(sessions, SHOP, "mug", 5)
    for move in (take_stock, give_back_stock):
        with pytest.raises(StockRefused) as refused:
            await move(sessions, SHOP, key, lines)
        assert refused.value.code == "invalid_stock_movement"
    assert await levels(db, "mug") == {"mug": 5}
    assert await movements(db) == 0


async def test_keys_and_lines_at_their_limits_are_accepted(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    key = "order:shop-1:cart-42:" + "x" * 234
    assert len(key) == 255
    lines = [(f"sku-{n:03}", 100_000) for n in range(200)]
    taken = await take_stock(sessions, SHOP, key, lines)
    assert taken.applied and len(taken.untracked) == 200
    assert (await take_stock(sessions, SHOP, key, lines)).repeated


# --------------------------------------------------------------------------- races


async def test_the_last_unit_goes_to_exactly_one_take(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await set_stock_level(sessions, SHOP, "mug", 1)
    results = await asyncio.gather(
        *(take_stock(sessions, SHOP, f"order-{n}:take", [("mug", 1)]) for n in range(10))
    )
    winners = [result for result in results if result.applied]
    assert len(winners) == 1 and winners[0].levels == (("mug", 0),)
    assert all(result.short == ("mug",) for result in results if not result.applied)
    assert await levels(db, "mug") == {"mug": 0}
    assert await movements(db) == 1


async def test_concurrent_takes_of_several_lines_never_oversell(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await set_stock_level(sessions, SHOP, "mug", 3)
    await set_stock_level(sessions, SHOP, "tea", 3)
    # the lines in both orders: takes apply them by sku, so none waits in a cycle
    orders = [[("mug", 1), ("tea", 1)], [("tea", 1), ("mug", 1)]]
    results = await asyncio.gather(
        *(take_stock(sessions, SHOP, f"order-{n}", orders[n % 2]) for n in range(8))
    )
    assert sum(result.applied for result in results) == 3
    assert await levels(db, "mug", "tea") == {"mug": 0, "tea": 0}


async def test_the_same_key_racing_applies_once(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await set_stock_level(sessions, SHOP, "mug", 10)
    results = await asyncio.gather(
        *(take_stock(sessions, SHOP, "order-9:take", [("mug", 2)]) for _ in range(6))
    )
    assert all(result.applied for result in results)
    assert sum(not result.repeated for result in results) == 1
    assert {result.levels for result in results} == {(("mug", 8),)}
    assert await levels(db, "mug") == {"mug": 8}
    given = await asyncio.gather(
        *(give_back_stock(sessions, SHOP, "order-9:back", [("mug", 2)]) for _ in range(6))
    )
    assert sum(not result.repeated for result in given) == 1
    assert await levels(db, "mug") == {"mug": 10}


async def test_naive_times_are_refused(db: ScratchDatabase) -> None:
    naive = datetime(2026, 12, 1, 9, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        await set_stock_level(db.session_factory, SHOP, "mug", 1, now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        await take_stock(db.session_factory, SHOP, "k", [("mug", 1)], now=naive)
