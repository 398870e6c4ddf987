"""The read model: migrations, projection, order numbers and queries, on SQLite and
PostgreSQL (``TEST_DATABASE_URL``; skipped without it)."""

from __future__ import annotations

import asyncio
import copy
import random
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from temporalio.testing import ActivityEnvironment

from activities.cart_activities import CartActivities
from activities.db import alembic_config, make_engine, upgrade_database
from activities.models import Base, CartRecord, OrderNumber
from activities.read_model import (
    CartRow,
    count_by_state,
    decode_cart,
    encode_cart,
    get_cart_record,
    list_carts,
)
from tests.conftest_db import ScratchDatabase, scratch_database
from workflows import machine
from workflows.contract import (
    AllocateOrderNumberInput,
    Cart,
    CartEvent,
    CartLine,
    CartPolicy,
    CartRecordRequest,
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
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
POLICY = CartPolicy()
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


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
    return CartActivities(db.session_factory)


# --------------------------------------------------------------------------- carts


def line(sku: str, quantity: int = 1, price: int = 1_250) -> CartLine:
    return CartLine(sku=sku, name=f"Product {sku}", quantity=quantity, unit_price=price)


def new_cart(shop_id: str = "shop-1", cart_id: str = "cart-1", *, at: datetime = T0) -> Cart:
    """A cart with two lines (version 1)."""
    cart = Cart(shop_id=shop_id, cart_id=cart_id)
    machine.apply(cart, CartUpdated([line("a", 2), line("b")], "EUR", "cust-7"), at, POLICY)
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
        machine.apply(cart, event, T0 + timedelta(minutes=minute), POLICY)
    assert cart.state is CartState.ORDERED and cart.order and cart.order.number == 1001
    return cart


def locked_cart(shop_id: str, cart_id: str, *, at: datetime = T0) -> Cart:
    """A cart whose payment result never came: locked, needs an admin."""
    cart = new_cart(shop_id, cart_id, at=at)
    machine.apply(
        cart, PaymentStarted("att-1", PaymentMethod.ONLINE, "paypal", cart.total), at, POLICY
    )
    machine.tick(cart, at + timedelta(seconds=POLICY.lock_after_seconds), POLICY)
    assert cart.state is CartState.LOCKED and cart.needs_admin
    return cart


def bumped(cart: Cart, *, at: datetime, lines: int = 1) -> Cart:
    """A later version of ``cart`` (a copy; the original is unchanged)."""
    later = copy.deepcopy(cart)
    event = CartUpdated([line(f"sku-{i}", i + 1) for i in range(lines)], "EUR")
    assert machine.apply(later, event, at, POLICY)
    return later


async def stored_row(db: ScratchDatabase, shop_id: str, cart_id: str) -> CartRow:
    rows = [
        row
        for row in await list_carts(db.session_factory, shop_id=shop_id, limit=10_000)
        if row.cart_id == cart_id
    ]
    assert len(rows) == 1
    return rows[0]


# --------------------------------------------------------------------------- migrations


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _revision(database: ScratchDatabase) -> str | None:
    async with database.engine.connect() as connection:
        return (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()


async def test_migrations_run_twice_without_error(blank_db: ScratchDatabase) -> None:
    await blank_db.upgrade()
    await blank_db.upgrade()
    assert await _revision(blank_db) == _head() == "0001"
    async with blank_db.engine.connect() as connection:
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"carts", "order_numbers", "alembic_version"} <= tables


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


# --------------------------------------------------------------------------- projection


def test_snapshot_encoding_round_trips() -> None:
    cart = ordered_cart()
    assert decode_cart(encode_cart(cart)) == cart


async def test_projection_round_trips_the_whole_snapshot(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    cart = ordered_cart()
    await acts.project_cart(ProjectCartInput(cart))

    loaded = await acts.load_cart_record(CartRecordRequest(cart.shop_id, cart.cart_id))
    assert loaded == cart
    assert loaded is not None and loaded.order is not None
    assert loaded.state is CartState.ORDERED
    assert loaded.payments[1].results == [PaymentStatus.SUCCEEDED, PaymentStatus.CANCELLED]
    assert await get_cart_record(db.session_factory, cart.shop_id, cart.cart_id) == cart

    row = await stored_row(db, cart.shop_id, cart.cart_id)
    assert row.state is CartState.ORDERED
    assert row.version == cart.version
    assert (row.currency, row.total, row.item_count) == ("EUR", 3_750, 3)
    assert (row.customer_email, row.customer_id) == ("ann@example.com", "cust-7")
    assert (row.order_number, row.order_status, row.order_paid) == (1001, "P", True)
    assert row.needs_admin is False and row.lock_reason is None
    assert (row.created_at, row.updated_at) == (cart.created_at, cart.updated_at)
    assert row.ordered_at == cart.ordered_at and row.closed_at is None


async def test_activities_run_in_an_activity_environment(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    env = ActivityEnvironment()
    cart = new_cart()
    assert await env.run(acts.load_cart_record, CartRecordRequest("shop-1", "cart-1")) is None
    await env.run(acts.project_cart, ProjectCartInput(cart))
    assert await env.run(acts.load_cart_record, CartRecordRequest("shop-1", "cart-1")) == cart
    number = await env.run(acts.allocate_order_number, AllocateOrderNumberInput("shop-1", "c"))
    assert number == await env.run(
        acts.allocate_order_number, AllocateOrderNumberInput("shop-1", "c")
    )


async def test_unknown_cart_has_no_record(db: ScratchDatabase, acts: CartActivities) -> None:
    assert await acts.load_cart_record(CartRecordRequest("shop-1", "nope")) is None
    assert await get_cart_record(db.session_factory, "shop-1", "nope") is None


async def test_projection_is_idempotent(db: ScratchDatabase, acts: CartActivities) -> None:
    cart = ordered_cart()
    for _ in range(3):
        await acts.project_cart(ProjectCartInput(cart))
    async with db.session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(CartRecord)) == 1
    assert await acts.load_cart_record(CartRecordRequest(cart.shop_id, cart.cart_id)) == cart


async def test_projection_never_goes_backwards(db: ScratchDatabase, acts: CartActivities) -> None:
    v1 = new_cart()
    v2 = bumped(v1, at=T0 + timedelta(minutes=1), lines=2)
    v3 = bumped(v2, at=T0 + timedelta(minutes=2), lines=3)
    assert (v1.version, v2.version, v3.version) == (1, 2, 3)
    request = CartRecordRequest(v1.shop_id, v1.cart_id)

    await acts.project_cart(ProjectCartInput(v3))
    first = await stored_row(db, v1.shop_id, v1.cart_id)
    await acts.project_cart(ProjectCartInput(v1))  # older: ignored
    await acts.project_cart(ProjectCartInput(v2))
    # the same version with other content (a replayed, stale write): ignored too
    same_version = copy.deepcopy(v3)
    same_version.lines = [line("zzz", 9)]
    await acts.project_cart(ProjectCartInput(same_version))
    assert await acts.load_cart_record(request) == v3
    assert await stored_row(db, v1.shop_id, v1.cart_id) == first  # projected_at too

    v4 = bumped(v3, at=T0 + timedelta(minutes=3), lines=4)
    await acts.project_cart(ProjectCartInput(v4))
    assert await acts.load_cart_record(request) == v4
    row = await stored_row(db, v1.shop_id, v1.cart_id)
    assert (row.version, row.item_count) == (4, 10)


async def test_concurrent_out_of_order_projections_keep_the_newest(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    versions = [new_cart()]
    for i in range(1, 12):
        versions.append(bumped(versions[-1], at=T0 + timedelta(minutes=i), lines=i % 5 + 1))
    shuffled = versions * 2
    random.Random(7).shuffle(shuffled)
    await asyncio.gather(*(acts.project_cart(ProjectCartInput(v)) for v in shuffled))
    assert await acts.load_cart_record(CartRecordRequest("shop-1", "cart-1")) == versions[-1]


async def test_projection_keeps_any_text(db: ScratchDatabase, acts: CartActivities) -> None:
    """Text the machine accepts (a NUL, emoji, quotes) never makes the projection fail:
    the snapshot keeps it exactly; PostgreSQL's text columns drop the NUL only."""
    cart = new_cart()
    odd = "Caf\u00e9 \U0001f600 \"quoted\" 'single' back\\slash nul\x00end"
    cart.lines[0].name = odd
    cart.customer = CustomerInfo(email="n\x00ul@example.com", name=odd)
    await acts.project_cart(ProjectCartInput(cart))
    loaded = await acts.load_cart_record(CartRecordRequest(cart.shop_id, cart.cart_id))
    assert loaded == cart
    row = await stored_row(db, cart.shop_id, cart.cart_id)
    assert row.customer_email == "nul@example.com"


# --------------------------------------------------------------------------- order numbers


async def _allocate(acts: CartActivities, cart_id: str, shop_id: str = "shop-1") -> int:
    return await acts.allocate_order_number(AllocateOrderNumberInput(shop_id, cart_id))


async def test_order_numbers_are_sequential_and_idempotent(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    numbers = [await _allocate(acts, f"cart-{i}") for i in range(5)]
    assert numbers == [1, 2, 3, 4, 5]
    # a retried activity (or a second call) gets the same number, and burns none
    assert await _allocate(acts, "cart-2") == 3
    assert await _allocate(acts, "cart-2") == 3
    assert await _allocate(acts, "cart-5") == 6
    # the number is per (shop, cart): the same cart id in another shop is another cart
    assert await _allocate(acts, "cart-2", shop_id="shop-2") == 7
    async with db.session_factory() as session:
        created = (await session.execute(select(OrderNumber.created_at))).scalars().all()
    assert len(created) == 7
    assert all(at.tzinfo is UTC for at in created)


async def test_concurrent_order_numbers(db: ScratchDatabase, acts: CartActivities) -> None:
    distinct = [f"cart-{i}" for i in range(20)]
    calls = [*distinct, *(["same"] * 5)]
    random.Random(3).shuffle(calls)
    numbers = await asyncio.gather(*(_allocate(acts, cart_id) for cart_id in calls))
    by_cart: dict[str, set[int]] = {}
    for cart_id, number in zip(calls, numbers, strict=True):
        by_cart.setdefault(cart_id, set()).add(number)
    assert all(len(n) == 1 for n in by_cart.values())  # one number per cart
    assert len({n for (n,) in by_cart.values()}) == 21  # distinct across carts
    # and later calls agree with what the race settled on
    assert [await _allocate(acts, c) for c in ("same", "cart-0")] == [
        next(iter(by_cart["same"])),
        next(iter(by_cart["cart-0"])),
    ]
    async with db.session_factory() as session:
        rows = (await session.execute(select(OrderNumber.cart_id))).scalars().all()
    assert sorted(rows) == sorted(by_cart)


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
    machine.tick(abandoned, T0 - timedelta(hours=1), POLICY)
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

    loaded = await acts.load_cart_record(CartRecordRequest(cart.shop_id, cart.cart_id))
    assert loaded == cart  # the snapshot keeps the exact values (offsets too)

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
