"""Demo storefront traffic: carts that end in every state, through ``CartkeeperClient``.

``simulate(...)`` plays one scenario per cart (browsing, checking out, paying online or
offline, failing and retrying, a pending payment, a gateway that never answers, an admin
deleting or confirming a cart) with short timer policies, so that within about a minute
there are carts that are active, in checkout, waiting for a payment, locked, abandoned,
ordered, expired and deleted. It then waits until the timers have fired and reports how
many carts are in each state, as the workflows themselves say.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client

from starter.client import CartkeeperClient, CartkeeperError
from starter.output import format_money, indent, table
from workflows.contract import (
    Cart,
    CartLine,
    CartPolicy,
    CartState,
    CartView,
    CustomerInfo,
    ErrorCode,
    PaymentMethod,
    PaymentStatus,
)

Out = Callable[[str], None]

# --------------------------------------------------------------------------- demo data

#: (sku, name, price in minor units)
PRODUCTS: tuple[tuple[str, str, int], ...] = (
    ("tea-earl-grey", "Earl Grey tea, 100 g", 650),
    ("tea-sencha", "Japanese sencha, 80 g", 1290),
    ("coffee-ethiopia", "Ethiopian coffee beans, 250 g", 1150),
    ("coffee-colombia", "Colombian coffee beans, 1 kg", 3490),
    ("mug-stoneware", "Stoneware mug, 350 ml", 1400),
    ("teapot-glass", "Glass teapot, 1 l", 2900),
    ("kettle-gooseneck", "Gooseneck kettle", 5900),
    ("grinder-hand", "Hand coffee grinder", 5400),
    ("filters-100", "Paper filters, 100 pcs", 450),
    ("honey-acacia", "Acacia honey, 500 g", 890),
    ("scale-digital", "Digital brewing scale", 2490),
    ("gift-card-25", "Gift card", 2500),
)

#: (first name, last name, locale, time zone)
CUSTOMERS: tuple[tuple[str, str, str, str], ...] = (
    ("Anna", "Schmidt", "de-DE", "Europe/Berlin"),
    ("Luca", "Rossi", "it-IT", "Europe/Rome"),
    ("Emma", "Johnson", "en-US", "America/New_York"),
    ("Noah", "Williams", "en-US", "America/Chicago"),
    ("Chloé", "Martin", "fr-FR", "Europe/Paris"),
    ("Jan", "de Vries", "nl-NL", "Europe/Amsterdam"),
    ("Sofia", "García", "es-ES", "Europe/Madrid"),
    ("Oliver", "Brown", "en-GB", "Europe/London"),
    ("Mia", "Novak", "cs-CZ", "Europe/Prague"),
    ("Liam", "Murphy", "en-IE", "Europe/Dublin"),
    ("Aiko", "Tanaka", "ja-JP", "Asia/Tokyo"),
    ("Maya", "Cohen", "en-US", "America/Los_Angeles"),
)

ONLINE_GATEWAYS = ("stripe", "paypal", "adyen")
OFFLINE_GATEWAYS = ("bank_transfer", "cash_on_delivery")
PAGES = ("/", "/tea", "/coffee", "/equipment", "/cart", "/gifts")
ADMIN = "simulate"


# --------------------------------------------------------------------------- timings


@dataclass(frozen=True)
class DemoTimings:
    """The short timers of the demo carts that must change state during the simulation."""

    abandon_seconds: int = 20
    lock_seconds: int = 10
    lifetime_seconds: int = 60
    retire_seconds: int = 3600
    projection_seconds: float = 0.5

    @classmethod
    def scaled(cls, speed: float) -> DemoTimings:
        """The default timings divided by ``speed`` (at least one second each)."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        base = cls()

        def scale(seconds: int) -> int:
            return max(1, round(seconds / speed))

        return cls(
            abandon_seconds=scale(base.abandon_seconds),
            lock_seconds=scale(base.lock_seconds),
            lifetime_seconds=max(scale(base.lifetime_seconds), scale(base.abandon_seconds) + 2),
        )

    def policies(self) -> dict[str, CartPolicy]:
        """``relaxed`` carts stay as they are for a while (15 min), ``quick`` carts abandon
        and lock within seconds, ``short_lived`` carts also expire."""
        common: dict[str, Any] = {
            "retire_after_seconds": self.retire_seconds,
            "projection_interval_seconds": self.projection_seconds,
        }
        return {
            "relaxed": CartPolicy(
                abandon_after_seconds=15 * 60,
                lock_after_seconds=15 * 60,
                lifetime_seconds=2 * 60 * 60,
                **common,
            ),
            "quick": CartPolicy(
                abandon_after_seconds=self.abandon_seconds,
                lock_after_seconds=self.lock_seconds,
                lifetime_seconds=2 * 60 * 60,
                **common,
            ),
            "short_lived": CartPolicy(
                abandon_after_seconds=self.abandon_seconds,
                lock_after_seconds=self.lock_seconds,
                lifetime_seconds=self.lifetime_seconds,
                **common,
            ),
        }


# --------------------------------------------------------------------------- scenarios


@dataclass
class Shopper:
    """One demo cart's data and the clients (one per policy) that drive it."""

    shop_id: str
    cart_id: str
    rng: random.Random
    clients: dict[str, CartkeeperClient]
    currency: str
    lines: list[CartLine]
    customer: CustomerInfo

    @property
    def total(self) -> int:
        return sum(line.subtotal for line in self.lines)

    def card(self) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(4))

    async def fill(self, policy: str = "relaxed") -> CartView:
        carts = self.clients[policy]
        await carts.record_visit(self.shop_id, self.cart_id, self.rng.choice(PAGES))
        # Add the items one by one, the way a customer does.
        for count in range(1, len(self.lines) + 1):
            cart = await carts.update_cart(
                self.shop_id, self.cart_id, self.lines[:count], self.currency
            )
        return cart

    async def identify(self) -> CartView:
        return await self.clients["relaxed"].identify_customer(
            self.shop_id, self.cart_id, self.customer
        )

    async def checkout(self, policy: str = "relaxed") -> CartView:
        await self.fill(policy)
        await self.identify()
        return await self.clients[policy].start_checkout(self.shop_id, self.cart_id)

    async def pay(self, attempt: int, method: PaymentMethod = PaymentMethod.ONLINE) -> str:
        attempt_id = f"pay-{self.cart_id}-{attempt}"
        gateways = ONLINE_GATEWAYS if method is PaymentMethod.ONLINE else OFFLINE_GATEWAYS
        await self.clients["relaxed"].start_payment(
            self.shop_id,
            self.cart_id,
            attempt_id=attempt_id,
            method=method,
            gateway=self.rng.choice(gateways),
            amount=self.total,
            currency=self.currency,
        )
        return attempt_id

    async def result(self, attempt_id: str, status: PaymentStatus) -> CartView:
        await self.clients["relaxed"].report_payment_result(
            self.shop_id,
            self.cart_id,
            attempt_id=attempt_id,
            status=status,
            amount=self.total,
            currency=self.currency,
            card_last4=self.card(),
        )
        # Back from the gateway: the cart once it left payment (or has its order number).
        return await self.clients["relaxed"].await_order(
            self.shop_id, self.cart_id, timeout_seconds=10
        )


async def browsing(s: Shopper) -> None:
    await s.fill()
    await s.clients["relaxed"].record_visit(s.shop_id, s.cart_id, s.rng.choice(PAGES))


async def in_checkout(s: Shopper) -> None:
    await s.checkout()


async def paying(s: Shopper) -> None:
    await s.checkout()
    await s.pay(1)


async def payment_pending_result(s: Shopper) -> None:
    await s.checkout()
    await s.result(await s.pay(1), PaymentStatus.PENDING)


async def gateway_silent(s: Shopper) -> None:
    await s.checkout("quick")
    await s.pay(1)  # no result ever comes: the cart locks after the lock timer


async def walks_away(s: Shopper) -> None:
    await s.fill("quick")


async def paid_online(s: Shopper) -> None:
    await s.checkout()
    await s.result(await s.pay(1), PaymentStatus.SUCCEEDED)


async def pays_offline(s: Shopper) -> None:
    await s.checkout()
    await s.pay(1, PaymentMethod.OFFLINE)
    await s.clients["relaxed"].await_order(s.shop_id, s.cart_id, timeout_seconds=10)


async def never_returns(s: Shopper) -> None:
    await s.fill("short_lived")


async def deleted_by_admin(s: Shopper) -> None:
    await s.fill()
    await s.clients["relaxed"].delete(s.shop_id, s.cart_id, admin=ADMIN, note="test order by staff")


async def confirmed_by_admin(s: Shopper) -> None:
    await payment_pending_result(s)
    carts = s.clients["relaxed"]
    await carts.confirm(
        s.shop_id, s.cart_id, admin=ADMIN, note="payment seen in the gateway dashboard"
    )
    await carts.await_order(s.shop_id, s.cart_id, timeout_seconds=10)


async def fails_then_pays(s: Shopper) -> None:
    await s.checkout()
    await s.result(await s.pay(1), PaymentStatus.FAILED)
    await s.result(await s.pay(2), PaymentStatus.SUCCEEDED)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    expected: CartState
    play: Callable[[Shopper], Awaitable[None]]
    #: the timer the cart waits for, if any: "abandon", "lock" or "lifetime"
    timer: str | None = None


#: In this order: the first ten already cover every state (and both kinds of locks and
#: of orders); more carts cycle through the list.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("browsing", "adds items and keeps browsing", CartState.ACTIVE, browsing),
    Scenario("checkout", "identifies and starts checkout", CartState.CHECKOUT, in_checkout),
    Scenario("paying", "is at the payment gateway", CartState.PAYMENT_PENDING, paying),
    Scenario(
        "pending",
        "gateway reports the payment pending",
        CartState.LOCKED,
        payment_pending_result,
    ),
    Scenario("silent_gateway", "gateway never answers", CartState.LOCKED, gateway_silent, "lock"),
    Scenario("walks_away", "leaves the cart", CartState.ABANDONED, walks_away, "abandon"),
    Scenario("paid_online", "pays by card", CartState.ORDERED, paid_online),
    Scenario("offline", "pays by bank transfer", CartState.ORDERED, pays_offline),
    Scenario("never_returns", "never comes back", CartState.EXPIRED, never_returns, "lifetime"),
    Scenario("deleted", "deleted by an admin", CartState.DELETED, deleted_by_admin),
    Scenario(
        "confirmed",
        "pending payment confirmed by an admin",
        CartState.ORDERED,
        confirmed_by_admin,
    ),
    Scenario("retry", "card declined, paid on retry", CartState.ORDERED, fails_then_pays),
)


#: how many carts (the first scenarios) it takes to have every state
COVERING = 10

# --------------------------------------------------------------------------- the run


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass
class SimCart:
    cart_id: str
    scenario: Scenario
    cart: Cart | None = None
    error: CartkeeperError | None = None
    #: the cart was seen where its scenario takes it (it stays settled when a user then
    #: acts on it: confirms the locked cart the demo leaves, say)
    reached: bool = False

    @property
    def state(self) -> CartState | None:
        return self.cart.state if self.cart else None

    def seen(self, cart: Cart) -> None:
        self.cart = cart
        self.reached = self.reached or cart.state is self.scenario.expected

    @property
    def settled(self) -> bool:
        return self.error is not None or self.reached


@dataclass
class Simulation:
    shop_id: str
    carts: list[SimCart] = field(default_factory=list)
    seconds: float = 0.0
    timed_out: bool = False

    @property
    def errors(self) -> list[SimCart]:
        return [c for c in self.carts if c.error is not None]

    def by_state(self) -> dict[CartState, list[SimCart]]:
        found: dict[CartState, list[SimCart]] = {}
        for sim in self.carts:
            if sim.state is not None:
                found.setdefault(sim.state, []).append(sim)
        return {state: found[state] for state in CartState if state in found}

    def example(self, state: CartState, lock_reason: str | None = None) -> str | None:
        for sim in self.carts:
            if (
                sim.cart is not None
                and sim.state is state
                and (lock_reason is None or sim.cart.lock_reason == lock_reason)
            ):
                return sim.cart_id
        return None


def _constant(policy: CartPolicy) -> Callable[[str], CartPolicy]:
    return lambda _shop: policy


def _run_stamp() -> str:
    """A short, time-based prefix so that every run creates new carts."""
    value = int(time.time() * 10)
    digits = string.digits + string.ascii_lowercase
    out = ""
    while value:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
    return out[-6:]


def _shopper(
    shop_id: str, cart_id: str, rng: random.Random, clients: dict[str, CartkeeperClient]
) -> Shopper:
    currency = rng.choices(("EUR", "USD"), weights=(7, 3))[0]
    products = rng.sample(PRODUCTS, rng.randint(1, 4))
    lines = [
        CartLine(sku, name, rng.choices((1, 2, 3), (6, 3, 1))[0], price)
        for sku, name, price in products
    ]
    first, last, locale, zone = rng.choice(CUSTOMERS)
    local = unicodedata.normalize("NFKD", f"{first}.{last}".lower().replace(" ", ""))
    local = local.encode("ascii", "ignore").decode() or "customer"
    customer = CustomerInfo(
        email=f"{local}@example.com",
        name=f"{first} {last}",
        locale=locale,
        time_zone=zone,
        marketing_consent=rng.random() < 0.4,
        logged_in=rng.random() < 0.5,
    )
    return Shopper(shop_id, cart_id, rng, clients, currency, lines, customer)


async def simulate(
    client: Client,
    *,
    carts: int = 12,
    shop_id: str = "demo",
    task_queue: str,
    seed: int | None = None,
    speed: float = 1.0,
    wait: bool = True,
    concurrency: int = 16,
    out: Out = print,
) -> Simulation:
    """Play ``carts`` demo carts; with ``wait``, until every timer they wait for has fired."""
    if carts < 1:
        raise ValueError("carts must be at least 1")
    timings = DemoTimings.scaled(speed)
    clients = {
        name: CartkeeperClient(client, task_queue=task_queue, policy_for=_constant(policy))
        for name, policy in timings.policies().items()
    }
    rng = random.Random(seed)
    stamp = _run_stamp()
    sims = [
        SimCart(f"sim-{stamp}-{i + 1:03d}", SCENARIOS[i % len(SCENARIOS)]) for i in range(carts)
    ]
    # Each cart gets its own generator, so the data does not depend on the scheduling.
    shoppers = [_shopper(shop_id, s.cart_id, random.Random(rng.random()), clients) for s in sims]
    result = Simulation(shop_id, sims)
    started = time.monotonic()
    if carts < COVERING:
        out(f"note: {_plural(carts, 'cart')} cannot cover every state; {COVERING} can")
    out(
        f"simulating {_plural(carts, 'cart')} in shop {shop_id!r}"
        f" (abandon after {timings.abandon_seconds}s,"
        f" lock after {timings.lock_seconds}s, expire after {timings.lifetime_seconds}s)"
    )

    gate = asyncio.Semaphore(max(concurrency, 1))

    async def play(sim: SimCart, shopper: Shopper) -> None:
        async with gate:
            try:
                await sim.scenario.play(shopper)
            except CartkeeperError as error:
                if error.code is ErrorCode.TEMPORAL_UNAVAILABLE:
                    raise
                sim.error = error
                out(f"  cart {sim.cart_id} ({sim.scenario.name}): {error}")

    await asyncio.gather(*(play(sim, shopper) for sim, shopper in zip(sims, shoppers, strict=True)))
    out(f"  {_plural(carts, 'cart')} created in {time.monotonic() - started:.1f}s")
    reader = clients["relaxed"]

    async def refresh() -> None:
        async def one(sim: SimCart) -> None:
            async with gate:
                try:
                    sim.seen(await reader.get_cart(shop_id, sim.cart_id))
                except CartkeeperError as error:
                    if error.code is ErrorCode.TEMPORAL_UNAVAILABLE:
                        raise
                    sim.error = sim.error or error

        await asyncio.gather(*(one(sim) for sim in sims))

    await refresh()
    if wait:
        waits = {
            "abandon": timings.abandon_seconds,
            "lock": timings.lock_seconds,
            "lifetime": timings.lifetime_seconds,
        }
        longest = max((waits[s.scenario.timer] for s in sims if s.scenario.timer), default=0)
        deadline = started + longest + 20 + carts / 20
        last_report = 0.0
        while not all(sim.settled for sim in sims):
            now = time.monotonic()
            if now >= deadline:
                result.timed_out = True
                break
            if now - last_report >= 5:
                last_report = now
                waiting = Counter(str(s.scenario.expected) for s in sims if not s.settled)
                what = ", ".join(f"{state} {n}" for state, n in sorted(waiting.items()))
                settled = sum(s.settled for s in sims)
                out(
                    f"  {now - started:4.0f}s  {settled}/{carts} carts where they should be;"
                    f" waiting for timers: {what}"
                )
            await asyncio.sleep(1)
            await refresh()
    result.seconds = time.monotonic() - started
    return result


# --------------------------------------------------------------------------- the summary


def render_summary(result: Simulation) -> str:
    groups = result.by_state()
    rows = []
    for state in CartState:
        sims = groups.get(state, [])
        detail = ""
        if state is CartState.LOCKED:
            reasons = Counter(str(s.cart.lock_reason) for s in sims if s.cart)
            detail = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        elif state is CartState.ORDERED:
            kinds = Counter(
                f"{s.cart.order.source}" for s in sims if s.cart and s.cart.order is not None
            )
            detail = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        elif sims and sims[0].cart is not None and sims[0].cart.currency:
            first = sims[0].cart
            detail = f"e.g. {format_money(first.total, first.currency)}"
        rows.append([str(state), str(len(sims)), sims[0].cart_id if sims else "-", detail])
    lines = [
        f"carts by state, from the workflows ({_plural(len(result.carts), 'cart')} in shop "
        f"{result.shop_id!r}, after {result.seconds:.0f}s):",
        indent(table(["STATE", "CARTS", "EXAMPLE", "DETAIL"], rows, right=(1,))),
    ]
    missing = [str(s) for s in CartState if s not in groups]
    if missing:
        lines.append(f"no carts (yet) in: {', '.join(missing)}")
    if result.timed_out:
        unsettled = [s for s in result.carts if not s.settled]
        lines.append(
            "timed out waiting for: "
            + ", ".join(f"{s.cart_id} ({s.state} -> {s.scenario.expected})" for s in unsettled)
        )
    for sim in result.errors:
        lines.append(f"error in cart {sim.cart_id} ({sim.scenario.name}): {sim.error}")
    return "\n".join(lines)
