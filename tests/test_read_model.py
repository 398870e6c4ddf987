"""The read model: migrations, projection, restoring, order numbers, queries and settings,
on SQLite and PostgreSQL (``TEST_DATABASE_URL``; skipped without it)."""

from __future__ import annotations

import asyncio
import copy
import os
import random
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy import delete, func, insert, inspect, select, text
from temporalio.testing import ActivityEnvironment

import worker
from activities.cart_activities import CartActivities
from activities.db import alembic_config, make_engine, upgrade_database, write_session
from activities.models import Base, CartRecord, OrderNumber
from activities.read_model import (
    CartRow,
    cart_values,
    count_by_state,
    decode_cart,
    encode_cart,
    get_cart_record,
    list_carts,
)
from activities.settings import Settings
from starter.errors import EXIT_USAGE, Failure
from tests.conftest_db import ScratchDatabase, scratch_database
from workflows import machine
from workflows.contract import (
    AllocateOrderNumberInput,
    AttentionKind,
    Cart,
    CartEvent,
    CartLine,
    CartPolicy,
    CartState,
    CartUpdated,
    CheckoutStarted,
    CustomerIdentified,
    CustomerInfo,
    CustomerVisited,
    LockReason,
    OrderNumberAssigned,
    PaymentMethod,
    PaymentResultReported,
    PaymentStarted,
    PaymentStatus,
    ProjectCartInput,
    ResolveAttention,
    RestoreCartInput,
    RestoredCart,
    UnlockCart,
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
POLICY = CartPolicy()
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LINEAGE = "run-first"


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    """A fresh database of each backend, migrated to head."""
    async with scratch_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture(params=BACKENDS)
async def blank_db(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ScratchDatabase]:
    """A fresh, empty database of each backend (not migrated)."""
    async with scratch_database(request.param, tmp_path, migrate=False) as database:
        yield database


@pytest.fixture
def acts(db: ScratchDatabase) -> CartActivities:
    """The activities without a Temporal client (``restore_cart`` reads the read model)."""
    return CartActivities(db.session_factory)


# --------------------------------------------------------------------------- carts


def line(sku: str, quantity: int = 1, price: int = 1_250) -> CartLine:
    return CartLine(sku=sku, name=f"Product {sku}", quantity=quantity, unit_price=price)


def new_cart(
    shop_id: str = "shop-1",
    cart_id: str = "cart-1",
    *,
    at: datetime = T0,
    lineage: str | None = LINEAGE,
) -> Cart:
    """A cart with two lines (version 1) of ``lineage`` (its first run's id)."""
    cart = Cart(shop_id=shop_id, cart_id=cart_id, policy=POLICY, lineage=lineage)
    assert machine.apply(cart, CartUpdated([line("a", 2), line("b")], "EUR", "cust-7"), at).changed
    return cart


def ordered_cart(shop_id: str = "shop-1", cart_id: str = "cart-1") -> Cart:
    """A cart that went through the whole checkout: customer, payment, order, number."""
    cart = new_cart(shop_id, cart_id)
    events: list[CartEvent] = [
        CustomerIdentified(
            CustomerInfo(
                email="ann@example.com",
                name="Ann Example",
                phone="+49 30 1234",
                locale="de-DE",
                time_zone="Europe/Berlin",
                marketing_consent=True,
                logged_in=True,
                customer_id="cust-7",
            )
        ),
        CustomerVisited(page="/checkout"),
        CheckoutStarted(),
        PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", cart.total, "EUR"),
        PaymentResultReported("att-1", PaymentStatus.FAILED, cart.total, "EUR", "4242"),
        PaymentStarted("att-2", PaymentMethod.ONLINE, "stripe", cart.total, "EUR"),
        PaymentResultReported("att-2", PaymentStatus.SUCCEEDED, cart.total, "EUR", "4242"),
        PaymentResultReported("att-2", PaymentStatus.CANCELLED, cart.total, "EUR"),
        OrderNumberAssigned(1001),
    ]
    for minute, event in enumerate(events, start=1):
        machine.apply(cart, event, T0 + timedelta(minutes=minute))
    assert cart.state is CartState.ORDERED and cart.order and cart.order.number == 1001
    assert cart.order.paid and cart.order.amount_paid == cart.total
    return cart


def underpaid_cart(shop_id: str = "shop-1", cart_id: str = "cart-1") -> Cart:
    """An order paid short whose cart changed during the payment: two open attention
    items (``amount_mismatch``, ``cart_changed_during_payment``), not fully paid."""
    cart = new_cart(shop_id, cart_id)
    events: list[CartEvent] = [
        PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", cart.total, "EUR"),
        PaymentResultReported("att-1", PaymentStatus.FAILED, cart.total, "EUR"),
        CartUpdated([line("a", 3), line("b")], "EUR"),
        PaymentStarted("att-2", PaymentMethod.ONLINE, "stripe", 1_000, "EUR"),
        CartUpdated([line("a", 4), line("b")], "EUR"),
        PaymentResultReported("att-2", PaymentStatus.SUCCEEDED, 1_000, "EUR"),
        OrderNumberAssigned(7),
    ]
    for minute, event in enumerate(events, start=1):
        machine.apply(cart, event, T0 + timedelta(minutes=minute))
    assert cart.state is CartState.ORDERED and cart.order is not None
    assert not cart.order.paid and cart.order.amount_paid == 1_000
    assert [item.kind for item in cart.open_attention] == [
        AttentionKind.AMOUNT_MISMATCH,
        AttentionKind.CART_CHANGED_DURING_PAYMENT,
    ]
    return cart


def locked_cart(shop_id: str, cart_id: str, *, at: datetime = T0) -> Cart:
    """A cart whose payment result never came: locked, needs an admin."""
    cart = new_cart(shop_id, cart_id, at=at)
    machine.apply(cart, PaymentStarted("att-1", PaymentMethod.ONLINE, "paypal", cart.total), at)
    machine.tick(cart, at + timedelta(seconds=POLICY.lock_after_seconds))
    assert cart.state is CartState.LOCKED and cart.needs_admin
    return cart


def bumped(cart: Cart, *, at: datetime, lines: int = 1) -> Cart:
    """A later version of ``cart`` (a copy; the original is unchanged)."""
    later = copy.deepcopy(cart)
    event = CartUpdated([line(f"sku-{i}", i + 1) for i in range(lines)], "EUR")
    assert machine.apply(later, event, at).changed
    return later


async def stored_row(db: ScratchDatabase, shop_id: str, cart_id: str) -> CartRow:
    rows = [
        row
        for row in await list_carts(db.session_factory, shop_id=shop_id, limit=10_000)
        if row.cart_id == cart_id
    ]
    assert len(rows) == 1
    return rows[0]


async def stored_lineage(db: ScratchDatabase, shop_id: str, cart_id: str) -> str | None:
    query = select(CartRecord.lineage).where(
        CartRecord.shop_id == shop_id, CartRecord.cart_id == cart_id
    )
    async with db.session_factory() as session:
        lineage: str | None = (await session.execute(query)).scalar_one()
    return lineage


async def restore(acts: CartActivities, shop_id: str, cart_id: str) -> RestoredCart:
    return await acts.restore_cart(RestoreCartInput(shop_id, cart_id, run_id="run-closed"))


async def loaded(acts: CartActivities, shop_id: str = "shop-1", cart_id: str = "cart-1") -> Cart:
    """The cart the read model holds (through ``restore_cart``, as a new run reads it)."""
    restored = await restore(acts, shop_id, cart_id)
    assert restored.source == "read_model" and restored.cart is not None, restored
    return restored.cart


# --------------------------------------------------------------------------- migrations


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _revision(database: ScratchDatabase) -> str | None:
    async with database.engine.connect() as connection:
        return (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()


async def test_migrations_run_twice_without_error(blank_db: ScratchDatabase) -> None:
    await blank_db.upgrade()
    await blank_db.upgrade()
    assert await _revision(blank_db) == _head() == "0015"
    async with blank_db.engine.connect() as connection:
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"carts", "order_numbers", "alembic_version"} <= tables
    assert {"shipping_methods", "stock_levels", "stock_movements"} <= tables


async def test_concurrent_migrations_in_one_process(blank_db: ScratchDatabase) -> None:
    await asyncio.gather(*(blank_db.upgrade() for _ in range(4)))
    assert await _revision(blank_db) == _head()


async def test_concurrent_migrations_in_several_processes(
    blank_db: ScratchDatabase, tmp_path: Path
) -> None:
    """Several workers starting at once on an empty database: one migrates, the others
    wait for it and find the schema at head (run from another directory)."""
    code = (
        "import asyncio, sys\n"
        "from activities.db import upgrade_database\n"
        "asyncio.run(upgrade_database(sys.argv[1], schema=sys.argv[2] or None))\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            blank_db.url,
            blank_db.schema or "",
            cwd=elsewhere,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = await asyncio.gather(*(p.communicate() for p in processes))
    for process, (_, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr.decode()
    assert await _revision(blank_db) == _head()


async def test_upgrade_creates_the_sqlite_directory(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "cartkeeper.db"
    await upgrade_database(f"sqlite:///{path}")  # the driver is added when missing
    assert path.exists()


async def test_models_match_the_migrations(db: ScratchDatabase) -> None:
    async with db.engine.connect() as connection:
        diff = await connection.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
            )
        )
    assert diff == []


async def test_upgrade_from_0001_keeps_the_rows(blank_db: ScratchDatabase) -> None:
    """A read model written before lineages and amounts paid: its rows survive 0002, with
    no lineage, nothing paid and no attention; its order numbers keep their carts (the
    empty lineage) and the sequence goes on after them."""
    await upgrade_database(blank_db.url, schema=blank_db.schema, revision="0001")
    assert await _revision(blank_db) == "0001"

    old_carts = [ordered_cart("shop-1", "old-ordered"), locked_cart("shop-1", "old-locked")]
    new_columns = {
        "lineage",
        "order_amount_paid",
        "attention",
        "recovered_via",
        "coupon_code",
        "payment_step_at",
        "last_payment_status",
        "listing",
    }
    for cart in old_carts:
        cart.lineage = None  # its snapshot was written before the field existed
    async with write_session(blank_db.session_factory) as session:
        for cart in old_carts:
            values = {
                name: value
                for name, value in cart_values(cart, T0).items()
                if name not in new_columns
            }
            del values["snapshot"]["lineage"]
            await session.execute(insert(CartRecord).values(**values))
        for cart_id in ("old-ordered", "old-other"):
            await session.execute(
                insert(OrderNumber).values(shop_id="shop-1", cart_id=cart_id, created_at=T0)
            )

    await blank_db.upgrade()
    assert await _revision(blank_db) == _head() == "0015"

    ordered = await stored_row(blank_db, "shop-1", "old-ordered")
    assert (ordered.state, ordered.order_number, ordered.order_paid) == (
        CartState.ORDERED,
        1001,
        True,
    )
    assert ordered.order_amount_paid == 0  # unknown before 0002; the next projection tells
    assert ordered.attention is None
    # 0011 made each row's listing from its snapshot
    async with blank_db.session_factory() as session:
        listing = (
            await session.execute(
                select(CartRecord.listing).where(CartRecord.cart_id == "old-ordered")
            )
        ).scalar_one()
    assert listing is not None and listing["payment_method"] == "online"
    locked = await stored_row(blank_db, "shop-1", "old-locked")
    assert locked.state is CartState.LOCKED and locked.needs_admin
    assert locked.lock_reason is LockReason.NO_PAYMENT_RESULT
    for cart in old_carts:
        assert await stored_lineage(blank_db, cart.shop_id, cart.cart_id) is None
        assert await get_cart_record(blank_db.session_factory, cart.shop_id, cart.cart_id) == cart

    async with blank_db.session_factory() as session:
        numbers = (
            await session.execute(
                select(OrderNumber.cart_id, OrderNumber.lineage, OrderNumber.number).order_by(
                    OrderNumber.number
                )
            )
        ).all()
    assert [tuple(row) for row in numbers] == [("old-ordered", "", 1), ("old-other", "", 2)]

    acts = CartActivities(blank_db.session_factory)
    # the old key is the empty lineage: a retry of an old allocation finds its number
    assert await _allocate(acts, "old-ordered") == 1
    # a new lineage of the same id is another cart; numbers go on after the old ones
    assert await _allocate(acts, "old-ordered", lineage="run-new") == 3
    assert await _allocate(acts, "brand-new", lineage="run-x") == 4
    # (0009: the shop's counter went on after its numbers, which kept their reference)
    async with blank_db.session_factory() as session:
        references = (
            await session.execute(select(OrderNumber.reference).order_by(OrderNumber.number))
        ).scalars()
        assert list(references) == ["1", "2", "3", "4"]

    # the old row takes the cart's next projection (it has no lineage to compare)
    later = copy.deepcopy(old_carts[1])
    assert machine.apply(later, UnlockCart(admin="ann"), T0 + timedelta(hours=1)).changed
    later.lineage = "run-restored"
    await acts.project_cart(ProjectCartInput(later))
    row = await stored_row(blank_db, "shop-1", "old-locked")
    assert row.version == later.version and row.state is CartState.ACTIVE
    assert await stored_lineage(blank_db, "shop-1", "old-locked") == "run-restored"


# --------------------------------------------------------------------------- projection


def test_snapshot_encoding_round_trips() -> None:
    for cart in (ordered_cart(), underpaid_cart()):
        assert decode_cart(encode_cart(cart)) == cart


async def test_projection_round_trips_the_whole_snapshot(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    cart = ordered_cart()
    await acts.project_cart(ProjectCartInput(cart))

    restored = await loaded(acts, cart.shop_id, cart.cart_id)
    assert restored == cart
    assert restored.order is not None and restored.state is CartState.ORDERED
    assert restored.payments[1].results == [PaymentStatus.SUCCEEDED, PaymentStatus.CANCELLED]
    assert restored.payments[1].succeeded_amount == cart.total
    assert restored.lineage == LINEAGE and restored.policy == POLICY
    assert await get_cart_record(db.session_factory, cart.shop_id, cart.cart_id) == cart

    row = await stored_row(db, cart.shop_id, cart.cart_id)
    assert row.state is CartState.ORDERED
    assert row.version == cart.version
    assert (row.currency, row.total, row.item_count) == ("EUR", 3_750, 3)
    assert (row.customer_email, row.customer_id) == ("ann@example.com", "cust-7")
    assert (row.order_number, row.order_status, row.order_paid) == (1001, "P", True)
    assert row.order_amount_paid == 3_750
    assert row.needs_admin is False and row.lock_reason is None and row.attention is None
    assert (row.created_at, row.updated_at) == (cart.created_at, cart.updated_at)
    assert row.ordered_at == cart.ordered_at and row.closed_at is None
    assert await stored_lineage(db, cart.shop_id, cart.cart_id) == LINEAGE


async def test_projection_writes_the_amount_paid_and_open_attention(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    cart = underpaid_cart()
    await acts.project_cart(ProjectCartInput(cart))
    row = await stored_row(db, cart.shop_id, cart.cart_id)
    assert (row.order_status, row.order_paid, row.order_amount_paid) == ("O", False, 1_000)
    assert row.total == cart.total == 6_250
    assert row.attention == "amount_mismatch,cart_changed_during_payment"
    assert row.needs_admin is True
    assert (await loaded(acts)).open_attention == cart.open_attention

    # resolved items leave the column (they stay in the snapshot, resolved)
    first = cart.open_attention[0].id
    machine.apply(cart, ResolveAttention(admin="ann", note="refunded", items=[first]), T0)
    await acts.project_cart(ProjectCartInput(cart))
    row = await stored_row(db, cart.shop_id, cart.cart_id)
    assert row.attention == "cart_changed_during_payment" and row.needs_admin is True
    machine.apply(cart, ResolveAttention(admin="ann", note="checked"), T0)
    await acts.project_cart(ProjectCartInput(cart))
    row = await stored_row(db, cart.shop_id, cart.cart_id)
    assert row.attention is None and row.needs_admin is False
    resolved = (await loaded(acts)).attention
    assert [(item.resolved_by, item.resolution) for item in resolved] == [
        ("ann", "refunded"),
        ("ann", "checked"),
    ]


async def test_activities_run_in_an_activity_environment(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    env = ActivityEnvironment()
    cart = new_cart()
    request = RestoreCartInput("shop-1", "cart-1", run_id="run-closed")
    nothing = await env.run(acts.restore_cart, request)
    assert (nothing.cart, nothing.source) == (None, "none")
    await env.run(acts.project_cart, ProjectCartInput(cart))
    assert await env.run(acts.restore_cart, request) == RestoredCart(cart, "read_model", "")
    number = await env.run(acts.allocate_order_number, AllocateOrderNumberInput("shop-1", "c"))
    assert number == await env.run(
        acts.allocate_order_number, AllocateOrderNumberInput("shop-1", "c")
    )


async def test_restore_without_a_client_reads_the_read_model(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    """Without a Temporal client (the closed run cannot be asked), a new run of a closed
    cart continues from its last projection; with no record at all, from nothing, and the
    detail says why (the workflow raises ``cart_not_restored`` with it)."""
    cart = locked_cart("shop-1", "cart-1")
    await acts.project_cart(ProjectCartInput(cart))
    restored = await restore(acts, "shop-1", "cart-1")
    assert restored == RestoredCart(cart=cart, source="read_model", detail="")

    missing = await restore(acts, "shop-1", "nope")
    assert missing.cart is None and missing.source == "none"
    assert "no record" in missing.detail
    # the same id in another shop is another cart
    assert (await restore(acts, "shop-2", "cart-1")).source == "none"
    assert await get_cart_record(db.session_factory, "shop-1", "nope") is None


async def test_projection_is_idempotent(db: ScratchDatabase, acts: CartActivities) -> None:
    cart = ordered_cart()
    for _ in range(3):
        await acts.project_cart(ProjectCartInput(cart))
    async with db.session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(CartRecord)) == 1
    assert await loaded(acts, cart.shop_id, cart.cart_id) == cart


async def test_projection_never_goes_backwards(db: ScratchDatabase, acts: CartActivities) -> None:
    v1 = new_cart()
    v2 = bumped(v1, at=T0 + timedelta(minutes=1), lines=2)
    v3 = bumped(v2, at=T0 + timedelta(minutes=2), lines=3)
    assert (v1.version, v2.version, v3.version) == (1, 2, 3)

    await acts.project_cart(ProjectCartInput(v3))
    first = await stored_row(db, v1.shop_id, v1.cart_id)
    await acts.project_cart(ProjectCartInput(v1))  # older: ignored
    await acts.project_cart(ProjectCartInput(v2))
    # the same version with other content (a replayed, stale write): ignored too
    same_version = copy.deepcopy(v3)
    same_version.lines = [line("zzz", 9)]
    await acts.project_cart(ProjectCartInput(same_version))
    assert await loaded(acts) == v3
    assert await stored_row(db, v1.shop_id, v1.cart_id) == first  # projected_at too

    v4 = bumped(v3, at=T0 + timedelta(minutes=3), lines=4)
    await acts.project_cart(ProjectCartInput(v4))
    assert await loaded(acts) == v4
    row = await stored_row(db, v1.shop_id, v1.cart_id)
    assert (row.version, row.item_count) == (4, 10)


async def test_a_row_without_lineage_takes_newer_versions(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    """A row projected before lineages existed (NULL) belongs to the cart that projects
    next: a newer version replaces it and sets the lineage; an older one does not."""
    old = new_cart(lineage=None)
    v2 = bumped(old, at=T0 + timedelta(minutes=1))
    await acts.project_cart(ProjectCartInput(v2))
    assert await stored_lineage(db, "shop-1", "cart-1") is None

    await acts.project_cart(ProjectCartInput(old))  # older, no lineage either: ignored
    assert await loaded(acts) == v2

    v3 = bumped(v2, at=T0 + timedelta(minutes=2), lines=3)
    v3.lineage = LINEAGE
    stale = copy.deepcopy(v2)
    stale.lineage = LINEAGE
    await acts.project_cart(ProjectCartInput(stale))  # same version: ignored
    assert await stored_lineage(db, "shop-1", "cart-1") is None
    await acts.project_cart(ProjectCartInput(v3))
    assert await loaded(acts) == v3
    assert await stored_lineage(db, "shop-1", "cart-1") == LINEAGE


async def test_a_cart_without_lineage_is_still_projected(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    """A cart restored from a snapshot older than lineages has none: its newer versions
    still reach its row (NULL is no lineage, not another one)."""
    v1 = new_cart(lineage=None)
    v2 = bumped(v1, at=T0 + timedelta(minutes=1), lines=2)
    await acts.project_cart(ProjectCartInput(v1))
    await acts.project_cart(ProjectCartInput(v2))
    assert await loaded(acts) == v2
    await acts.project_cart(ProjectCartInput(v1))
    assert await loaded(acts) == v2


async def test_another_lineage_replaces_the_row_only_if_created_later(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    """The cart id reused after Temporal forgot the old cart: the row follows the cart the
    id names now (created later), whatever the versions; a late write of the old cart
    never takes the row back."""
    old = new_cart(lineage="run-old")
    old_v3 = bumped(bumped(old, at=T0 + timedelta(minutes=1)), at=T0 + timedelta(minutes=2))
    await acts.project_cart(ProjectCartInput(old_v3))

    reused = new_cart(at=T0 + timedelta(days=40), lineage="run-new")
    assert reused.version < old_v3.version
    await acts.project_cart(ProjectCartInput(reused))
    assert await loaded(acts) == reused
    assert await stored_lineage(db, "shop-1", "cart-1") == "run-new"

    # the old cart's later versions (or a retry) are not newer: their cart is older
    old_v4 = bumped(old_v3, at=T0 + timedelta(days=41), lines=5)
    await acts.project_cart(ProjectCartInput(old_v4))
    await acts.project_cart(ProjectCartInput(old_v3))
    assert await loaded(acts) == reused

    # within the new lineage, versions order as usual
    reused_v2 = bumped(reused, at=T0 + timedelta(days=40, minutes=1), lines=2)
    await acts.project_cart(ProjectCartInput(reused_v2))
    await acts.project_cart(ProjectCartInput(reused))
    assert await loaded(acts) == reused_v2

    # a third lineage created before the row's cart does not take it either
    earlier = new_cart(at=T0 + timedelta(days=10), lineage="run-between")
    earlier.version = 99
    await acts.project_cart(ProjectCartInput(earlier))
    # nor does an old cart without lineage (restored from a snapshot older than lineages)
    unknown = bumped(new_cart(lineage=None), at=T0 + timedelta(days=41))
    unknown.version = 99
    await acts.project_cart(ProjectCartInput(unknown))
    assert await loaded(acts) == reused_v2
    row = await stored_row(db, "shop-1", "cart-1")
    assert row.created_at == reused.created_at and row.version == reused_v2.version


async def test_concurrent_out_of_order_projections_keep_the_newest(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    versions = [new_cart()]
    for i in range(1, 12):
        versions.append(bumped(versions[-1], at=T0 + timedelta(minutes=i), lines=i % 5 + 1))
    shuffled = versions * 2
    random.Random(7).shuffle(shuffled)
    await asyncio.gather(*(acts.project_cart(ProjectCartInput(v)) for v in shuffled))
    assert await loaded(acts) == versions[-1]


async def test_projection_keeps_any_text(db: ScratchDatabase, acts: CartActivities) -> None:
    """Text the machine accepts (a NUL, emoji, quotes, control characters) never makes
    the projection fail: the snapshot keeps it exactly; PostgreSQL's text columns drop
    the NUL only."""
    cart = new_cart()
    odd = "Caf\u00e9 \U0001f600 \"quoted\" 'single' back\\slash nul\x00end \x1b[31m\r\n\u202e"
    cart.lines[0].name = odd
    cart.customer = CustomerInfo(email="n\x00ul@example.com", name=odd)
    await acts.project_cart(ProjectCartInput(cart))
    assert await loaded(acts, cart.shop_id, cart.cart_id) == cart
    row = await stored_row(db, cart.shop_id, cart.cart_id)
    assert row.customer_email == "nul@example.com"


# --------------------------------------------------------------------------- order numbers


async def _allocate(
    acts: CartActivities, cart_id: str, shop_id: str = "shop-1", lineage: str = ""
) -> int:
    return await acts.allocate_order_number(AllocateOrderNumberInput(shop_id, cart_id, lineage))


async def test_order_numbers_are_sequential_and_idempotent(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    numbers = [await _allocate(acts, f"cart-{i}", lineage="run-a") for i in range(5)]
    assert numbers == [1, 2, 3, 4, 5]
    # a retried activity (or a second call) gets the same number, and burns none
    assert await _allocate(acts, "cart-2", lineage="run-a") == 3
    assert await _allocate(acts, "cart-2", lineage="run-a") == 3
    assert await _allocate(acts, "cart-5", lineage="run-a") == 6
    # the number is per (shop, cart, lineage), counted per shop: the same cart id in
    # another shop is that shop's first order; reused after Temporal forgot the old cart
    # (another lineage), it is another cart
    assert await _allocate(acts, "cart-2", shop_id="shop-2", lineage="run-a") == 1
    assert await _allocate(acts, "cart-2", lineage="run-b") == 7
    assert await _allocate(acts, "cart-2", lineage="") == 8
    assert await _allocate(acts, "cart-2", lineage="run-b") == 7
    assert await _allocate(acts, "cart-2", lineage="run-a") == 3
    async with db.session_factory() as session:
        created = (await session.execute(select(OrderNumber.created_at))).scalars().all()
    assert len(created) == 9
    assert all(at.tzinfo is UTC for at in created)


async def test_order_numbers_are_never_reused(db: ScratchDatabase, acts: CartActivities) -> None:
    """The shop's counter never gives a number twice, even once its row is gone."""
    assert [await _allocate(acts, f"cart-{i}") for i in range(3)] == [1, 2, 3]
    async with write_session(db.session_factory) as session:
        await session.execute(delete(OrderNumber).where(OrderNumber.number == 3))
    assert await _allocate(acts, "cart-9") == 4


async def test_concurrent_order_numbers(db: ScratchDatabase, acts: CartActivities) -> None:
    distinct = [(f"cart-{i}", "run-a") for i in range(20)]
    calls = [*distinct, *([("same", "run-a")] * 5), *([("same", "run-b")] * 5)]
    random.Random(3).shuffle(calls)
    numbers = await asyncio.gather(
        *(_allocate(acts, cart_id, lineage=lineage) for cart_id, lineage in calls)
    )
    by_key: dict[tuple[str, str], set[int]] = {}
    for key, number in zip(calls, numbers, strict=True):
        by_key.setdefault(key, set()).add(number)
    assert all(len(n) == 1 for n in by_key.values())  # one number per cart and lineage
    assert len({n for (n,) in by_key.values()}) == 22  # distinct across them
    # and later calls agree with what the race settled on
    checks = [("same", "run-a"), ("same", "run-b"), ("cart-0", "run-a")]
    assert [await _allocate(acts, c, lineage=lin) for c, lin in checks] == [
        next(iter(by_key[key])) for key in checks
    ]
    async with db.session_factory() as session:
        rows = (await session.execute(select(OrderNumber.cart_id, OrderNumber.lineage))).all()
    assert sorted(tuple(row) for row in rows) == sorted(by_key)


# --------------------------------------------------------------------------- queries


async def _seed(acts: CartActivities) -> dict[tuple[str, str], Cart]:
    carts = [
        new_cart("shop-1", "a1", at=T0),
        new_cart("shop-1", "a2", at=T0 + timedelta(minutes=5)),
        locked_cart("shop-1", "l1", at=T0 + timedelta(minutes=1)),
        ordered_cart("shop-1", "o1"),
        new_cart("shop-2", "a3", at=T0 + timedelta(minutes=3)),
        locked_cart("shop-2", "l2", at=T0 + timedelta(minutes=2)),
    ]
    abandoned = new_cart("shop-2", "ab1", at=T0 - timedelta(hours=3))
    machine.tick(abandoned, T0 - timedelta(hours=1))
    assert abandoned.state is CartState.ABANDONED
    carts.append(abandoned)
    await asyncio.gather(*(acts.project_cart(ProjectCartInput(c)) for c in carts))
    return {(c.shop_id, c.cart_id): c for c in carts}


def _ids(rows: list[CartRow]) -> list[str]:
    return [row.cart_id for row in rows]


async def test_list_carts_filters(db: ScratchDatabase, acts: CartActivities) -> None:
    carts = await _seed(acts)
    sf = db.session_factory

    everything = await list_carts(sf)
    assert len(everything) == len(carts)
    updated = [row.updated_at for row in everything]
    assert updated == sorted(updated, reverse=True)  # newest updated first

    assert _ids(await list_carts(sf, state=CartState.ACTIVE)) == ["a2", "a3", "a1"]
    assert _ids(await list_carts(sf, state=CartState.ACTIVE, shop_id="shop-1")) == ["a2", "a1"]
    assert _ids(await list_carts(sf, state=CartState.ORDERED)) == ["o1"]
    assert _ids(await list_carts(sf, state=CartState.ABANDONED)) == ["ab1"]
    assert await list_carts(sf, state=CartState.DELETED) == []
    assert set(_ids(await list_carts(sf, shop_id="shop-2"))) == {"a3", "l2", "ab1"}
    assert await list_carts(sf, shop_id="nope") == []

    admin = await list_carts(sf, needs_admin=True)
    assert set(_ids(admin)) == {"l1", "l2"}
    assert all(row.lock_reason is LockReason.NO_PAYMENT_RESULT for row in admin)
    assert all(row.locked_at is not None for row in admin)
    assert _ids(await list_carts(sf, needs_admin=True, shop_id="shop-2")) == ["l2"]
    assert len(await list_carts(sf, needs_admin=False)) == len(carts) - 2
    assert _ids(await list_carts(sf, state=CartState.LOCKED, needs_admin=False)) == []

    assert len(await list_carts(sf, limit=2)) == 2
    assert _ids(await list_carts(sf, limit=2)) == _ids(everything)[:2]
    assert await list_carts(sf, limit=0) == []


async def test_count_by_state(db: ScratchDatabase, acts: CartActivities) -> None:
    assert await count_by_state(db.session_factory) == {}
    await _seed(acts)
    assert await count_by_state(db.session_factory) == {
        "active": 3,
        "locked": 2,
        "ordered": 1,
        "abandoned": 1,
    }
    assert await count_by_state(db.session_factory, "shop-2") == {
        "active": 1,
        "locked": 1,
        "abandoned": 1,
    }
    assert await count_by_state(db.session_factory, "nope") == {}


# --------------------------------------------------------------------------- time


async def test_datetimes_come_back_aware_utc(db: ScratchDatabase, acts: CartActivities) -> None:
    berlin = timezone(timedelta(hours=2))
    at = datetime(2025, 6, 1, 14, 30, 15, 123456, tzinfo=berlin)  # 12:30:15.123456 UTC
    cart = new_cart(at=at)
    await acts.project_cart(ProjectCartInput(cart))

    row = await stored_row(db, cart.shop_id, cart.cart_id)
    for value in (row.created_at, row.updated_at, row.last_activity_at, row.projected_at):
        assert value is not None and value.tzinfo is UTC
    assert row.updated_at == at
    assert row.updated_at.replace(tzinfo=None) == datetime(2025, 6, 1, 12, 30, 15, 123456)
    assert abs(row.projected_at - datetime.now(UTC)) < timedelta(minutes=1)

    assert await loaded(acts, cart.shop_id, cart.cart_id) == cart  # exact values, offsets too

    # stored as UTC: the database itself says 12:30 (SQLite keeps no offset)
    async with db.session_factory() as session:
        raw = (await session.execute(text("SELECT updated_at FROM carts"))).scalar_one()
    if db.backend == "sqlite":
        assert str(raw).startswith("2025-06-01 12:30:15.123456")
    else:
        assert raw == at and raw.utcoffset() == timedelta(0)


async def test_sqlite_engine_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x' / 'wal.db'}")
    try:
        async with engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
            timeout = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    finally:
        await engine.dispose()
    assert mode == "wal"
    assert timeout == 30_000


# --------------------------------------------------------------------------- settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ``CARTKEEPER_*`` or ``DATABASE_URL`` from the outside."""
    for name in list(os.environ):
        if name.startswith("CARTKEEPER_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CARTKEEPER_POLICY", '{"abandon_after_seconds": -1}', "abandon_after_seconds must be"),
        ("CARTKEEPER_POLICY", '{"lock_after_seconds": 0}', "lock_after_seconds must be"),
        ("CARTKEEPER_POLICY", '{"abandon_after_seconds": "900"}', "abandon_after_seconds must"),
        ("CARTKEEPER_POLICY", '{"abandon_after_seconds": 1.5}', "a whole number"),
        ("CARTKEEPER_POLICY", '{"abandon_after_seconds": true}', "a whole number"),
        ("CARTKEEPER_POLICY", '{"process_pending_payments": "yes"}', "true or false"),
        ("CARTKEEPER_POLICY", '{"projection_interval_seconds": Infinity}', "a number from"),
        ("CARTKEEPER_POLICY", '{"abandon_after": 900}', "unknown policy field(s) abandon_after"),
        ("CARTKEEPER_POLICY", "[1, 2]", "valid dictionary"),
        ("CARTKEEPER_SHOP_POLICIES", '{"s1": {"bogus": 1}}', "shop 's1': unknown policy"),
        ("CARTKEEPER_SHOP_POLICIES", '{"s1": {"journal_limit": -5}}', "journal_limit must be"),
        ("CARTKEEPER_SHOP_POLICIES", '{"s1": 5}', "valid dictionary"),
    ],
)
def test_a_malformed_policy_is_refused(
    clean_env: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert expected in str(raised.value)
    (problem,) = raised.value.errors()
    assert problem["loc"][0] == variable.removeprefix("CARTKEEPER_").lower()


@pytest.mark.parametrize("variable", ["CARTKEEPER_POLICY", "CARTKEEPER_SHOP_POLICIES"])
def test_a_policy_that_is_not_json_is_refused(clean_env: pytest.MonkeyPatch, variable: str) -> None:
    """pydantic-settings refuses it before validation (``SettingsError``, which the CLI
    reports as ``invalid_settings`` too: see ``tests/test_cli.py``)."""
    clean_env.setenv(variable, "not json")
    with pytest.raises(SettingsError, match=variable.removeprefix("CARTKEEPER_").lower()):
        Settings()


def test_a_policy_given_in_python_is_checked_too(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="lifetime_seconds must be"):
        Settings(policy={"lifetime_seconds": -3})
    with pytest.raises(ValidationError, match="unknown policy field"):
        Settings(shop_policies={"s1": {"nope": 1}})


def test_policy_for_merges_defaults_global_and_shop_overrides(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv(
        "CARTKEEPER_POLICY",
        '{"abandon_after_seconds": 900, "lock_after_seconds": 600,'
        ' "projection_interval_seconds": 2}',
    )
    clean_env.setenv(
        "CARTKEEPER_SHOP_POLICIES",
        '{"s1": {"lock_after_seconds": 60, "process_pending_payments": true},'
        ' "s2": {"projection_interval_seconds": 0.5}}',
    )
    settings = Settings()
    # new carts alert the admins after 30 minutes locked (the settings' default)
    base = CartPolicy(
        abandon_after_seconds=900,
        lock_after_seconds=600,
        projection_interval_seconds=2.0,
        lock_alert_after_seconds=1800,
    )
    assert settings.policy_for("other") == base
    assert settings.policy_for("s1") == CartPolicy(
        abandon_after_seconds=900,
        lock_after_seconds=60,
        process_pending_payments=True,
        projection_interval_seconds=2.0,
        lock_alert_after_seconds=1800,
    )
    assert settings.policy_for("s2") == CartPolicy(
        abandon_after_seconds=900,
        lock_after_seconds=600,
        projection_interval_seconds=0.5,
        lock_alert_after_seconds=1800,
    )
    # an integral interval becomes a float (the field's type), as the payload converter
    # would decode it
    assert isinstance(settings.policy_for("other").projection_interval_seconds, float)
    clean_env.delenv("CARTKEEPER_POLICY")
    clean_env.delenv("CARTKEEPER_SHOP_POLICIES")
    assert Settings().policy_for("any") == CartPolicy(lock_alert_after_seconds=1800)


# --------------------------------------------------------------------------- deployment


def temporal_at(target_host: str) -> Any:
    """A stand-in for a connected ``Client``: ``check_deployment`` reads its address only."""
    return SimpleNamespace(
        service_client=SimpleNamespace(config=SimpleNamespace(target_host=target_host))
    )


SQLITE_URL = "sqlite+aiosqlite:////var/lib/cartkeeper/cartkeeper.db"
POSTGRES_URL = "postgresql+asyncpg://cartkeeper@db.internal:5432/cartkeeper"
REMOTE = [
    "temporal.example.com:7233",
    "10.0.0.5:7233",
    "[2001:db8::1]:7233",
    "https://temporal.example.com:7233",
    "my-ns.tmprl.cloud:7233",
]
LOCAL = ["localhost:7233", "127.0.0.1:7233", "[::1]:7233", "LOCALHOST:7233", "0.0.0.0:7233"]


@pytest.mark.parametrize("target", REMOTE)
def test_sqlite_with_remote_temporal_is_refused(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, target: str
) -> None:
    for settings in (
        Settings(database_url=SQLITE_URL),
        Settings(database_url="sqlite:///cartkeeper.db"),
        Settings(data_dir=tmp_path),  # the default: a SQLite file in data_dir
    ):
        with pytest.raises(Failure) as raised:
            worker.check_deployment(temporal_at(target), settings)
        failure = raised.value
        assert failure.code == "unsafe_configuration"
        assert failure.exit_code == EXIT_USAGE == 2
        assert "DATABASE_URL" in failure.message
        assert "CARTKEEPER_ALLOW_SQLITE_WITH_REMOTE_TEMPORAL" in failure.message

    allowed = Settings(database_url=SQLITE_URL, allow_sqlite_with_remote_temporal=True)
    worker.check_deployment(temporal_at(target), allowed)
    clean_env.setenv("CARTKEEPER_ALLOW_SQLITE_WITH_REMOTE_TEMPORAL", "true")
    worker.check_deployment(temporal_at(target), Settings(database_url=SQLITE_URL))


@pytest.mark.parametrize("target", REMOTE + LOCAL)
def test_postgresql_passes_with_any_temporal(clean_env: pytest.MonkeyPatch, target: str) -> None:
    for url in (POSTGRES_URL, "postgres://cartkeeper@db.internal/cartkeeper"):
        worker.check_deployment(temporal_at(target), Settings(database_url=url))


@pytest.mark.parametrize("target", LOCAL)
def test_sqlite_with_local_temporal_passes(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, target: str
) -> None:
    worker.check_deployment(temporal_at(target), Settings(database_url=SQLITE_URL))
    worker.check_deployment(temporal_at(target), Settings(data_dir=tmp_path))


def test_not_finished_conditions_in_the_settings() -> None:
    import pydantic

    assert Settings().not_finished_for("any") == ("no_return",)
    settings = Settings(
        not_finished_when=["no_return", "payment_step"],
        shop_not_finished_when={"s2": ["payment_failed"]},
    )
    assert settings.not_finished_for("s1") == ("payment_step", "no_return")
    assert settings.not_finished_for("s2") == ("payment_failed",)
    with pytest.raises(pydantic.ValidationError, match="unknown condition"):
        Settings(not_finished_when=["no_reply"])
    with pytest.raises(pydantic.ValidationError, match="unknown condition"):
        Settings(shop_not_finished_when={"s1": ["payment"]})
