"""The chaos run's traffic: shoppers, a payment gateway and an admin, all retrying.

Every call goes through ``Traffic.call``, which retries with backoff what a real storefront
or gateway would retry (Temporal unavailable, an update no worker applied in time, RPC and
connection errors) until ``CALL_DEADLINE_S``. Everything the product offers is idempotent,
so a retry of a call that was in fact applied is harmless; where a retry of an applied call
is refused by the state it led to (``start_payment`` of an offline payment finds the order,
``confirm`` finds the cart ordered ...), the refusal that proves it is accepted.

The gateway records every ``succeeded`` result it delivered (acknowledged by Temporal), for
the invariant checker: each must be on its cart, as an order's payment or flagged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.service import RPCError

from starter.client import CartkeeperClient, CartkeeperError
from workflows.contract import Cart, CartLine, CartState, CustomerInfo, ErrorCode

#: how long a storefront, gateway or admin call is retried before it gives up
CALL_DEADLINE_S = 180.0
RETRYABLE = frozenset(
    {ErrorCode.TEMPORAL_UNAVAILABLE, ErrorCode.UPDATE_PENDING, ErrorCode.INTERNAL}
)

CATALOG = [
    CartLine(sku="sku-mug", name="Blue mug", quantity=1, unit_price=1250),
    CartLine(sku="sku-tea", name="Green tea, 100 g", quantity=1, unit_price=690),
    CartLine(sku="sku-pot", name="Tea pot", quantity=1, unit_price=3900),
    CartLine(sku="sku-cup", name="Cup", quantity=1, unit_price=450),
    CartLine(sku="sku-bag", name="Tote bag", quantity=1, unit_price=1500),
]

#: behaviour -> weight (out of 100)
BEHAVIOURS: dict[str, int] = {
    "online_ok": 23,
    "duplicate_reordered": 12,
    "offline_then_paid": 10,
    "pending_then_confirm": 8,
    "silent_then_admin": 13,
    "changed_during_payment": 8,
    "underpaid": 7,
    "deleted_then_paid": 8,
    "abandon_then_return": 11,
}


class GaveUp(Exception):
    """A call kept failing until the deadline."""


@dataclasses.dataclass(frozen=True)
class Delivered:
    """A ``succeeded`` result the gateway delivered (Temporal acknowledged the signal)."""

    shop_id: str
    cart_id: str
    attempt_id: str
    amount: int
    currency: str
    at: float


def total(lines: list[CartLine]) -> int:
    return sum(line.quantity * line.unit_price for line in lines)


class Traffic:
    """The client side of the run: shoppers, gateway, admin; shared counters."""

    def __init__(
        self,
        carts: CartkeeperClient,
        shop_id: str,
        seed: int,
        started: float,
        *,
        wait_with: str = "query",
    ) -> None:
        """``wait_with``: how a shopper or admin waits for a cart's state: ``query``
        (``get_cart`` every second) or ``visibility`` (the ``CartState`` search
        attribute, which asks no worker)."""
        self.carts = carts
        self.wait_with = wait_with
        self.shop_id = shop_id
        self.rng = random.Random(seed)
        self.started = started
        self.delivered: list[Delivered] = []
        self.errors: Counter[str] = Counter()
        self.gave_up: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.behaviour_of: dict[str, str] = {}
        self.outcomes: Counter[str] = Counter()
        self.background: set[asyncio.Task[None]] = set()
        self.checkouts_done = 0

    # ------------------------------------------------------------------ plumbing

    def now(self) -> float:
        return time.monotonic() - self.started

    async def call(
        self,
        label: str,
        fn: Callable[[CartkeeperClient], Awaitable[Any]],
        *,
        accept: frozenset[ErrorCode] = frozenset(),
        per_try_s: float = 30.0,
        deadline_s: float = CALL_DEADLINE_S,
    ) -> Any:
        """``fn(client)`` until it answers; a refusal is raised, except one of ``accept``
        after a failed try (the earlier try was applied: ``None`` is returned)."""
        deadline = time.monotonic() + deadline_s
        delay = 0.2
        ambiguous = False
        while True:
            try:
                return await asyncio.wait_for(fn(self.carts), per_try_s)
            except CartkeeperError as error:
                if error.code in accept and ambiguous:
                    return None
                if error.code not in RETRYABLE:
                    self.refusals[f"{label}: {error.code}"] += 1
                    raise
                self.errors[f"{label}: {error.code}"] += 1
            except (RPCError, RuntimeError, TimeoutError, OSError) as error:
                self.errors[f"{label}: {type(error).__name__}"] += 1
            ambiguous = True
            if time.monotonic() > deadline:
                self.gave_up[label] += 1
                raise GaveUp(label)
            await asyncio.sleep(delay * (0.5 + self.rng.random()))
            delay = min(delay * 2, 5.0)

    def later(self, delay: float, coro: Callable[[], Awaitable[None]]) -> None:
        """Run ``coro`` after ``delay`` seconds in the background (late events)."""

        async def run() -> None:
            await asyncio.sleep(delay)
            try:
                await coro()
            except (GaveUp, CartkeeperError) as error:
                self.outcomes[f"background failed: {type(error).__name__}"] += 1

        task = asyncio.create_task(run())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def drain(self) -> None:
        """Wait for every background event (they may schedule more)."""
        while self.background:
            await asyncio.gather(*list(self.background), return_exceptions=True)

    async def think(self, low: float = 0.2, high: float = 1.0) -> None:
        await asyncio.sleep(self.rng.uniform(low, high))

    # ------------------------------------------------------------------ actors

    async def pay_result(
        self,
        cart_id: str,
        attempt_id: str,
        status: str,
        amount: int,
        *,
        raw: bool = False,
    ) -> None:
        """The gateway's webhook: delivered until Temporal acknowledges it."""
        shop = self.shop_id
        if raw:
            payload = {
                "attempt_id": attempt_id,
                "status": status,
                "amount": amount,
                "currency": "EUR",
                "gateway": "chaospay",
            }
            await self.call(
                "gateway send_payment_result",
                lambda c: c.send_payment_result(shop, cart_id, payload),
            )
        else:
            await self.call(
                "gateway report_payment_result",
                lambda c: c.report_payment_result(
                    shop,
                    cart_id,
                    attempt_id=attempt_id,
                    status=status,
                    amount=amount,
                    currency="EUR",
                    card_last4="4242" if status == "succeeded" else None,
                    gateway="chaospay",
                ),
            )
        if status == "succeeded":
            self.delivered.append(
                Delivered(shop, cart_id, attempt_id, amount, "EUR", time.monotonic())
            )

    def pay_later(self, delay: float, cart_id: str, attempt_id: str, status: str, amount: int):
        async def send() -> None:
            await self.pay_result(cart_id, attempt_id, status, amount, raw=self.rng.random() < 0.3)

        self.later(delay, send)

    async def update(self, cart_id: str, lines: list[CartLine]) -> Any:
        shop = self.shop_id
        return await self.call("update_cart", lambda c: c.update_cart(shop, cart_id, lines, "EUR"))

    async def identify(self, cart_id: str) -> None:
        shop = self.shop_id
        customer = CustomerInfo(email=f"{cart_id}@shop.example.com", name="Chaos Shopper")
        await self.call("identify_customer", lambda c: c.identify_customer(shop, cart_id, customer))

    async def checkout(self, cart_id: str) -> None:
        shop = self.shop_id
        await self.call("start_checkout", lambda c: c.start_checkout(shop, cart_id))

    async def start_payment(
        self, cart_id: str, attempt_id: str, amount: int, method: str = "online"
    ) -> None:
        shop = self.shop_id
        await self.call(
            "start_payment",
            lambda c: c.start_payment(
                shop,
                cart_id,
                attempt_id=attempt_id,
                method=method,
                gateway="chaospay",
                amount=amount,
                currency="EUR",
            ),
            # An offline start makes the order at once; an online one may already have
            # its result: a retry then finds the cart ordered.
            accept=frozenset({ErrorCode.ALREADY_ORDERED}),
        )

    async def await_order(self, cart_id: str) -> Any:
        shop = self.shop_id
        return await self.call(
            "await_order", lambda c: c.await_order(shop, cart_id, 10), per_try_s=45
        )

    async def get(self, cart_id: str, deadline_s: float = CALL_DEADLINE_S) -> Cart:
        shop = self.shop_id
        cart: Cart = await self.call(
            "get_cart", lambda c: c.get_cart(shop, cart_id), deadline_s=deadline_s
        )
        return cart

    async def visible_state(self, cart_id: str) -> CartState | None:
        """The cart's ``CartState`` search attribute (no worker involved)."""
        from workflows import search_attributes as sa
        from workflows.contract import workflow_id

        async def describe(c: CartkeeperClient) -> Any:
            return await c.client.get_workflow_handle(workflow_id(self.shop_id, cart_id)).describe()

        description = await self.call("describe", describe)
        value = description.typed_search_attributes.get(sa.CART_STATE)
        return CartState(value) if value else None

    async def wait_state(
        self, cart_id: str, states: set[CartState], within: float = 180
    ) -> CartState | None:
        """Poll the cart every second until it is in one of ``states`` (or ``within``
        seconds passed); its last state seen."""
        deadline = time.monotonic() + within
        while True:
            if self.wait_with == "query":
                state: CartState | None = (await self.get(cart_id)).state
            else:
                state = await self.visible_state(cart_id)
            if state in states or time.monotonic() > deadline:
                return state
            await asyncio.sleep(1.0)

    async def admin(self, action: str, cart_id: str, **kwargs: Any) -> Any:
        shop = self.shop_id
        accept = {
            "confirm": frozenset({ErrorCode.ALREADY_ORDERED}),
            "unlock": frozenset({ErrorCode.NOT_LOCKED}),
            "delete": frozenset({ErrorCode.CART_DELETED}),
        }[action]
        method = getattr(self.carts.__class__, action)
        return await self.call(
            f"admin {action}",
            lambda c: method(c, shop, cart_id, admin="chaos-admin", **kwargs),
            accept=accept,
        )

    # ------------------------------------------------------------------ behaviours

    def lines(self) -> list[CartLine]:
        chosen = self.rng.sample(CATALOG, self.rng.randint(1, 3))
        return [dataclasses.replace(line, quantity=self.rng.randint(1, 3)) for line in chosen]

    async def browse(self, cart_id: str) -> list[CartLine]:
        """A few cart changes, the customer, checkout: the cart's final lines."""
        lines = self.lines()
        await self.update(cart_id, lines)
        for _ in range(self.rng.randint(0, 2)):
            await self.think()
            lines = self.lines()
            await self.update(cart_id, lines)
        await self.think()
        await self.identify(cart_id)
        await self.think()
        await self.checkout(cart_id)
        await self.think()
        return lines

    async def checkout_flow(self, cart_id: str, behaviour: str) -> None:
        self.behaviour_of[cart_id] = behaviour
        await getattr(self, f"b_{behaviour}")(cart_id)
        self.checkouts_done += 1

    async def b_online_ok(self, cart_id: str) -> None:
        lines = await self.browse(cart_id)
        await self.start_payment(cart_id, f"{cart_id}-a1", total(lines))
        await self.think(0.1, 1.5)
        await self.pay_result(cart_id, f"{cart_id}-a1", "succeeded", total(lines))
        await self.await_order(cart_id)

    async def b_duplicate_reordered(self, cart_id: str) -> None:
        """A failed attempt, a succeeded one; then the success again, the old failure
        again and a stale ``pending`` of the new attempt, in a shuffled order."""
        lines = await self.browse(cart_id)
        a1, a2 = f"{cart_id}-a1", f"{cart_id}-a2"
        await self.start_payment(cart_id, a1, total(lines))
        await self.think()
        await self.pay_result(cart_id, a1, "failed", total(lines))
        await self.think()
        await self.start_payment(cart_id, a2, total(lines))
        await self.think()
        await self.pay_result(cart_id, a2, "succeeded", total(lines), raw=True)
        late = [(a2, "succeeded"), (a1, "failed"), (a2, "pending")]
        self.rng.shuffle(late)
        for attempt, status in late:
            self.pay_later(self.rng.uniform(0.5, 20), cart_id, attempt, status, total(lines))
        await self.await_order(cart_id)

    async def b_offline_then_paid(self, cart_id: str) -> None:
        """A bank transfer: an open order at once, its money days (here seconds) later,
        and the bank's notice delivered twice."""
        lines = await self.browse(cart_id)
        attempt = f"{cart_id}-t1"
        await self.start_payment(cart_id, attempt, total(lines), method="offline")
        delay = self.rng.uniform(3, 25)
        again = delay + self.rng.uniform(0.1, 10)
        self.pay_later(delay, cart_id, attempt, "succeeded", total(lines))
        self.pay_later(again, cart_id, attempt, "succeeded", total(lines))

    async def b_pending_then_confirm(self, cart_id: str) -> None:
        """The gateway says ``pending``: locked; an admin confirms it as paid; the gateway
        confirms later (or not)."""
        lines = await self.browse(cart_id)
        attempt = f"{cart_id}-a1"
        await self.start_payment(cart_id, attempt, total(lines))
        await self.think()
        await self.pay_result(cart_id, attempt, "pending", total(lines))
        state = await self.wait_state(cart_id, {CartState.LOCKED, CartState.ORDERED})
        await self.think(1, 3)
        if state is CartState.LOCKED:
            await self.admin("confirm", cart_id, note="saw the money", status="P")
        if self.rng.random() < 0.5:
            self.pay_later(self.rng.uniform(1, 15), cart_id, attempt, "succeeded", total(lines))

    async def b_silent_then_admin(self, cart_id: str) -> None:
        """The gateway never answers: the lock timer locks the cart; an admin confirms it,
        or unlocks it and the customer pays again (and the silent attempt may still
        succeed: a possible double charge)."""
        lines = await self.browse(cart_id)
        a1 = f"{cart_id}-a1"
        await self.start_payment(cart_id, a1, total(lines))
        state = await self.wait_state(cart_id, {CartState.LOCKED})
        if state is not CartState.LOCKED:
            self.outcomes["silent: never locked"] += 1
            return
        await self.think(0.5, 2)
        if self.rng.random() < 0.5:
            await self.admin("confirm", cart_id, note="paid by phone", status="P")
            self.outcomes["silent: confirmed"] += 1
            return
        await self.admin("unlock", cart_id, note="customer will pay again")
        self.outcomes["silent: unlocked"] += 1
        await self.think()
        await self.checkout(cart_id)
        a2 = f"{cart_id}-a2"
        await self.start_payment(cart_id, a2, total(lines))
        await self.think()
        await self.pay_result(cart_id, a2, "succeeded", total(lines))
        if self.rng.random() < 0.5:
            self.pay_later(self.rng.uniform(1, 20), cart_id, a1, "succeeded", total(lines))

    async def b_changed_during_payment(self, cart_id: str) -> None:
        """The customer changes the cart while at the gateway; the old amount succeeds."""
        lines = await self.browse(cart_id)
        attempt = f"{cart_id}-a1"
        paid = total(lines)
        await self.start_payment(cart_id, attempt, paid)
        await self.think()
        changed = (
            [*lines[:-1]]
            if len(lines) > 1 and self.rng.random() < 0.5
            else [
                *lines,
                *[line for line in CATALOG if line.sku not in {ln.sku for ln in lines}][:1],
            ]
        )
        await self.update(cart_id, changed)
        await self.think()
        await self.pay_result(cart_id, attempt, "succeeded", paid)

    async def b_underpaid(self, cart_id: str) -> None:
        lines = await self.browse(cart_id)
        attempt = f"{cart_id}-a1"
        await self.start_payment(cart_id, attempt, total(lines))
        await self.think()
        await self.pay_result(cart_id, attempt, "succeeded", max(total(lines) // 2, 1))
        await self.await_order(cart_id)

    async def b_deleted_then_paid(self, cart_id: str) -> None:
        """An admin deletes the cart during the payment; the success comes after."""
        lines = await self.browse(cart_id)
        attempt = f"{cart_id}-a1"
        await self.start_payment(cart_id, attempt, total(lines))
        await self.think()
        await self.admin("delete", cart_id, note="fraud suspicion")
        self.pay_later(self.rng.uniform(0.5, 15), cart_id, attempt, "succeeded", total(lines))

    async def b_abandon_then_return(self, cart_id: str) -> None:
        """The customer leaves; the abandon timer fires; they come back later and pay."""
        lines = self.lines()
        await self.update(cart_id, lines)

        async def come_back() -> None:
            await self.checkout(cart_id)
            await self.think()
            attempt = f"{cart_id}-a1"
            await self.start_payment(cart_id, attempt, total(lines))
            await self.think()
            await self.pay_result(cart_id, attempt, "succeeded", total(lines))

        self.later(self.rng.uniform(25, 40), come_back)


def pick_behaviours(rng: random.Random, count: int) -> list[str]:
    """``count`` behaviours in the weights' proportions, shuffled."""
    names = list(BEHAVIOURS)
    weights = [BEHAVIOURS[name] for name in names]
    chosen: list[str] = []
    for name, weight in zip(names, weights, strict=True):
        chosen += [name] * (count * weight // sum(weights))
    while len(chosen) < count:
        chosen.append(rng.choices(names, weights)[0])
    rng.shuffle(chosen)
    return chosen
