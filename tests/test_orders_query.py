"""The admin's orders list (``activities.orders_query``) on SQLite and PostgreSQL
(``TEST_DATABASE_URL``): carts made by the state machine and written by the real
projection (``CartActivities.project_cart``, which gives the order numbers), never rows
made by hand. Columns, not finished orders, every filter, both sorts, keyset pages while
rows are added, counts, the registry's names and colours, refusals, and the indexes the
queries use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select, insert

from activities.cart_activities import CartActivities
from activities.db import write_session
from activities.models import CartRecord
from activities.order_numbering import set_numbering
from activities.order_statuses import add_status, delete_status, edit_status
from activities.orders_query import (
    MAX_LIMIT,
    NOT_FINISHED,
    OrderRow,
    OrdersQueryRefused,
    count_by_status,
    encode_cursor,
    get_order,
    list_orders,
    list_statements,
)
from activities.read_model import cart_values
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_read_model import POLICY, locked_cart, new_cart, ordered_cart
from workflows import machine
from workflows.contract import (
    Cart,
    CartState,
    ConfirmCart,
    CustomerIdentified,
    CustomerInfo,
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
SHOP = "shop-1"
OTHER = "shop-2"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TOTAL = 3_750  # new_cart: 2 x 12.50 + 12.50


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
def acts(db: ScratchDatabase) -> CartActivities:
    return CartActivities(db.session_factory)


# --------------------------------------------------------------------------- carts


def customer(cart: Cart, email: str | None, name: str | None, at: datetime) -> None:
    if email is not None:
        machine.apply(cart, CustomerIdentified(CustomerInfo(email=email, name=name)), at)


def paid_order(
    shop_id: str,
    cart_id: str,
    at: datetime,
    *,
    email: str | None = "ann@example.com",
    name: str | None = "Ann Example",
    amount: int = TOTAL,
    gateway: str = "stripe",
) -> Cart:
    """A cart ordered at ``at`` by a payment of ``amount`` (the total: ``P``; less: ``O``,
    partially paid) after a failed one."""
    cart = new_cart(shop_id, cart_id, at=at - timedelta(minutes=10))
    customer(cart, email, name, at - timedelta(minutes=9))
    steps: list[Any] = [
        PaymentStarted("att-1", PaymentMethod.ONLINE, "paypal", TOTAL, "EUR"),
        PaymentResultReported("att-1", PaymentStatus.FAILED, TOTAL, "EUR"),
        PaymentStarted("att-2", PaymentMethod.ONLINE, gateway, amount, "EUR"),
    ]
    for minute, event in enumerate(steps, start=1):
        machine.apply(cart, event, at - timedelta(minutes=8 - minute))
    machine.apply(cart, PaymentResultReported("att-2", PaymentStatus.SUCCEEDED, amount, "EUR"), at)
    assert cart.state is CartState.ORDERED and cart.ordered_at == at
    return cart


def locked_at(
    shop_id: str, cart_id: str, at: datetime, email: str | None, name: str | None = None
) -> Cart:
    """A cart locked at ``at``: ``locked_cart``'s (its payment result never came), with
    a customer who gave ``email`` first (a locked cart takes no storefront change)."""
    start = at - timedelta(seconds=POLICY.lock_after_seconds)
    if email is None:
        cart = locked_cart(shop_id, cart_id, at=start)
    else:
        cart = new_cart(shop_id, cart_id, at=start)
        customer(cart, email, name, start)
        machine.apply(cart, PaymentStarted("att-1", PaymentMethod.ONLINE, "paypal", TOTAL), start)
        machine.tick(cart, at)
    assert cart.state is CartState.LOCKED and cart.locked_at == at
    return cart


def confirmed_order(shop_id: str, cart_id: str, at: datetime, email: str) -> Cart:
    """A locked cart an admin confirmed at ``at`` as open (``O``, nothing paid)."""
    cart = locked_at(shop_id, cart_id, at - timedelta(hours=1), email)
    machine.apply(cart, ConfirmCart(admin="ann", status="O"), at)
    assert cart.state is CartState.ORDERED and cart.order and not cart.order.paid
    return cart


def not_finished(shop_id: str, cart_id: str, at: datetime, email: str | None) -> Cart:
    """A not finished order: a cart locked at ``at``."""
    return locked_at(shop_id, cart_id, at, email, "Bo" if email else None)


async def project(acts: CartActivities, cart: Cart, *, status: str | None = None) -> Cart:
    """Write the cart as the workflow does (an order gets its number). ``status``: the
    letter the order phase (not built yet) would have set."""
    if status is not None:
        assert cart.order is not None
        cart.order.status = status
    await acts.project_cart(ProjectCartInput(cart, assign_number=cart.order is not None))
    return cart


async def seed(db: ScratchDatabase, acts: CartActivities) -> None:
    """shop-1: orders 1-4 (WEB-1, WEB-2, then W3-3, W3-4 after a prefix change) and two
    not finished ones; shop-2: one order of its own."""
    await set_numbering(db.session_factory, SHOP, prefix="WEB-")
    await project(acts, paid_order(SHOP, "c-paid", T0 + timedelta(hours=1)))  # 1
    await project(  # 2: partially paid
        acts,
        paid_order(
            SHOP, "c-part", T0 + timedelta(hours=3), email="Cy@Example.com", name=None, amount=1_000
        ),
    )
    await set_numbering(db.session_factory, SHOP, prefix="W3-")
    await project(acts, confirmed_order(SHOP, "c-open", T0 + timedelta(hours=5), "dee@example.com"))
    await project(acts, paid_order(SHOP, "c-ship", T0 + timedelta(days=2)), status="S")  # 4
    await project(acts, not_finished(SHOP, "n-early", T0 + timedelta(hours=2), "ann@example.com"))
    await project(acts, not_finished(SHOP, "n-late", T0 + timedelta(hours=4), None))
    await project(acts, paid_order(OTHER, "c-other", T0 + timedelta(hours=2)))


def ids(rows: tuple[OrderRow, ...] | list[OrderRow]) -> list[str]:
    return [row.cart_id for row in rows]


NEWEST = ["c-ship", "c-open", "n-late", "c-part", "n-early", "c-paid"]


# --------------------------------------------------------------------------- the list


async def test_orders_and_not_finished_orders_with_their_columns(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    await seed(db, acts)
    page = await list_orders(db.session_factory, SHOP)
    assert ids(page.rows) == NEWEST and page.next_cursor is None
    rows = {row.cart_id: row for row in page.rows}

    paid = rows["c-paid"]
    assert (paid.number, paid.reference, paid.created_at) == (1, "WEB-1", T0 + timedelta(hours=1))
    assert (paid.status, paid.status_name, paid.status_colour) == ("P", "Processed", "#43a047")
    assert (paid.customer_email, paid.customer_name) == ("ann@example.com", "Ann Example")
    assert (paid.total, paid.currency, paid.amount_paid) == (TOTAL, "EUR", TOTAL)
    # the succeeded payment's gateway, not the failed attempt's before it
    assert (paid.payment_method, paid.payment_gateway) == ("online", "stripe")
    assert (paid.fully_paid, paid.payment_status, paid.not_finished) == (True, "paid", False)
    assert paid.delivery is None and paid.shop_id == SHOP

    part = rows["c-part"]
    assert (part.reference, part.status, part.amount_paid) == ("WEB-2", "O", 1_000)
    assert (part.fully_paid, part.payment_status) == (False, "partially_paid")
    assert (part.customer_email, part.customer_name) == ("Cy@Example.com", None)

    opened = rows["c-open"]  # a new prefix applies to the orders to come only
    assert (opened.number, opened.reference, opened.status_name) == (3, "W3-3", "Open")
    assert (opened.amount_paid, opened.payment_status) == (0, "unpaid")
    # confirmed without a payment: the last attempt's method
    assert (opened.payment_method, opened.payment_gateway) == ("online", "paypal")
    assert (rows["c-ship"].status, rows["c-ship"].status_name) == ("S", "Shipped")

    early = rows["n-early"]
    assert early.not_finished and early.number is None and early.reference is None
    assert early.created_at == T0 + timedelta(hours=2)  # when it was locked
    assert (early.status, early.status_name) == ("N", "Incomplete")
    assert early.status_colour == "#bdbdbd"
    assert (early.payment_status, early.fully_paid, early.amount_paid) == ("not_defined", False, 0)
    assert (early.payment_method, early.payment_gateway) == ("online", "paypal")
    assert (early.customer_email, early.customer_name) == ("ann@example.com", "Bo")
    assert (early.total, early.currency) == (TOTAL, "EUR")
    assert rows["n-late"].customer_email is None and rows["n-late"].customer_name is None

    oldest = await list_orders(db.session_factory, SHOP, sort="oldest")
    assert ids(oldest.rows) == NEWEST[::-1]
    other = await list_orders(db.session_factory, OTHER)
    assert ids(other.rows) == ["c-other"] and other.rows[0].reference == "1"


async def test_every_filter(db: ScratchDatabase, acts: CartActivities) -> None:
    await seed(db, acts)

    async def listed(**filters: Any) -> list[str]:
        return ids((await list_orders(db.session_factory, SHOP, **filters)).rows)

    assert await listed(status="P") == ["c-paid"]
    assert await listed(status="o") == ["c-open", "c-part"]  # any case
    assert await listed(status="S", sort="oldest") == ["c-ship"]
    assert await listed(status="C") == []
    assert await listed(status="N") == ["n-late", "n-early"]
    assert await listed(status=NOT_FINISHED) == ["n-late", "n-early"]
    assert await listed(status="N", include_not_finished=False) == []
    assert await listed(include_not_finished=False) == ["c-ship", "c-open", "c-part", "c-paid"]

    # a range: since included, until excluded, on the creation time
    window = {"since": T0 + timedelta(hours=2), "until": T0 + timedelta(hours=5)}
    assert await listed(**window) == ["n-late", "c-part", "n-early"]
    assert await listed(since=T0 + timedelta(hours=5)) == ["c-ship", "c-open"]
    assert await listed(until=T0 + timedelta(hours=1, microseconds=1)) == ["c-paid"]
    assert await listed(until=T0 + timedelta(hours=1)) == []

    assert await listed(email="ANN@example.com") == ["c-ship", "n-early", "c-paid"]
    assert await listed(email=" cy@example.COM ") == ["c-part"]
    assert await listed(email="ann@example.com", status="N") == ["n-early"]
    assert await listed(email="nobody@example.com") == []

    assert await listed(number=2) == ["c-part"]
    assert await listed(number=99) == []
    assert await listed(number=1, status="O") == []
    assert ids((await list_orders(db.session_factory, OTHER, number=1)).rows) == ["c-other"]
    assert await listed(status="P", email="ann@example.com", **window) == []


async def test_get_order(db: ScratchDatabase, acts: CartActivities) -> None:
    await seed(db, acts)
    order = await get_order(db.session_factory, SHOP, 4)
    assert (order.cart_id, order.reference, order.status) == ("c-ship", "W3-4", "S")
    with pytest.raises(OrdersQueryRefused) as missing:
        await get_order(db.session_factory, SHOP, 5)
    assert missing.value.code == "order_not_found"
    with pytest.raises(OrdersQueryRefused) as bad:
        await get_order(db.session_factory, SHOP, 0)
    assert bad.value.code == "invalid_filter"


async def test_an_order_without_a_reference_shows_its_number(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    """An order whose number came another way (``ordered_cart``: number 1001 assigned
    by the machine, no ``order_numbers`` row) shows the number itself."""
    await acts.project_cart(ProjectCartInput(ordered_cart(SHOP, "c-1001")))
    (row,) = (await list_orders(db.session_factory, SHOP)).rows
    assert (row.number, row.reference, row.payment_status) == (1001, "1001", "paid")


def test_the_payment_method_is_the_last_succeeded_payments() -> None:
    from activities.order_rows import _payment

    attempts = [
        {"status": "succeeded", "method": "offline", "gateway": "bank"},
        {"status": "failed", "method": "online", "gateway": "stripe"},
    ]
    assert _payment(attempts) == ("offline", "bank")
    assert _payment(attempts[1:]) == ("online", "stripe")  # else the last attempt's
    assert _payment([]) == (None, None) and _payment(None) == (None, None)


# --------------------------------------------------------------------------- pages


async def _pages(db: ScratchDatabase, sort: Any, limit: int, between: Any) -> list[OrderRow]:
    """Every page, calling ``between(turn, last row seen)`` before each next one."""
    seen: list[OrderRow] = []
    cursor: str | None = None
    for turn in range(100):
        page = await list_orders(db.session_factory, SHOP, sort=sort, limit=limit, after=cursor)
        assert len(page.rows) <= limit
        seen += page.rows
        if page.next_cursor is None:
            return seen
        assert len(page.rows) == limit
        cursor = page.next_cursor
        await between(turn, seen[-1])
    raise AssertionError("too many pages")


@pytest.mark.parametrize("sort", ["newest", "oldest"])
async def test_keyset_pages_neither_skip_nor_repeat_while_rows_are_added(
    db: ScratchDatabase, acts: CartActivities, sort: str
) -> None:
    await seed(db, acts)
    # three orders at the very same time: the cart id orders them, across pages too
    for cart_id in ("t-b", "t-a", "t-c"):
        await project(acts, paid_order(SHOP, cart_id, T0 + timedelta(hours=3, minutes=30)))
    newest = sort == "newest"
    before = ids((await list_orders(db.session_factory, SHOP, sort=sort)).rows)  # type: ignore[arg-type]
    assert len(before) == 9

    ahead: set[str] = set()  # added beyond the position reached: the next pages list them
    behind: set[str] = set()  # added before it: never listed now

    async def between(turn: int, last: OrderRow) -> None:
        if turn > 2:
            return
        # between pages: a newer and an older order, a not finished one, and one at the
        # very time of the last row shown (the cart id decides which side it is on)
        carts = [
            paid_order(SHOP, f"new-{turn}", T0 + timedelta(days=3, minutes=turn)),
            paid_order(SHOP, f"old-{turn}", T0 - timedelta(days=1, minutes=turn)),
            not_finished(SHOP, f"lock-{turn}", T0 + timedelta(hours=2, minutes=turn), None),
            paid_order(SHOP, f"same-{turn}", last.created_at),
        ]
        for cart in carts:
            await project(acts, cart)
            key = (cart.ordered_at or cart.locked_at, cart.cart_id)
            after = (
                key < (last.created_at, last.cart_id)
                if newest
                else key
                > (
                    last.created_at,
                    last.cart_id,
                )
            )
            (ahead if after else behind).add(cart.cart_id)

    seen = await _pages(db, sort, 2, between)
    seen_ids = ids(seen)
    assert len(seen_ids) == len(set(seen_ids)), "a row was repeated"
    assert set(before) <= set(seen_ids), "a row was skipped"
    assert ahead <= set(seen_ids), "a row added ahead was skipped"
    assert not behind & set(seen_ids)
    assert set(seen_ids) == set(before) | ahead
    assert ahead and behind
    keys = [(row.created_at, row.cart_id) for row in seen]
    assert keys == sorted(keys, reverse=newest)
    ties = [cart_id for cart_id in seen_ids if cart_id.startswith("t-")]
    assert ties == (["t-c", "t-b", "t-a"] if newest else ["t-a", "t-b", "t-c"])


async def test_pages_keep_the_filters(db: ScratchDatabase, acts: CartActivities) -> None:
    await seed(db, acts)
    first = await list_orders(db.session_factory, SHOP, email="ann@example.com", limit=2)
    assert ids(first.rows) == ["c-ship", "n-early"] and first.next_cursor is not None
    rest = await list_orders(
        db.session_factory, SHOP, email="ann@example.com", limit=2, after=first.next_cursor
    )
    assert ids(rest.rows) == ["c-paid"] and rest.next_cursor is None
    exact = await list_orders(db.session_factory, SHOP, limit=6)
    assert len(exact.rows) == 6 and exact.next_cursor is None


# --------------------------------------------------------------------------- counts, statuses


async def test_counts_per_status(db: ScratchDatabase, acts: CartActivities) -> None:
    assert await count_by_status(db.session_factory, SHOP) == {NOT_FINISHED: 0}
    await seed(db, acts)
    assert await count_by_status(db.session_factory, SHOP) == {
        "P": 1,
        "O": 2,
        "S": 1,
        NOT_FINISHED: 2,
    }
    assert await count_by_status(db.session_factory, OTHER) == {"P": 1, NOT_FINISHED: 0}


async def test_names_and_colours_come_from_the_registry_now(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    now = T0 + timedelta(days=10)
    await add_status(db.session_factory, SHOP, "X", "Express", colour="#ff00ff", now=now)
    await project(acts, paid_order(SHOP, "c-x", T0), status="X")
    await project(acts, paid_order(SHOP, "c-p", T0 + timedelta(hours=1)))
    await project(acts, not_finished(SHOP, "n-1", T0 + timedelta(hours=2), None))

    async def statuses() -> dict[str, tuple[str, str | None, str | None]]:
        rows = (await list_orders(db.session_factory, SHOP)).rows
        return {row.cart_id: (row.status, row.status_name, row.status_colour) for row in rows}

    assert await statuses() == {
        "c-x": ("X", "Express", "#ff00ff"),
        "c-p": ("P", "Processed", "#43a047"),
        "n-1": ("N", "Incomplete", "#bdbdbd"),
    }
    await edit_status(db.session_factory, SHOP, "P", {"name": "Paid", "colour": "#00FF00"}, now=now)
    await edit_status(db.session_factory, SHOP, "N", {"name": "Not finished"}, now=now)
    await delete_status(db.session_factory, SHOP, "X", now=now)
    assert await statuses() == {
        "c-x": ("X", None, None),  # the registry no longer has it: the letter alone
        "c-p": ("P", "Paid", "#00ff00"),
        "n-1": ("N", "Not finished", "#bdbdbd"),
    }
    assert ids((await list_orders(db.session_factory, SHOP, status="X")).rows) == ["c-x"]
    assert await count_by_status(db.session_factory, SHOP) == {"X": 1, "P": 1, NOT_FINISHED: 1}


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "filters",
    [
        {"status": "PP"},
        {"status": "1"},
        {"status": ""},
        {"status": 5},
        {"status": NOT_FINISHED, "include_not_finished": False},
        {"since": datetime(2026, 1, 1)},  # naive
        {"since": T0, "until": T0},
        {"until": "2026-01-01"},
        {"email": " "},
        {"number": 0},
        {"number": True},
        {"number": "5"},
        {"sort": "random"},
        {"limit": 0},
        {"limit": MAX_LIMIT + 1},
        {"limit": 2.5},
    ],
)
async def test_malformed_filters_are_refused(db: ScratchDatabase, filters: dict[str, Any]) -> None:
    with pytest.raises(OrdersQueryRefused) as refused:
        await list_orders(db.session_factory, SHOP, **filters)
    assert refused.value.code == "invalid_filter", refused.value
    with pytest.raises(OrdersQueryRefused) as bad_shop:
        await list_orders(db.session_factory, "no shop!")
    assert bad_shop.value.code == "invalid_filter"


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor!",
        "e30",  # {}
        "W10",  # []
        encode_cursor("newest", T0, "c-1")[:-3],
        encode_cursor("oldest", T0, "c-1"),  # another sort's
        encode_cursor("newest", T0.replace(tzinfo=None), "c-1"),
        encode_cursor("newest", T0, "bad id!"),
        "x" * 2000,
    ],
)
async def test_a_cursor_this_list_did_not_give_is_refused(
    db: ScratchDatabase, acts: CartActivities, cursor: str
) -> None:
    await seed(db, acts)
    with pytest.raises(OrdersQueryRefused) as refused:
        await list_orders(db.session_factory, SHOP, after=cursor)
    assert refused.value.code == "invalid_cursor"


# --------------------------------------------------------------------------- indexes


async def explain(db: ScratchDatabase, statement: Select[Any]) -> str:
    async with db.engine.connect() as connection:
        compiled = statement.compile(dialect=connection.dialect)
        values = compiled.construct_params()
        positional = tuple(values[name] for name in compiled.positiontup or ())
        prefix = "EXPLAIN QUERY PLAN " if db.backend == "sqlite" else "EXPLAIN "
        result = await connection.exec_driver_sql(prefix + str(compiled), positional)
        return "\n".join(str(row[-1]) for row in result.all())


async def test_the_list_queries_use_the_indexes(db: ScratchDatabase) -> None:
    """With a few thousand carts in several shops and the planner's statistics, every
    query of the list reads an index, and the main one needs no sort of its own on
    SQLite (the index gives the order)."""
    order = ordered_cart(SHOP, "template")
    locked = locked_cart(SHOP, "template-locked")
    rows = []
    for i in range(3_000):
        values = cart_values(order if i % 3 else locked, T0)
        values.update(shop_id=f"shop-{i % 7}", cart_id=f"c-{i}", customer_email=f"u{i % 97}@x.io")
        if values["state"] == "ordered":
            values.update(ordered_at=T0 + timedelta(seconds=i), order_number=i)
        else:
            values.update(locked_at=T0 + timedelta(seconds=i))
        rows.append(values)
    async with write_session(db.session_factory) as session:
        await session.execute(insert(CartRecord), rows)
    async with db.engine.begin() as connection:
        await connection.exec_driver_sql("ANALYZE")

    dialect = db.engine.dialect.name
    expected: dict[tuple[tuple[str, Any], ...], list[str]] = {
        (): ["ix_carts_shop_id_state_ordered_at", "ix_carts_shop_id_state_locked_at"],
        (("status", "P"),): ["ix_carts_shop_id_state_order_status"],
        (("status", NOT_FINISHED),): ["ix_carts_shop_id_state_locked_at"],
        (("number", 5),): ["ix_carts_shop_id_order_number"],
        (("email", "u3@x.io"),): ["ix_carts_shop_id_email", "ix_carts_shop_id_email"],
        (("since", T0), ("until", T0 + timedelta(minutes=5))): [
            "ix_carts_shop_id_state_ordered_at",
            "ix_carts_shop_id_state_locked_at",
        ],
        (("sort", "oldest"),): [
            "ix_carts_shop_id_state_ordered_at",
            "ix_carts_shop_id_state_locked_at",
        ],
    }
    for filters, indexes in expected.items():
        arguments: dict[str, Any] = dict(filters)
        statements = list_statements(dialect, "shop-1", **arguments)
        plans = [await explain(db, statement) for statement in statements]
        assert len(plans) == len(indexes), filters
        for plan, index in zip(plans, indexes, strict=True):
            assert index in plan, (filters, plan)
            assert "SCAN carts" not in plan and "Seq Scan" not in plan, (filters, plan)
    (main, _locked) = list_statements(dialect, "shop-1")
    if dialect == "sqlite":
        assert "TEMP B-TREE" not in await explain(db, main)


async def test_edge_of_calendar_times_are_refused_not_internal_errors(db: ScratchDatabase) -> None:
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1)))
    early = datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    for cursor in (encode_cursor("newest", far, "c-1"), encode_cursor("newest", early, "c-1")):
        with pytest.raises(OrdersQueryRefused) as refused:
            await list_orders(db.session_factory, SHOP, after=cursor)
        assert refused.value.code == "invalid_cursor"
    with pytest.raises(OrdersQueryRefused) as out_of_range:
        await list_orders(db.session_factory, SHOP, since=early)
    assert out_of_range.value.code == "invalid_filter"


# --------------------------------------------------------------------------- the order phase


async def test_an_order_in_the_order_phase_shows_its_delivery_total_and_own_status_name(
    acts: CartActivities, db: ScratchDatabase
) -> None:
    """The list shows the order's total (lines and delivery cost), its delivery and what
    was paid less refunds; a status the registry no longer has keeps the name the order
    recorded."""
    from tests.test_order_phase import DEFAULTS
    from workflows.order_contract import OrderStatuses
    from workflows.order_events import (
        EditDelivery,
        OrderManaged,
        OrderStatusesRead,
        RecordPayment,
        SetOrderStatus,
    )
    from workflows.order_state import StatusDefinition

    cart = paid_order(SHOP, "phase-1", T0)
    steps: list[Any] = [
        OrderManaged(),
        OrderStatusesRead(DEFAULTS),
        SetOrderStatus(admin="ann", status="A", statuses=DEFAULTS),
        EditDelivery(admin="ann", changes={"method": "dhl", "cost": 500, "city": "Berlin"}),
        RecordPayment(admin="ann", kind="refund", amount=750, currency="EUR"),
    ]
    custom = OrderStatuses([*DEFAULTS.statuses, StatusDefinition("Q", "Quality check", "#123456")])
    steps.append(SetOrderStatus(admin="ann", status="Q", statuses=custom))
    for second, event in enumerate(steps, start=1):
        machine.apply(cart, event, T0 + timedelta(seconds=second))
    await project(acts, cart)
    [row] = (await list_orders(db.session_factory, SHOP)).rows
    assert (row.total, row.amount_paid) == (TOTAL + 500, TOTAL - 750)
    assert row.delivery is not None and row.delivery["method"] == "dhl"
    assert row.delivery["city"] == "Berlin" and row.delivery["cost"] == 500
    assert (row.status, row.status_name, row.status_colour) == ("Q", "Quality check", "#123456")
    assert row.payment_status == "partially_paid" and not row.fully_paid


# ---------------------------------------------------------------- not finished conditions


async def seed_payment_step(acts: CartActivities) -> dict[str, datetime]:
    """shop-1: a locked cart; a cart back at checkout after a failed payment; one at the
    checkout form without a payment; one at the gateway; an active cart (never listed)."""
    from workflows.contract import CheckoutStarted

    times = {name: T0 + timedelta(hours=n) for n, name in enumerate(["lk", "fail", "form", "gw"])}
    await project(acts, not_finished(SHOP, "lk", times["lk"], "ann@example.com"))
    failed = new_cart(SHOP, "fail", at=times["fail"])
    machine.apply(failed, CheckoutStarted(), times["fail"])
    for event in (
        PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", TOTAL),
        PaymentResultReported("att-1", PaymentStatus.FAILED, TOTAL, "EUR"),
    ):
        machine.apply(failed, event, times["fail"] + timedelta(minutes=1))
    assert failed.state is CartState.CHECKOUT and failed.payment_step_at == times["fail"]
    form = new_cart(SHOP, "form", at=times["form"] - timedelta(minutes=5))
    machine.apply(form, CheckoutStarted(), times["form"])
    gateway = new_cart(SHOP, "gw", at=times["gw"])
    machine.apply(
        gateway, PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", TOTAL), times["gw"]
    )
    assert gateway.state is CartState.PAYMENT_PENDING
    for cart in (failed, form, gateway, new_cart(SHOP, "active", at=T0)):
        await project(acts, cart)
    return times


@pytest.mark.parametrize(
    ("conditions", "listed"),
    [
        ((), []),
        (("no_return",), ["lk"]),
        (("payment_failed",), ["fail"]),
        (("payment_failed", "no_return"), ["fail", "lk"]),
        (("payment_step",), ["gw", "form", "fail"]),
        (("payment_step", "payment_failed", "no_return"), ["gw", "form", "fail", "lk"]),
    ],
)
async def test_the_shop_chooses_which_carts_are_not_finished_orders(
    db: ScratchDatabase, acts: CartActivities, conditions: tuple[str, ...], listed: list[str]
) -> None:
    times = await seed_payment_step(acts)
    page = await list_orders(db.session_factory, SHOP, not_finished_when=conditions)
    assert [row.cart_id for row in page.rows] == listed
    for row in page.rows:
        assert row.not_finished and row.number is None and row.status == "N"
        assert row.payment_status == "not_defined"
        assert row.created_at == times[row.cart_id] or row.cart_id == "lk"
    counts = await count_by_status(db.session_factory, SHOP, not_finished_when=conditions)
    assert counts[NOT_FINISHED] == len(listed)
    # a page at a time, oldest first: the same rows in the other order, none twice
    seen: list[str] = []
    after = None
    while True:
        page = await list_orders(
            db.session_factory,
            SHOP,
            not_finished_when=conditions,
            sort="oldest",
            limit=1,
            after=after,
        )
        seen += [row.cart_id for row in page.rows]
        after = page.next_cursor
        if after is None:
            break
    assert seen == listed[::-1]


async def test_unknown_not_finished_conditions_are_refused(db: ScratchDatabase) -> None:
    for conditions in (["no_reply"], "no_return"):
        with pytest.raises(OrdersQueryRefused) as refused:
            await list_orders(db.session_factory, SHOP, not_finished_when=conditions)  # type: ignore[arg-type]
        assert refused.value.code == "invalid_filter"


def test_the_last_payment_status_is_the_current_attempts() -> None:
    """A late result for an older attempt does not make a checkout cart "failed"."""
    from workflows.contract import CheckoutStarted

    cart = new_cart(SHOP, "late", at=T0)
    machine.apply(cart, CheckoutStarted(), T0)
    machine.apply(cart, PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", TOTAL), T0)
    machine.apply(cart, PaymentResultReported("att-1", PaymentStatus.FAILED, TOTAL, "EUR"), T0)
    machine.apply(cart, PaymentStarted("att-2", PaymentMethod.ONLINE, "stripe", TOTAL), T0)
    assert cart_values(cart, T0)["last_payment_status"] == "started"


async def test_the_client_takes_the_conditions_from_the_settings(tmp_path: Path) -> None:
    from activities.settings import Settings
    from starter.orders import OrdersClient

    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        shop_not_finished_when={"s1": ["payment_failed"]},
    )
    async with OrdersClient.connect(settings) as client:
        assert client._not_finished_when("s1") == ("payment_failed",)
        assert client._not_finished_when("s2") == ("no_return",)
