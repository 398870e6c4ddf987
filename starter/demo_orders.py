"""The order part of ``make run``'s demo: once the demo carts have settled, an admin
("demo-admin") takes a few of their orders through the shop's statuses, so that a new user
finds orders with a history in ``cartkeeper orders list``, status e-mails in the mail
catcher and the steps in the Temporal UI.

- ``prepare_stock`` (before the demo carts): the demo SKUs get a stock level (100; a level
  that ran low is topped up), so the orders' statuses move stock that shows;
- ``order_demo`` (after them), each step an update the workflow must accept:

  - ``shipped``: a paid order (P) -> A (Awaiting) -> the customer pays the courier's
    cost, the delivery gets the shop's shipping method (one is added if the shop has
    none in the order's currency) and its address -> R (Preparing shipment) -> a
    tracking code -> S (Shipped) -> V (Delivered, final). Its stock is taken once;
  - ``paid_later``: an offline (Open) order gets a partial payment, then the rest: the
    system sets P (Processed) once the payments cover it;
  - ``cancelled``: a paid order -> I (Cancelled, final): its stock is given back, then its
    payment is refunded;
  - ``not_finished``: a locked cart (a not finished order) gets status O (Open): it becomes
    an order and gets its number.

  It then waits until the orders' stock moves and e-mails are done and they have their
  numbers (``render_order_demo`` prints what happened and how to see it).

A step the workflow refuses stops that order's story: ``DemoOrder.error`` names the call
and the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from starter.catalog import CatalogClient, ShippingMethod, ShippingMethodRefused, StockRefused
from starter.client import CartkeeperClient, CartkeeperError
from starter.output import format_money, indent, table
from starter.simulate import PRODUCTS, Out, SimCart, Simulation
from workflows.codes import CartState, ErrorCode
from workflows.order_contract import REFUND_KIND
from workflows.order_phase import effects_pending
from workflows.order_state import MOVE_DONE, STOCK_GIVE_BACK, STOCK_TAKE
from workflows.state import Cart, CartView

#: who the demo's steps are by
DEMO_ADMIN = "demo-admin"
#: the demo SKUs' stock level (set when a SKU is not tracked or has fewer than
#: ``RESTOCK_BELOW`` left)
DEMO_STOCK = 100
RESTOCK_BELOW = 20
#: the courier the demo adds when the shop has no method in an order's currency
COURIER_COST = {"EUR": 490, "USD": 590}

#: what may stop the demo (the caller reports it; the rest of ``make run`` goes on)
DEMO_FAILURES = (CartkeeperError, ShippingMethodRefused, StockRefused, SQLAlchemyError)

SHIPPED, PAID_LATER, CANCELLED, NOT_FINISHED = "shipped", "paid_later", "cancelled", "not_finished"
ROLES = (SHIPPED, PAID_LATER, CANCELLED, NOT_FINISHED)
#: the status each story ends in
EXPECTED = {SHIPPED: "V", PAID_LATER: "P", CANCELLED: "I", NOT_FINISHED: "O"}
_WHAT = {
    SHIPPED: "a paid order",
    PAID_LATER: "an offline (Open) order",
    CANCELLED: "a second paid order",
    NOT_FINISHED: "a locked cart",
}
#: country and city of a customer's delivery, by the customer's time zone
_PLACES = {
    "Europe/Berlin": ("DE", "Berlin", "10115"),
    "Europe/Rome": ("IT", "Rome", "00184"),
    "America/New_York": ("US", "New York", "10001"),
    "America/Chicago": ("US", "Chicago", "60601"),
    "Europe/Paris": ("FR", "Paris", "75001"),
    "Europe/Amsterdam": ("NL", "Amsterdam", "1012 AB"),
    "Europe/Madrid": ("ES", "Madrid", "28001"),
    "Europe/London": ("GB", "London", "SW1A 1AA"),
    "Europe/Prague": ("CZ", "Prague", "110 00"),
    "Europe/Dublin": ("IE", "Dublin", "D02 X285"),
    "Asia/Tokyo": ("JP", "Tokyo", "100-0001"),
    "America/Los_Angeles": ("US", "Los Angeles", "90012"),
}


# --------------------------------------------------------------------------- results


@dataclass
class DemoOrder:
    """One order the demo moves: the steps the workflow accepted, and the cart after."""

    role: str
    cart_id: str
    scenario: str
    #: the steps done, as printed
    steps: list[str] = field(default_factory=list)
    #: the call the workflow refused and its answer (the story stopped there)
    error: str | None = None
    cart: Cart | None = None

    @property
    def expected(self) -> str:
        return EXPECTED[self.role]

    @property
    def number(self) -> int | None:
        return self.cart.order.number if self.cart and self.cart.order else None

    @property
    def status(self) -> str | None:
        return self.cart.order.status if self.cart and self.cart.order else None

    @property
    def history(self) -> list[tuple[str, str]]:
        """The statuses the order entered: (letter, by whom)."""
        if self.cart is None or self.cart.order is None:
            return []
        return [(entry.letter, entry.by) for entry in self.cart.order.statuses]

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.status == self.expected
            and self.number is not None
            and self.cart is not None
            and not effects_pending(self.cart)
        )


@dataclass
class OrderDemo:
    shop_id: str
    admin: str
    orders: list[DemoOrder] = field(default_factory=list)
    #: the roles no demo cart could play (too few carts)
    missing: list[str] = field(default_factory=list)
    #: the demo SKUs' levels before the demo carts (``prepare_stock``)
    stock_before: dict[str, int] = field(default_factory=dict)
    #: the levels afterwards of the SKUs the moved orders hold or held
    stock_after: dict[str, int | None] = field(default_factory=dict)
    method: ShippingMethod | None = None
    timed_out: bool = False
    seconds: float = 0.0

    def order(self, role: str) -> DemoOrder | None:
        return next((o for o in self.orders if o.role == role), None)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.timed_out and all(o.ok for o in self.orders)


# --------------------------------------------------------------------------- preparing


async def prepare_stock(catalog: CatalogClient, shop_id: str) -> dict[str, int]:
    """Give the demo SKUs a stock level (``DEMO_STOCK``) where they have none or fewer
    than ``RESTOCK_BELOW``; the levels as they are then."""
    levels: dict[str, int] = {}
    for sku, _name, _price in PRODUCTS:
        level = await catalog.stock_level(shop_id, sku)
        if level is None or level.level < RESTOCK_BELOW:
            level = await catalog.set_stock(shop_id, sku, DEMO_STOCK)
        levels[sku] = level.level
    return levels


async def shipping_method(catalog: CatalogClient, shop_id: str, currency: str) -> ShippingMethod:
    """The shop's first enabled method priced in ``currency``; a courier is added if it
    has none."""
    for method in await catalog.shipping_methods(shop_id, enabled_only=True):
        if method.currency == currency:
            return method
    return await catalog.add_shipping_method(
        shop_id,
        f"courier-{currency.lower()}",
        name=f"Courier ({currency})",
        cost=COURIER_COST.get(currency, 500),
        currency=currency,
    )


# --------------------------------------------------------------------------- picking


def pick(result: Simulation) -> dict[str, SimCart]:
    """The demo carts each story plays on (a role without one is left out)."""
    used: set[str] = set()
    picked: dict[str, SimCart] = {}

    def first(role: str, fits: Callable[[Cart], bool], prefer: Sequence[str]) -> None:
        found = [
            sim
            for sim in result.carts
            if sim.cart_id not in used and sim.error is None and sim.cart and fits(sim.cart)
        ]
        found.sort(key=lambda s: prefer.index(s.scenario.name) if s.scenario.name in prefer else 99)
        if found:
            picked[role] = found[0]
            used.add(found[0].cart_id)

    def order_in(status: str) -> Callable[[Cart], bool]:
        def fits(cart: Cart) -> bool:
            order = cart.order
            return (
                cart.state is CartState.ORDERED
                and order is not None
                and order.status == status
                and order.currency is not None
                and not order.final
            )

        return fits

    first(SHIPPED, order_in("P"), ("paid_online", "retry", "confirmed"))
    first(
        PAID_LATER,
        lambda c: order_in("O")(c) and c.order is not None and c.order.amount_paid == 0,
        ("offline",),
    )
    first(CANCELLED, order_in("P"), ("retry", "confirmed", "paid_online"))
    first(
        NOT_FINISHED,
        lambda c: c.state is CartState.LOCKED and bool(c.lines),
        ("pending", "silent_gateway"),
    )
    return picked


# --------------------------------------------------------------------------- the stories


class _Refused(Exception):
    pass


@dataclass
class _Story:
    carts: CartkeeperClient
    catalog: CatalogClient
    shop_id: str
    admin: str
    order: DemoOrder
    within: float
    demo: OrderDemo

    async def step(self, label: str, call: str, action: Awaitable[CartView]) -> CartView:
        """One update; a refusal stops the story (``error``: the call and the answer)."""
        try:
            view = await action
        except CartkeeperError as error:
            if error.code is ErrorCode.TEMPORAL_UNAVAILABLE:
                raise
            self.order.error = f"{call} was refused: {error}"
            raise _Refused from None
        self.order.steps.append(label)
        return view

    async def status(self, letter: str, label: str, note: str | None = None) -> CartView:
        call = f"set_order_status({self.shop_id!r}, {self.order.cart_id!r}, {letter!r})"
        return await self.step(
            label,
            call,
            self.carts.set_order_status(
                self.shop_id, self.order.cart_id, letter, admin=self.admin, note=note
            ),
        )

    async def settled(self, done: Callable[[Cart], bool] = lambda _c: True) -> Cart:
        """The cart once ``done`` and its order's effects are (or at the timeout)."""
        return await until(
            self.carts,
            self.shop_id,
            self.order.cart_id,
            lambda c: c.order is not None and not effects_pending(c) and done(c),
            self.within,
        )

    async def play(self) -> None:
        play = {
            SHIPPED: self.shipped,
            PAID_LATER: self.paid_later,
            CANCELLED: self.cancelled,
            NOT_FINISHED: self.not_finished,
        }[self.order.role]
        with contextlib.suppress(_Refused):
            await play()

        def done(cart: Cart) -> bool:
            order = cart.order
            return (
                order is not None
                and order.number is not None
                and order.status == self.order.expected
            )

        self.order.cart = await self.settled(done)

    async def shipped(self) -> None:
        cart = await self.settled()
        order = cart.order
        assert order is not None and order.currency is not None
        currency = order.currency
        method = self.demo.method = await shipping_method(self.catalog, self.shop_id, currency)
        await self.status("A", "A Awaiting", note="waiting for the customer's choice of delivery")
        cart_id = self.order.cart_id
        if method.cost:
            await self.step(
                f"{format_money(method.cost, currency)} paid for {method.name}",
                f"record_payment({self.shop_id!r}, {cart_id!r}, amount={method.cost})",
                self.carts.record_payment(
                    self.shop_id,
                    cart_id,
                    admin=self.admin,
                    amount=method.cost,
                    currency=currency,
                    reference="courier, paid by card on the phone",
                ),
            )
        customer = cart.customer
        country, city, postal_code = _PLACES.get(
            (customer.time_zone if customer else None) or "", ("DE", "Berlin", "10115")
        )
        await self.step(
            f"delivery {method.method_id}",
            f"edit_delivery({self.shop_id!r}, {cart_id!r}, method={method.method_id!r})",
            self.carts.edit_delivery(
                self.shop_id,
                cart_id,
                admin=self.admin,
                method=method.method_id,
                cost=method.cost,
                recipient_name=customer.name if customer and customer.name else "Demo Customer",
                country=country,
                city=city,
                postal_code=postal_code,
                address="1 Demo Street",
            ),
        )
        await self.status("R", "R Preparing shipment", note="packing")
        tracking = f"DM{zlib.crc32(cart_id.encode()):010d}"
        await self.step(
            f"tracking {tracking}",
            f"edit_delivery({self.shop_id!r}, {cart_id!r}, tracking_code={tracking!r})",
            self.carts.edit_delivery(
                self.shop_id, cart_id, admin=self.admin, tracking_code=tracking
            ),
        )
        await self.status("S", "S Shipped", note="handed to the courier")
        await self.status("V", "V Delivered", note="the courier confirmed the delivery")

    async def paid_later(self) -> None:
        cart = await self.settled()
        order = cart.order
        assert order is not None and order.currency is not None
        total, currency = order.total, order.currency
        part = total // 2 // 100 * 100 or total // 2  # a round part, if it can be
        for amount, reference in ((part, "bank transfer 1 of 2"), (total - part, "bank 2 of 2")):
            if amount <= 0:
                continue
            await self.step(
                f"{format_money(amount, currency)} paid",
                f"record_payment({self.shop_id!r}, {self.order.cart_id!r}, amount={amount})",
                self.carts.record_payment(
                    self.shop_id,
                    self.order.cart_id,
                    admin=self.admin,
                    amount=amount,
                    currency=currency,
                    reference=reference,
                ),
            )
        cart = await self.settled(lambda c: c.order is not None and c.order.status == "P")
        if cart.order is not None and cart.order.status == "P":
            self.order.steps.append("P Processed, set by the system")

    async def cancelled(self) -> None:
        cart = await self.settled()
        await self.status("I", "I Cancelled", note="the customer asked to cancel")
        order = cart.order
        assert order is not None and order.currency is not None
        if order.amount_paid > 0:
            await self.step(
                f"{format_money(order.amount_paid, order.currency)} refunded",
                f"record_payment({self.shop_id!r}, {self.order.cart_id!r}, kind='refund',"
                f" amount={order.amount_paid})",
                self.carts.record_payment(
                    self.shop_id,
                    self.order.cart_id,
                    admin=self.admin,
                    kind=REFUND_KIND,
                    amount=order.amount_paid,
                    currency=order.currency,
                    reference="refund to the card",
                ),
            )

    async def not_finished(self) -> None:
        await self.status(
            "O", "O Open", note="the customer will pay by bank transfer: taking the order"
        )


async def until(
    carts: CartkeeperClient,
    shop_id: str,
    cart_id: str,
    done: Callable[[Cart], bool],
    within: float,
) -> Cart:
    """The cart once ``done`` (or as it is after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while True:
        cart = await carts.get_cart(shop_id, cart_id)
        if done(cart) or time.monotonic() >= deadline:
            return cart
        await asyncio.sleep(0.5)


async def order_demo(
    carts: CartkeeperClient,
    catalog: CatalogClient,
    result: Simulation,
    *,
    admin: str = DEMO_ADMIN,
    stock_before: dict[str, int] | None = None,
    within: float = 60,
    out: Out = print,
) -> OrderDemo:
    """Take the demo's orders through statuses (see the module's doc)."""
    shop_id = result.shop_id
    demo = OrderDemo(shop_id, admin, stock_before=dict(stock_before or {}))
    started = time.monotonic()
    picked = pick(result)
    demo.missing = [role for role in ROLES if role not in picked]
    demo.orders = [
        DemoOrder(role, picked[role].cart_id, picked[role].scenario.name)
        for role in ROLES
        if role in picked
    ]
    if not demo.orders:
        return demo
    out(
        f"orders demo: {admin} takes {len(demo.orders)} of the demo's orders through statuses"
        " (shipped, paid later, cancelled, a locked cart's order) ..."
    )
    stories = [_Story(carts, catalog, shop_id, admin, o, within, demo) for o in demo.orders]
    await asyncio.gather(*(story.play() for story in stories))
    demo.timed_out = any(o.error is None and not o.ok for o in demo.orders)
    skus = sorted({line.sku for o in demo.orders if o.cart is not None for line in o.cart.lines})
    for sku in skus:
        level = await catalog.stock_level(shop_id, sku)
        demo.stock_after[sku] = level.level if level is not None else None
    demo.seconds = time.monotonic() - started
    return demo


# --------------------------------------------------------------------------- the summary


def _history(order: DemoOrder) -> str:
    letters = [letter for letter, _by in order.history]
    if order.role == NOT_FINISHED:
        letters = ["locked", *letters]
    return " > ".join(letters) or "-"


def _stock(cart: Cart) -> str:
    if cart.order is None:
        return ""
    moves = []
    for move in cart.order.stock_moves:
        if move.outcome != MOVE_DONE:
            moves.append(f"{move.kind} {move.outcome}")
            continue
        verb = {STOCK_TAKE: "took", STOCK_GIVE_BACK: "gave back"}.get(move.kind, move.kind)
        moves.append(f"{verb} {', '.join(f'{ln.sku} x{ln.quantity}' for ln in move.lines)}")
    return "; ".join(moves) or "no stock moved"


def _level(level: int | None) -> str:
    return "untracked" if level is None else str(level)


def _detail(order: DemoOrder) -> str:
    cart = order.cart
    if cart is None or cart.order is None:
        return ""
    placed = cart.order
    parts = []
    if order.role == SHIPPED and placed.delivery is not None:
        delivery = placed.delivery
        parts.append(
            f"delivery {delivery.method} {format_money(delivery.cost, placed.currency)},"
            f" tracking {delivery.tracking_code}"
        )
    elif order.role == PAID_LATER:
        parts.append(
            f"paid {format_money(placed.amount_paid, placed.currency)} in two bank transfers"
        )
    elif order.role == CANCELLED:
        refunded = sum(p.succeeded_amount or 0 for p in cart.payments if p.refund)
        parts.append(f"{format_money(refunded, placed.currency)} refunded")
    elif order.role == NOT_FINISHED:
        parts.append("got its number")
    parts.append(_stock(cart))
    return "; ".join(parts)


def render_order_demo(
    demo: OrderDemo,
    *,
    cli: str = "cartkeeper",
    mail: str | None = None,
    ui: str | None = None,
) -> str:
    """What the orders demo did, and the commands to see it (``mail``: where the status
    e-mails are kept, ``ui``: the Temporal UI's page of the orders)."""
    shop_arg = f" --shop {demo.shop_id}" if demo.shop_id != "demo" else ""
    lines = [f"orders moved by {demo.admin} (shop {demo.shop_id!r}):"]
    if not demo.orders:
        lines.append("  none: no demo cart ended as an order or a locked cart")
    rows = []
    for order in demo.orders:
        now = "-"
        if order.cart is not None and order.cart.order is not None:
            placed = order.cart.order
            now = f"{placed.status} {placed.status_name or ''}".strip()
        number = f"#{order.number}" if order.number is not None else "-"
        rows.append([number, order.cart_id, _history(order), now, _detail(order)])
    if rows:
        lines.append(indent(table(["ORDER", "CART", "STATUSES", "NOW", "DETAIL"], rows)))
    for order in demo.orders:
        if order.error is not None:
            lines.append(f"  {order.role} ({order.cart_id}) stopped: {order.error}")
        elif not order.ok:
            lines.append(
                f"  {order.role} ({order.cart_id}): not settled yet (status {order.status},"
                f" expected {order.expected})"
            )
    for role in demo.missing:
        lines.append(f"  no {role} order: no demo cart was {_WHAT[role]} (more --carts?)")
    if demo.stock_after:
        levels = ", ".join(
            f"{sku} {_level(demo.stock_before.get(sku))} -> {_level(level)}"
            for sku, level in demo.stock_after.items()
        )
        lines.append(f"  stock, before the demo carts -> now: {levels}")
    mails = [m for o in demo.orders if o.cart and o.cart.order for m in o.cart.order.mails]
    if mails:
        sent = sum(m.outcome == "sent" for m in mails)
        unsent = f", {len(mails) - sent} not (yet)" if sent < len(mails) else ""
        lines.append(f"  status e-mails of these orders: {sent} sent{unsent}")
    numbers = [o.number for o in demo.orders if o.number is not None]
    lines += ["", "See them:", f"  {cli} orders list{shop_arg}"]
    if numbers:
        others = f" (also {', '.join(map(str, numbers[1:]))})" if len(numbers) > 1 else ""
        lines.append(
            f"  {cli} orders show {numbers[0]}{shop_arg}"
            f"    # statuses, delivery, payments, stock moves, e-mails{others}"
        )
    lines.append(f"  {cli} stock list{shop_arg}")
    if mail is not None:
        lines.append(f"  {cli} mail list    # the status e-mails, kept in {mail}")
    if ui is not None and demo.orders:
        lines.append(f"  the Temporal UI, these orders' workflows: {ui}")
    return "\n".join(lines)


def workflow_query(demo: OrderDemo) -> str:
    """A Temporal visibility query for the moved orders' workflows."""
    from workflows.contract import workflow_id

    ids = ", ".join(f'"{workflow_id(demo.shop_id, o.cart_id)}"' for o in demo.orders)
    return f"WorkflowId IN ({ids})"


__all__ = [
    "CANCELLED",
    "DEMO_ADMIN",
    "DEMO_FAILURES",
    "DEMO_STOCK",
    "EXPECTED",
    "NOT_FINISHED",
    "PAID_LATER",
    "ROLES",
    "SHIPPED",
    "DemoOrder",
    "OrderDemo",
    "order_demo",
    "pick",
    "prepare_stock",
    "render_order_demo",
    "shipping_method",
    "until",
    "workflow_query",
]
