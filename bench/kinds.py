"""The two kinds of workload the lifecycle compares: the cart's lifecycle and the floor.

Each is 8 client calls with an optional pause between them; ``run_carts`` lets a number
of shoppers take carts of one kind from a pool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from bench.floor import STEP, FloorStep
from bench.measure import Recorder
from bench.plan import LIFECYCLE_SHOP, TASK_QUEUE
from starter.client import CartkeeperClient
from workflows.contract import FLOOR_WORKFLOW_NAME, CartLine, CustomerInfo

LINE_A = CartLine(sku="sku-mug", name="Blue mug", quantity=1, unit_price=1250)
LINE_B = CartLine(sku="sku-tea", name="Green tea, 100 g", quantity=2, unit_price=690)
TOTAL = 2 * LINE_A.unit_price + LINE_B.quantity * LINE_B.unit_price


class Kinds:
    """The cart's lifecycle and the floor, each 8 client calls, with a pause between."""

    LIFECYCLE = "lifecycle"
    FLOOR = "floor"

    def __init__(self, client: Client, run_id: str) -> None:
        """``run_id`` prefixes every cart and floor id: one per run and read model."""
        self.client = client
        self.carts = CartkeeperClient(client, task_queue=TASK_QUEUE)
        self.run_id = run_id
        self.results: list[tuple[str, Any]] = []  # last cart's results, for payload sizes
        self.keep_results = False

    def _keep(self, label: str, result: Any) -> None:
        if self.keep_results:
            self.results.append((label, result))

    async def lifecycle(self, key: str, pause: float, rec: Recorder) -> None:
        carts, shop, cart_id = self.carts, LIFECYCLE_SHOP, key
        attempt = f"{key}-pay1"
        customer = CustomerInfo(
            email=f"{key}@shop.example.com", name="Bench Shopper", locale="en", logged_in=False
        )
        steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("1 update_cart (start)", lambda: carts.update_cart(shop, cart_id, [LINE_A], "EUR")),
            ("2 update_cart", lambda: carts.update_cart(shop, cart_id, [LINE_A, LINE_B], "EUR")),
            (
                "3 update_cart",
                lambda: carts.update_cart(
                    shop, cart_id, [dataclasses.replace(LINE_A, quantity=2), LINE_B], "EUR"
                ),
            ),
            ("4 identify_customer", lambda: carts.identify_customer(shop, cart_id, customer)),
            ("5 start_checkout", lambda: carts.start_checkout(shop, cart_id)),
            (
                "6 start_payment",
                lambda: carts.start_payment(
                    shop,
                    cart_id,
                    attempt_id=attempt,
                    method="online",
                    gateway="benchpay",
                    amount=TOTAL,
                    currency="EUR",
                ),
            ),
            (
                "7 payment_result (signal)",
                lambda: carts.report_payment_result(
                    shop,
                    cart_id,
                    attempt_id=attempt,
                    status="succeeded",
                    amount=TOTAL,
                    currency="EUR",
                    card_last4="4242",
                    gateway="benchpay",
                ),
            ),
            ("8 await_order", lambda: carts.await_order(shop, cart_id, 30)),
        ]
        result: Any = None
        for i, (label, call) in enumerate(steps):
            if i and pause:
                await asyncio.sleep(pause)
            result = await rec.timed(label, call)
            self._keep(label, result)
        # await_order answers with a CartView
        if result is None or result.order_number is None:
            raise RuntimeError("the cart has no order number after await_order")

    async def floor(self, key: str, pause: float, rec: Recorder) -> None:
        wid = f"floor:{key}"
        start: WithStartWorkflowOperation[Any, int] = WithStartWorkflowOperation(
            FLOOR_WORKFLOW_NAME,
            key,
            id=wid,
            task_queue=TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            result_type=int,
        )
        result = await rec.timed(
            "1 step (start)",
            lambda: self.client.execute_update_with_start_workflow(
                STEP, FloorStep(1), start_workflow_operation=start, result_type=int
            ),
        )
        self._keep("1 step (start)", result)
        handle = self.client.get_workflow_handle(wid)
        for n in range(2, 9):
            if pause:
                await asyncio.sleep(pause)
            label = f"{n} step"
            result = await rec.timed(label, functools.partial(self._step, handle, n))
            self._keep(label, result)
        if result != 8:
            raise RuntimeError(f"the floor counted {result} steps, not 8")

    @staticmethod
    async def _step(handle: WorkflowHandle[Any, Any], n: int) -> int:
        return int(await handle.execute_update(STEP, FloorStep(n, last=n == 8), result_type=int))

    def run(self, kind: str, key: str, pause: float, rec: Recorder) -> Awaitable[None]:
        fn = self.lifecycle if kind == self.LIFECYCLE else self.floor
        return fn(key, pause, rec)

    def key(self, kind: str, phase: str, n: int) -> str:
        return f"{self.run_id}-{phase}-{kind[0]}{n:05d}"


async def run_carts(
    kinds: Kinds,
    kind: str,
    phase: str,
    *,
    carts: int,
    shoppers: int,
    pause: float,
    rec: Recorder,
    per_shopper: bool = False,
) -> int:
    """``shoppers`` take carts from a pool of ``carts`` (or ``carts`` each, if
    ``per_shopper``), one after the other; returns how many carts completed."""
    done = 0
    numbers = iter(range(carts * shoppers if per_shopper else carts))

    async def shopper(index: int) -> None:
        nonlocal done
        if pause:  # spread the shoppers over the first pause, as real ones would be
            await asyncio.sleep(random.uniform(0, pause))
        for taken, n in enumerate(numbers, start=1):
            if taken > 1 and pause:
                await asyncio.sleep(pause)
            try:
                await kinds.run(kind, kinds.key(kind, phase, n), pause, rec)
                done += 1
            except Exception as error:
                rec.errors[f"{type(error).__name__}: {error}"[:160]] += 1
            if per_shopper and taken >= carts:
                return

    await asyncio.gather(*(shopper(i) for i in range(shoppers)))
    return done
