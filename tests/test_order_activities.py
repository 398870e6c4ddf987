"""The order phase's activities (``activities.order_activities``): the statuses read
(``read_order_statuses``) and the stock moved (``move_order_stock``), on SQLite and
PostgreSQL (``TEST_DATABASE_URL``). The status e-mail: ``test_order_status_mail``."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cart_activities import CartActivities
from activities.order_activities import OrderActivities, order_activities
from activities.order_statuses import add_status, edit_status
from activities.read_model import get_cart_record
from activities.settings import Settings
from activities.stock import set_stock_level, stock_level
from tests import admin_mail_fixtures
from tests.conftest_db import ScratchDatabase
from workflows import machine, order_phase
from workflows.contract import (
    Cart,
    CartLine,
    CartUpdated,
    OrderNumberAssigned,
    PaymentResultReported,
    ProjectCartInput,
)
from workflows.order_contract import (
    ACTIVITY_MOVE_ORDER_STOCK,
    ACTIVITY_READ_ORDER_STATUSES,
    ACTIVITY_SEND_STATUS_MAIL,
    ReadOrderStatusesInput,
    StockMoveInput,
)
from workflows.order_events import OrderManaged, OrderStatusesRead
from workflows.order_state import (
    INVENTORY_DECREASE,
    INVENTORY_INCREASE,
    INVENTORY_NONE,
    MOVE_DONE,
    MOVE_SHORT,
    StatusDefinition,
    StockQuantity,
)

db = admin_mail_fixtures.db  # the read model, on SQLite and PostgreSQL

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SHOP = "demo"


def acts(db: ScratchDatabase, tmp_path: Path) -> OrderActivities:
    return OrderActivities(db.session_factory, Settings(data_dir=tmp_path), clock=lambda: NOW)


def test_the_worker_registers_three_activities(tmp_path: Path) -> None:
    names = [
        fn.__temporal_activity_definition.name  # type: ignore[attr-defined]
        for fn in order_activities(None, Settings(data_dir=tmp_path))  # type: ignore[arg-type]
    ]
    assert names == [
        ACTIVITY_READ_ORDER_STATUSES,
        ACTIVITY_MOVE_ORDER_STOCK,
        ACTIVITY_SEND_STATUS_MAIL,
    ]


# --------------------------------------------------------------------------- statuses


async def test_a_shop_that_never_edited_reads_the_defaults_with_hidden_n(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    read = await ActivityEnvironment().run(
        acts(db, tmp_path).read_order_statuses, ReadOrderStatusesInput(SHOP)
    )
    assert read.version == 0
    letters = [status.letter for status in read.statuses]
    assert letters == ["O", "P", "C", "A", "H", "R", "S", "V", "B", "Y", "F", "D", "I", "N"]
    assert read.find("N") == StatusDefinition(
        letter="N", name="Incomplete", colour="#bdbdbd", inventory=INVENTORY_NONE, hidden=True
    )
    processed = read.find("P")
    assert processed is not None and processed.paid and processed.notify_department
    assert processed.inventory == INVENTORY_DECREASE and not processed.final
    cancelled = read.find("I")
    assert cancelled is not None and cancelled.final and cancelled.inventory == INVENTORY_INCREASE
    preparing = read.find("R")
    assert preparing is not None and preparing.contents_editable
    assert all(isinstance(status.inventory, str) for status in read.statuses)
    assert read.find("Z") is None


async def test_the_statuses_after_an_edit(db: ScratchDatabase, tmp_path: Path) -> None:
    sessions = db.session_factory
    await add_status(
        sessions,
        SHOP,
        "W",
        "Waiting for the supplier",
        colour="#123456",
        position=95,
        notify_customer=True,
        inventory="increase",
        now=NOW,
        by="ann",
    )
    await edit_status(sessions, SHOP, "S", {"name": "Sent off", "notify_department": True}, now=NOW)
    read = await ActivityEnvironment().run(
        acts(db, tmp_path).read_order_statuses, ReadOrderStatusesInput(SHOP)
    )
    assert read.version == 2
    added = read.find("W")
    assert added == StatusDefinition(
        letter="W",
        name="Waiting for the supplier",
        colour="#123456",
        notify_customer=True,
        inventory=INVENTORY_INCREASE,
    )
    letters = [status.letter for status in read.statuses]
    assert letters.index("W") == letters.index("B") + 1  # by position: B 90, W 95, Y 100
    shipped = read.find("S")
    assert shipped is not None and shipped.name == "Sent off" and shipped.notify_department
    hidden = read.find("N")
    assert hidden is not None and hidden.hidden
    other = await ActivityEnvironment().run(
        acts(db, tmp_path).read_order_statuses, ReadOrderStatusesInput("other-shop")
    )
    assert other.version == 0 and other.find("W") is None, "statuses are per shop"


async def test_the_projection_that_numbers_an_order_reads_its_statuses_too(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    """``project_cart`` with ``read_statuses``: the order is numbered and enters its first
    status in the copy it writes, at the same time; the workflow, applying the same two
    events from the result at that time, arrives at the version written. The stock move
    that status calls for is left to the workflow."""
    await edit_status(db.session_factory, SHOP, "P", {"name": "Paid, packing"}, now=NOW)
    await set_stock_level(db.session_factory, SHOP, "tea", 10, now=NOW)
    cart = Cart(shop_id=SHOP, cart_id="c-fold", lineage="run-1")
    machine.apply(cart, CartUpdated([CartLine("tea", "Tea", 2, 450)], "EUR"), NOW)
    machine.apply(cart, PaymentResultReported("a1", "succeeded", 900), NOW)  # type: ignore[arg-type]
    machine.apply(cart, OrderManaged(), NOW)
    assert order_phase.needs_statuses(cart) and cart.order is not None
    workflow_copy = copy.deepcopy(cart)
    activities = CartActivities(db.session_factory)
    result = await ActivityEnvironment().run(
        activities.project_cart,
        ProjectCartInput(cart=cart, assign_number=True, read_statuses=True),
    )
    assert result.number is not None and result.assigned_at is not None
    assert result.statuses is not None and result.statuses.version == 1
    assert result.statuses == await acts(db, tmp_path).read_order_statuses(
        ReadOrderStatusesInput(SHOP)
    )
    machine.apply(workflow_copy, OrderNumberAssigned(number=result.number), result.assigned_at)
    machine.apply(workflow_copy, OrderStatusesRead(statuses=result.statuses), result.assigned_at)
    assert workflow_copy.version == result.version
    record = await get_cart_record(db.session_factory, SHOP, "c-fold")
    assert record is not None and record.version == result.version
    assert record.order is not None and record.order.status_name == "Paid, packing"
    assert record.order.number == result.number
    assert [(m.kind, m.outcome) for m in record.order.stock_moves] == [("take", "pending")]
    level = await stock_level(db.session_factory, SHOP, "tea")
    assert level is not None and level.level == 10, "nothing moved here"
    # Without ``read_statuses`` (or without a number to give) nothing is read.
    again = await ActivityEnvironment().run(
        activities.project_cart, ProjectCartInput(cart=workflow_copy, read_statuses=True)
    )
    assert again.statuses is None and again.number is None


@pytest.mark.parametrize("shop_id", ["", "bad shop", "x" * 300])
async def test_a_bad_shop_id_is_refused_for_good(
    db: ScratchDatabase, tmp_path: Path, shop_id: str
) -> None:
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            acts(db, tmp_path).read_order_statuses, ReadOrderStatusesInput(shop_id)
        )
    assert refused.value.type == "invalid_shop_id" and refused.value.non_retryable


# --------------------------------------------------------------------------- stock


def move(key: str, kind: str, **quantities: int) -> StockMoveInput:
    return StockMoveInput(
        shop_id=SHOP,
        cart_id="c-1",
        key=key,
        kind=kind,
        lines=[StockQuantity(sku, quantity) for sku, quantity in quantities.items()],
    )


async def levels(db: ScratchDatabase, *skus: str) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for sku in skus:
        level = await stock_level(db.session_factory, SHOP, sku)
        found[sku] = None if level is None else level.level
    return found


async def run_move(db: ScratchDatabase, tmp_path: Path, request: StockMoveInput) -> Any:
    return await ActivityEnvironment().run(acts(db, tmp_path).move_order_stock, request)


async def test_a_take_and_its_repetition_take_once(db: ScratchDatabase, tmp_path: Path) -> None:
    await set_stock_level(db.session_factory, SHOP, "mug", 5, now=NOW)
    take = move("c-1:run-1:take:1", "take", mug=2, poster=1)  # the poster is not tracked
    first = await run_move(db, tmp_path, take)
    assert (first.key, first.outcome, first.short) == ("c-1:run-1:take:1", MOVE_DONE, [])
    assert await levels(db, "mug", "poster") == {"mug": 3, "poster": None}
    again = await run_move(db, tmp_path, take)  # a retry, a replay
    assert again.outcome == MOVE_DONE and again.short == []
    assert again.detail is not None and "applied before" in again.detail
    assert await levels(db, "mug") == {"mug": 3}, "the same key never moves stock twice"


async def test_a_short_take_takes_nothing_and_can_be_tried_again(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    await set_stock_level(db.session_factory, SHOP, "mug", 5, now=NOW)
    await set_stock_level(db.session_factory, SHOP, "cup", 1, now=NOW)
    await set_stock_level(db.session_factory, SHOP, "tee", 0, now=NOW)
    take = move("c-1:run-1:take:1", "take", mug=2, cup=2, tee=1)
    short = await run_move(db, tmp_path, take)
    assert short.outcome == MOVE_SHORT and short.short == ["cup", "tee"]
    assert await levels(db, "mug", "cup", "tee") == {"mug": 5, "cup": 1, "tee": 0}
    await set_stock_level(db.session_factory, SHOP, "cup", 4, now=NOW)
    await set_stock_level(db.session_factory, SHOP, "tee", 1, now=NOW)
    restocked = await run_move(db, tmp_path, take)
    assert restocked.outcome == MOVE_DONE and restocked.short == []
    assert await levels(db, "mug", "cup", "tee") == {"mug": 3, "cup": 2, "tee": 0}


async def test_a_give_back_returns_the_stock_once(db: ScratchDatabase, tmp_path: Path) -> None:
    await set_stock_level(db.session_factory, SHOP, "mug", 5, now=NOW)
    await run_move(db, tmp_path, move("c-1:run-1:take:1", "take", mug=2))
    back = move("c-1:run-1:give_back:3", "give_back", mug=2, poster=1)
    first = await run_move(db, tmp_path, back)
    again = await run_move(db, tmp_path, back)
    assert first.outcome == again.outcome == MOVE_DONE
    assert await levels(db, "mug", "poster") == {"mug": 5, "poster": None}


@pytest.mark.parametrize(
    "other",
    [
        move("k-1", "take", mug=3),  # other lines
        move("k-1", "give_back", mug=2),  # another kind
    ],
)
async def test_a_key_reused_for_another_movement_is_refused_for_good(
    db: ScratchDatabase, tmp_path: Path, other: StockMoveInput
) -> None:
    await set_stock_level(db.session_factory, SHOP, "mug", 5, now=NOW)
    await run_move(db, tmp_path, move("k-1", "take", mug=2))
    with pytest.raises(ApplicationError) as refused:
        await run_move(db, tmp_path, other)
    assert refused.value.type == "stock_movement_conflict" and refused.value.non_retryable
    assert await levels(db, "mug") == {"mug": 3}


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (move("k-1", "steal", mug=1), "invalid_stock_movement"),
        (move("k-1", "take"), "invalid_stock_movement"),  # no lines
        (move("k-1", "take", mug=0), "invalid_stock_movement"),
        (move(" bad key", "take", mug=1), "invalid_stock_movement"),
        (
            StockMoveInput("bad shop", "c-1", "k-1", "take", [StockQuantity("mug", 1)]),
            "invalid_shop_id",
        ),
    ],
)
async def test_an_invalid_movement_is_refused_for_good(
    db: ScratchDatabase, tmp_path: Path, request_: StockMoveInput, code: str
) -> None:
    await set_stock_level(db.session_factory, SHOP, "mug", 5, now=NOW)
    with pytest.raises(ApplicationError) as refused:
        await run_move(db, tmp_path, request_)
    assert refused.value.type == code and refused.value.non_retryable
    assert await levels(db, "mug") == {"mug": 5}
