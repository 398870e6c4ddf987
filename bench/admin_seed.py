"""The admin part's read model (``bench/admin.py``): carts and orders written in bulk.

A few hundred template carts are built with the state machine (``workflows.machine``), as
``tests/test_orders_query.py`` builds them: active carts (with and without a customer),
abandoned ones, locked ones (the not finished orders: a payment started, no result) and
orders (paid, paid after a failed attempt, partially paid, confirmed by an admin), their
order status then set to the letters the order phase would set (``P``, ``O``, ``C``,
``B``, ``I``, ``D``). Each kind's templates are built at times spread evenly over a year.

Every row is a template's ``cart_values(...)`` with a distinct cart id, a shop (four,
of 60/25/10/5 %), a customer's address (drawn from ``customers`` addresses, skewed so
that some customers have many carts; a tenth written in capitals; a third of the active
carts anonymous) and its times moved by up to half the spacing of the templates (the
columns and the snapshot's top-level times; the journal inside the snapshot keeps the
template's times, at most half that spacing off: 4-5 days with 40 templates a kind).
Orders are numbered per shop in the order they were ordered, with an ``order_numbers``
row each and the shop's ``order_numbering`` counter.
Rows are written in time order, ``batch`` rows per ``INSERT`` (executemany), then
``ANALYZE`` (PostgreSQL: ``VACUUM ANALYZE``, as autovacuum would after such a load).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.models import CartRecord, OrderNumber, OrderNumbering
from activities.read_model import cart_values
from workflows import machine
from workflows.contract import (
    Cart,
    CartLine,
    CartPolicy,
    CartState,
    CartUpdated,
    CheckoutStarted,
    ConfirmCart,
    CustomerIdentified,
    CustomerInfo,
    PaymentMethod,
    PaymentResultReported,
    PaymentStarted,
    PaymentStatus,
)

POLICY = CartPolicy()
YEAR_START = datetime(2025, 12, 1, tzinfo=UTC)
YEAR = timedelta(days=365)
#: shop, share of the rows, order number prefix
SHOPS = (
    ("adm-main", 0.60, "WEB-"),
    ("adm-second", 0.25, ""),
    ("adm-third", 0.10, "T3-"),
    ("adm-fourth", 0.05, ""),
)
MAIN_SHOP = SHOPS[0][0]
#: the orders' status letters and their shares (the order phase would set them)
LETTERS = (("P", 45), ("C", 25), ("O", 15), ("B", 5), ("I", 5), ("D", 5))
#: the carts that are not orders: their kinds and shares
CART_KINDS = (
    ("active", 45),
    ("abandoned", 35),
    ("locked", 5),
    # at the payment step (not finished orders when the shop chooses so): at the checkout
    # form (half of them after a failed payment) and at the gateway
    ("checkout", 10),
    ("gateway", 5),
)
_TIME_COLUMNS = (
    "created_at",
    "updated_at",
    "last_activity_at",
    "locked_at",
    "abandoned_at",
    "ordered_at",
    "closed_at",
    "payment_step_at",
    "projected_at",
)
_LINEAGE = "bench-admin"


def _lines(rng: random.Random) -> list[CartLine]:
    skus = rng.sample(range(500), rng.randint(1, 4))  # a SKU once per cart
    return [
        CartLine(
            sku=f"sku-{sku}",
            name=f"Product {i}",
            quantity=rng.randint(1, 3),
            unit_price=rng.choice((450, 1_250, 2_990, 8_900)),
        )
        for i, sku in enumerate(skus)
    ]


def _new(rng: random.Random, at: datetime, email: str | None) -> Cart:
    cart = Cart(shop_id="tpl", cart_id="tpl", policy=POLICY, lineage=_LINEAGE)
    machine.apply(cart, CartUpdated(_lines(rng), "EUR", None), at)
    if rng.random() < 0.4:  # a second visit changes the cart
        machine.apply(cart, CartUpdated(_lines(rng), "EUR"), at + timedelta(minutes=3))
    if email is not None:
        info = CustomerInfo(email=email, name=rng.choice(("Ann Example", "Bo", None)))
        machine.apply(cart, CustomerIdentified(info), at + timedelta(minutes=5))
    return cart


def _template(kind: str, rng: random.Random, at: datetime) -> Cart:
    """One template cart of ``kind`` (``active``, ``abandoned``, ``locked``, ``checkout``,
    ``gateway``, a letter)."""
    email = "template@example.com"
    if kind == "active":
        return _new(rng, at, email if rng.random() < 0.67 else None)
    if kind == "abandoned":
        cart = _new(rng, at, email if rng.random() < 0.8 else None)
        machine.tick(cart, at + timedelta(seconds=POLICY.abandon_after_seconds + 400))
        return cart
    cart = _new(rng, at, email)
    pay_at = at + timedelta(minutes=8)
    if kind == "checkout":
        machine.apply(cart, CheckoutStarted(), pay_at)
        if rng.random() < 0.5:
            start = PaymentStarted("att-1", PaymentMethod.ONLINE, "paypal", cart.total)
            machine.apply(cart, start, pay_at + timedelta(minutes=1))
            failed = PaymentResultReported("att-1", PaymentStatus.FAILED, cart.total, "EUR")
            machine.apply(cart, failed, pay_at + timedelta(minutes=2))
        assert cart.state is CartState.CHECKOUT and cart.payment_step_at is not None
        return cart
    if kind == "gateway":
        start = PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", cart.total)
        machine.apply(cart, start, pay_at)
        assert cart.state is CartState.PAYMENT_PENDING
        return cart
    if kind == "locked":
        machine.apply(
            cart, PaymentStarted("att-1", PaymentMethod.ONLINE, "paypal", cart.total), pay_at
        )
        machine.tick(cart, pay_at + timedelta(seconds=POLICY.lock_after_seconds))
        assert cart.state is CartState.LOCKED
        return cart
    variant = rng.random()
    if variant < 0.1:  # locked, then an admin confirmed it as an open order
        machine.apply(
            cart, PaymentStarted("att-1", PaymentMethod.ONLINE, "paypal", cart.total), pay_at
        )
        machine.tick(cart, pay_at + timedelta(seconds=POLICY.lock_after_seconds))
        confirm_at = pay_at + timedelta(seconds=POLICY.lock_after_seconds + 600)
        machine.apply(cart, ConfirmCart(admin="ann", status="O"), confirm_at)
    else:
        amount = cart.total if variant > 0.2 else cart.total // 3  # partially paid: O
        number = 1
        if rng.random() < 0.3:  # a failed attempt first
            machine.apply(
                cart, PaymentStarted("att-1", PaymentMethod.ONLINE, "paypal", cart.total), pay_at
            )
            failed = PaymentResultReported("att-1", PaymentStatus.FAILED, cart.total, "EUR")
            machine.apply(cart, failed, pay_at + timedelta(minutes=1))
            number = 2
        gateway = rng.choice(("stripe", "paypal", "adyen"))
        attempt = f"att-{number}"
        at2 = pay_at + timedelta(minutes=2)
        machine.apply(cart, PaymentStarted(attempt, PaymentMethod.ONLINE, gateway, amount), at2)
        result = PaymentResultReported(attempt, PaymentStatus.SUCCEEDED, amount, "EUR")
        machine.apply(cart, result, at2 + timedelta(minutes=1))
    assert cart.state is CartState.ORDERED and cart.order is not None
    cart.order.status = kind
    return cart


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...], n: int) -> list[str]:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table], k=n)


@dataclass
class Template:
    kind: str
    #: ``cart_values`` of the template (shop, cart and customer replaced per row)
    values: dict[str, Any]


@dataclass
class Seed:
    """What was written: the plan of every row, enough to draw the queries' parameters."""

    templates: list[Template]
    #: per row: (template index, time shift s, shop index, customer index or -1, capitals)
    rows: list[tuple[int, float, int, int, bool]]
    cart_ids: list[str]
    #: per order row: its number (0 for the other rows)
    numbers: list[int]
    customers: int
    #: per shop: its order numbers given
    orders_per_shop: dict[str, int] = field(default_factory=dict)

    def email(self, customer: int, capitals: bool = False) -> str:
        address = f"customer{customer:05d}@example{customer % 7}.com"
        return address.upper() if capitals else address

    def when(self, row: int, column: str) -> datetime | None:
        template, shift, *_ = self.rows[row]
        base = self.templates[template].values[column]
        return base + timedelta(seconds=shift) if base is not None else None

    def kind(self, row: int) -> str:
        return self.templates[self.rows[row][0]].kind

    def shop(self, row: int) -> str:
        return SHOPS[self.rows[row][2]][0]


def plan_seed(
    carts: int, orders: int, customers: int, templates_per_kind: int, seed: int = 14
) -> Seed:
    """The templates and every row's plan (nothing written yet)."""
    rng = random.Random(seed)
    kinds = [k for k, _ in CART_KINDS] + [k for k, _ in LETTERS]
    pools: dict[str, list[int]] = {}
    templates: list[Template] = []
    spacing = YEAR / templates_per_kind
    for kind in kinds:
        pools[kind] = []
        for j in range(templates_per_kind):
            at = YEAR_START + spacing * (j + 0.5) - timedelta(hours=1)
            cart = _template(kind, rng, at)
            pools[kind].append(len(templates))
            templates.append(Template(kind, cart_values(cart, at)))
    half = spacing.total_seconds() / 2
    shop_weights = [share for _, share, _ in SHOPS]
    row_kinds = _weighted(rng, CART_KINDS, carts) + _weighted(rng, LETTERS, orders)
    rows: list[tuple[int, float, int, int, bool]] = []
    for kind in row_kinds:
        template = rng.choice(pools[kind])
        shop = rng.choices(range(len(SHOPS)), weights=shop_weights)[0]
        anonymous = templates[template].values["customer_email"] is None
        customer = -1 if anonymous else int(customers * rng.random() ** 2)
        rows.append((template, rng.uniform(-half, half), shop, customer, rng.random() < 0.1))
    rows.sort(key=lambda r: templates[r[0]].values["created_at"] + timedelta(seconds=r[1]))
    cart_ids = [f"cart-{rng.getrandbits(40):010x}-{i}" for i in range(len(rows))]
    plan = Seed(templates, rows, cart_ids, [0] * len(rows), customers)
    _number_orders(plan)
    return plan


def _number_orders(plan: Seed) -> None:
    """Per shop, in the order they were ordered: 1, 2, 3 ..."""
    orders = [i for i in range(len(plan.rows)) if plan.kind(i) not in dict(CART_KINDS)]
    orders.sort(key=lambda i: (plan.when(i, "ordered_at"), plan.cart_ids[i]))
    for i in orders:
        shop = plan.shop(i)
        plan.orders_per_shop[shop] = plan.numbers[i] = plan.orders_per_shop.get(shop, 0) + 1


def _row(plan: Seed, i: int) -> dict[str, Any]:
    template, shift, shop_index, customer, capitals = plan.rows[i]
    values = dict(plan.templates[template].values)
    shop, cart_id = SHOPS[shop_index][0], plan.cart_ids[i]
    snapshot = dict(values["snapshot"])
    delta = timedelta(seconds=shift)
    for column in _TIME_COLUMNS:
        if values[column] is not None:
            values[column] += delta
            if column in snapshot:
                snapshot[column] = values[column].isoformat()
    values.update(shop_id=shop, cart_id=cart_id)
    snapshot.update(shop_id=shop, cart_id=cart_id)
    if customer >= 0:
        email = plan.email(customer, capitals)
        values["customer_email"] = email
        snapshot["customer"] = {**snapshot["customer"], "email": email}
    if plan.numbers[i]:
        values["order_number"] = plan.numbers[i]
        snapshot["order"] = {**snapshot["order"], "number": plan.numbers[i]}
    values["snapshot"] = snapshot
    return values


def _number_row(plan: Seed, i: int) -> dict[str, Any]:
    prefix = SHOPS[plan.rows[i][2]][2]
    return {
        "shop_id": plan.shop(i),
        "number": plan.numbers[i],
        "cart_id": plan.cart_ids[i],
        "lineage": _LINEAGE,
        "reference": f"{prefix}{plan.numbers[i]}",
        "created_at": plan.when(i, "ordered_at"),
    }


async def write_seed(engine: AsyncEngine, plan: Seed, batch: int) -> dict[str, Any]:
    """Write every row of ``plan`` (the schema is migrated); timings in seconds."""
    started = time.perf_counter()
    carts, numbers = insert(CartRecord), insert(OrderNumber)
    build_s = 0.0
    for first in range(0, len(plan.rows), batch):
        built = time.perf_counter()
        chunk = range(first, min(first + batch, len(plan.rows)))
        rows = [_row(plan, i) for i in chunk]
        number_rows = [_number_row(plan, i) for i in chunk if plan.numbers[i]]
        build_s += time.perf_counter() - built
        async with engine.begin() as connection:
            await connection.execute(carts, rows)
            if number_rows:
                await connection.execute(numbers, number_rows)
    counters = [
        {"shop_id": shop, "prefix": prefix, "next_number": plan.orders_per_shop.get(shop, 0) + 1}
        for shop, _share, prefix in SHOPS
    ]
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await connection.execute(
            insert(OrderNumbering), [{**c, "updated_at": now} for c in counters]
        )
    inserted = time.perf_counter()
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE"))
    else:
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    done = time.perf_counter()
    return {
        "rows": len(plan.rows),
        "orders": sum(1 for n in plan.numbers if n),
        "batch": batch,
        "insert_s": round(inserted - started, 1),
        "of_which_building_rows_s": round(build_s, 1),
        "analyze_s": round(done - inserted, 1),
        "seed_s": round(done - started, 1),
        "rows_per_s": round(len(plan.rows) / (inserted - started)),
    }
