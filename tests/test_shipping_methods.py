"""Shipping methods (``activities.shipping_methods``) on SQLite and PostgreSQL: listed by
position then id, added, edited field by field, deleted, snapshotted for orders, and every
refusal with its code and the field it names."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from activities.shipping_methods import (
    MAX_POSITION,
    MethodSnapshot,
    ShippingMethodRefused,
    add_method,
    delete_method,
    edit_method,
    get_method,
    list_methods,
    method_snapshot,
)
from tests.conftest_db import ScratchDatabase, scratch_database

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SHOP = "shop-1"


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


async def courier(db: ScratchDatabase, method_id: str = "courier", **fields: Any) -> Any:
    values: dict[str, Any] = dict(name="Courier", cost=490, currency="EUR", now=T0)
    values.update(fields)
    return await add_method(db.session_factory, SHOP, method_id, **values)


async def test_methods_are_added_and_listed_by_position_then_id(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    assert await list_methods(sessions, SHOP) == []
    first = await courier(db)
    assert (first.position, first.enabled, first.created_at) == (10, True, T0)
    second = await courier(db, "pick-up", name="Pick-up in store", cost=0)
    assert second.position == 20, "10 after the last one by default"
    await courier(db, "pickup", name="Pickup point", cost=250, position=20)
    await courier(db, "post_express", name="Express", cost=1290, position=5, enabled=False)
    listed = await list_methods(sessions, SHOP)
    # by position, then id by code point ('-' < 'p'), the same on every backend
    assert [m.method_id for m in listed] == ["post_express", "courier", "pick-up", "pickup"]
    enabled = await list_methods(sessions, SHOP, enabled_only=True)
    assert [m.method_id for m in enabled] == ["courier", "pick-up", "pickup"]
    assert await list_methods(sessions, "other-shop") == [], "methods are per shop"
    got = await get_method(sessions, SHOP, "pick-up")
    assert (got.name, got.cost, got.currency) == ("Pick-up in store", 0, "EUR")


async def test_the_default_position_stops_at_the_maximum(db: ScratchDatabase) -> None:
    await courier(db, "last", position=MAX_POSITION - 3)
    assert (await courier(db, "after")).position == MAX_POSITION


async def test_an_edit_changes_only_the_fields_given(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await courier(db)
    later = T0 + timedelta(hours=1)
    edited = await edit_method(sessions, SHOP, "courier", cost=590, now=later)
    assert (edited.name, edited.cost, edited.currency, edited.position, edited.enabled) == (
        "Courier",
        590,
        "EUR",
        10,
        True,
    )
    assert (edited.created_at, edited.updated_at) == (T0, later)
    renamed = await edit_method(
        sessions, SHOP, "courier", name="DHL", currency="CHF", position=3, enabled=False
    )
    assert (renamed.name, renamed.cost, renamed.currency, renamed.position) == (
        "DHL",
        590,
        "CHF",
        3,
    )
    assert renamed.enabled is False
    stored = await get_method(sessions, SHOP, "courier")
    assert stored == renamed
    same = await edit_method(sessions, SHOP, "courier", name="DHL", now=later + timedelta(1))
    assert same.updated_at == renamed.updated_at, "an edit that changes nothing writes nothing"


async def test_a_snapshot_is_what_an_order_keeps(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await courier(db)
    snapshot = await method_snapshot(sessions, SHOP, "courier")
    assert snapshot == MethodSnapshot("courier", "Courier", 490, "EUR")
    assert snapshot == ("courier", "Courier", 490, "EUR")
    method_id, name, cost, currency = snapshot
    # the method changes and goes: the order's snapshot does not
    await edit_method(sessions, SHOP, "courier", name="Slow courier", cost=990)
    assert await method_snapshot(sessions, SHOP, "courier") == (
        "courier",
        "Slow courier",
        990,
        "EUR",
    )
    deleted = await delete_method(sessions, SHOP, "courier")
    assert (deleted.name, deleted.cost) == ("Slow courier", 990)
    assert (method_id, name, cost, currency) == ("courier", "Courier", 490, "EUR")
    with pytest.raises(ShippingMethodRefused) as gone:
        await method_snapshot(sessions, SHOP, "courier")
    assert gone.value.code == "shipping_method_not_found"
    # a disabled method is snapshotted too (whether it may be picked is the order's rule)
    await courier(db, "sea", enabled=False)
    assert (await method_snapshot(sessions, SHOP, "sea")).method_id == "sea"


async def test_delete_refuses_only_a_missing_method(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await courier(db)
    await courier(db, "pick-up", enabled=False)
    await delete_method(sessions, SHOP, "pick-up")
    assert [m.method_id for m in await list_methods(sessions, SHOP)] == ["courier"]
    with pytest.raises(ShippingMethodRefused) as missing:
        await delete_method(sessions, SHOP, "pick-up")
    assert missing.value.code == "shipping_method_not_found"
    assert "'pick-up'" in missing.value.message
    # the id can be used again
    again = await courier(db, "pick-up", name="New pick-up")
    assert again.name == "New pick-up"


async def test_adding_an_id_twice_is_refused_also_when_racing(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await courier(db)
    with pytest.raises(ShippingMethodRefused) as exists:
        await courier(db, name="Another courier")
    assert exists.value.code == "shipping_method_exists"
    assert (await get_method(sessions, SHOP, "courier")).name == "Courier"
    outcomes = await asyncio.gather(
        *(courier(db, "racing", name=f"Racer {n}") for n in range(6)), return_exceptions=True
    )
    added = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(added) == 1 and len(refused) == 5
    assert all(
        isinstance(o, ShippingMethodRefused) and o.code == "shipping_method_exists" for o in refused
    )
    assert (await get_method(sessions, SHOP, "racing")).name == added[0].name


async def test_missing_methods_are_not_found(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await courier(db)
    calls = [
        get_method(sessions, SHOP, "sea"),
        edit_method(sessions, SHOP, "sea", cost=1),
        delete_method(sessions, SHOP, "sea"),
        method_snapshot(sessions, SHOP, "sea"),
        get_method(sessions, "other-shop", "courier"),
    ]
    for call in calls:
        with pytest.raises(ShippingMethodRefused) as missing:
            await call
        assert missing.value.code == "shipping_method_not_found"


INVALID_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"method_id": "Courier"}, "method id"),
    ({"method_id": "pick up"}, "method id"),
    ({"method_id": "-courier"}, "method id"),
    ({"method_id": "courier_"}, "method id"),
    ({"method_id": "a--b"}, "method id"),
    ({"method_id": ""}, "method id"),
    ({"method_id": "x" * 65}, "method id"),
    ({"method_id": 7}, "method id"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 129}, "name"),
    ({"name": "two\nlines"}, "name"),
    ({"name": " Courier"}, "name"),
    ({"name": "Courier\u202e"}, "name"),  # a bidi override
    ({"method_id": "courier\n"}, "method id"),
    ({"name": None}, "name"),
    ({"cost": -1}, "cost"),
    ({"cost": 4.9}, "cost"),
    ({"cost": "490"}, "cost"),
    ({"cost": True}, "cost"),
    ({"cost": 10**12 + 1}, "cost"),
    ({"currency": "eur"}, "currency"),
    ({"currency": "XYZ"}, "currency"),
    ({"currency": None}, "currency"),
    ({"position": -1}, "position"),
    ({"position": MAX_POSITION + 1}, "position"),
    ({"position": "1"}, "position"),
    ({"enabled": 1}, "enabled"),
]


@pytest.mark.parametrize(("fields", "named"), INVALID_FIELDS)
async def test_an_invalid_field_is_refused_naming_it(
    db: ScratchDatabase, fields: dict[str, Any], named: str
) -> None:
    values: dict[str, Any] = dict(method_id="courier", name="Courier", cost=490, currency="EUR")
    values.update(fields)
    method_id = values.pop("method_id")
    with pytest.raises(ShippingMethodRefused) as refused:
        await add_method(db.session_factory, SHOP, method_id, **values)
    assert refused.value.code == "invalid_shipping_method"
    assert named in refused.value.message
    assert await list_methods(db.session_factory, SHOP) == [], "nothing was written"
    if "method_id" in fields or fields.get("name", "") is None or "currency" in fields:
        return  # (None means "keep" in an edit)
    await courier(db)
    with pytest.raises(ShippingMethodRefused) as edit_refused:
        await edit_method(db.session_factory, SHOP, "courier", **fields)
    assert edit_refused.value.code == "invalid_shipping_method"
    assert named in edit_refused.value.message
    stored = await get_method(db.session_factory, SHOP, "courier")
    assert (stored.name, stored.cost, stored.position, stored.enabled) == (
        "Courier",
        490,
        10,
        True,
    )


async def test_currency_edits_are_checked_and_limits_accepted(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await courier(db, "x" * 64, name="n" * 128, cost=10**12, position=MAX_POSITION)
    await courier(db, "free", cost=0, currency="JPY", position=0)
    for currency in ("eur", "XYZ", ""):
        with pytest.raises(ShippingMethodRefused) as refused:
            await edit_method(sessions, SHOP, "free", currency=currency)
        assert refused.value.code == "invalid_shipping_method"
        assert "currency" in refused.value.message
    with pytest.raises(ShippingMethodRefused) as nothing:
        await edit_method(sessions, SHOP, "free")
    assert nothing.value.code == "invalid_shipping_method"


async def test_an_invalid_shop_is_refused(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    for call in (
        list_methods(sessions, "bad shop"),
        add_method(sessions, "", "courier", name="C", cost=1, currency="EUR"),
        method_snapshot(sessions, "x" * 65, "courier"),
    ):
        with pytest.raises(ShippingMethodRefused) as refused:
            await call
        assert refused.value.code == "invalid_shop_id"


async def test_naive_times_are_refused(db: ScratchDatabase) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await courier(db, now=datetime(2026, 12, 1, 9, 0))
