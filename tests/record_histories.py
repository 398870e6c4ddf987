"""Record histories of the cart workflow for the replay test (``tests/test_replay.py``).

    .venv/bin/python -m tests.record_histories

Runs a set of scenarios against a fresh dev server with the current workflow code and
writes each cart's history to ``tests/histories/<scenario>.json``. Record again only for a
deliberate, versioned change: the replay test exists so that a change which would break
running carts fails CI. Keep old histories when adding ``workflow.patched`` branches.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.cart_activities import CartActivities
from activities.db import make_engine, make_session_factory, upgrade_database
from activities.settings import Settings
from starter.client import CartkeeperClient
from worker import build_worker
from workflows import search_attributes as sa
from workflows.contract import CartLine, CartPolicy, CartState, CustomerInfo

HERE = Path(__file__).parent / "histories"
SHOP = "replay"
LINES = [CartLine("tea", "Green tea", 2, 450), CartLine("cup", "Cup", 1, 1200)]
FAST = CartPolicy(
    abandon_after_seconds=2,
    lock_after_seconds=1,
    lifetime_seconds=4,
    retire_after_seconds=1,
    projection_interval_seconds=0.2,
)

Scenario = Callable[[CartkeeperClient, str], Awaitable[None]]


async def _pay(c: CartkeeperClient, cart: str, attempt: str = "a1") -> None:
    await c.update_cart(SHOP, cart, LINES[:1], "EUR")
    await c.update_cart(SHOP, cart, LINES, "EUR", customer_id="cust-1")
    await c.identify_customer(SHOP, cart, CustomerInfo(email="ann@example.com", name="Ann"))
    await c.record_visit(SHOP, cart, page="/checkout")
    await c.start_checkout(SHOP, cart)
    await c.start_payment(
        SHOP, cart, attempt_id=attempt, method="online", gateway="stripe", amount=2100
    )


async def online_order(c: CartkeeperClient, cart: str) -> None:
    await _pay(c, cart)
    await c.report_payment_result(
        SHOP, cart, attempt_id="a1", status="succeeded", amount=2100, card_last4="4242"
    )
    await c.report_payment_result(SHOP, cart, attempt_id="a1", status="succeeded", amount=2100)
    await c.await_order(SHOP, cart, 10)
    await c.report_payment_result(SHOP, cart, attempt_id="a2", status="succeeded", amount=2100)


async def offline_order(c: CartkeeperClient, cart: str) -> None:
    await c.update_cart(SHOP, cart, LINES, "EUR")
    await c.start_payment(SHOP, cart, attempt_id="b1", method="offline", gateway="bank",
                          amount=2100)
    await c.await_order(SHOP, cart, 10)


async def failed_then_pending_then_confirmed(c: CartkeeperClient, cart: str) -> None:
    await _pay(c, cart)
    await c.report_payment_result(SHOP, cart, attempt_id="a1", status="failed", amount=2100)
    await c.start_payment(SHOP, cart, attempt_id="a2", method="online", gateway="stripe",
                          amount=2100)
    await c.report_payment_result(SHOP, cart, attempt_id="a2", status="pending", amount=2100)
    await c.confirm(SHOP, cart, admin="ann", note="seen in the gateway")
    await c.await_order(SHOP, cart, 10)


async def lock_unlock_abandon_expire(c: CartkeeperClient, cart: str) -> None:
    await _pay(c, cart)
    await _until(c, cart, CartState.LOCKED)
    await c.unlock(SHOP, cart, admin="ann")
    await _until(c, cart, CartState.ABANDONED)
    await c.record_visit(SHOP, cart)
    await _until(c, cart, CartState.EXPIRED)
    await c.handle(SHOP, cart).result()


async def deleted_then_paid(c: CartkeeperClient, cart: str) -> None:
    await _pay(c, cart)
    await c.delete(SHOP, cart, admin="ann")
    await c.report_payment_result(SHOP, cart, attempt_id="a1", status="succeeded", amount=2100)
    await c.handle(SHOP, cart).result()


async def continued_as_new(c: CartkeeperClient, cart: str) -> None:
    for quantity in range(1, 12):
        await c.update_cart(SHOP, cart, [CartLine("tea", "Green tea", quantity, 450)], "EUR")


SCENARIOS: dict[str, tuple[Scenario, CartPolicy]] = {
    "online_order": (online_order, CartPolicy(projection_interval_seconds=0.2)),
    "offline_order": (offline_order, CartPolicy()),
    "failed_then_pending_then_confirmed": (failed_then_pending_then_confirmed, CartPolicy()),
    "lock_unlock_abandon_expire": (lock_unlock_abandon_expire, FAST),
    "deleted_then_paid": (deleted_then_paid, FAST),
    "continued_as_new": (continued_as_new, CartPolicy(continue_as_new_after_events=25)),
}


async def _until(c: CartkeeperClient, cart: str, state: CartState) -> None:
    for _ in range(200):
        if (await c.get_cart(SHOP, cart)).state is state:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{cart} never reached {state}")


async def _save(handle: WorkflowHandle, name: str) -> None:  # type: ignore[type-arg]
    """Every run of the cart (a continued-as-new cart has several), oldest first."""
    client = handle._client
    runs = [wf async for wf in client.list_workflows(f'WorkflowId = "{handle.id}"')]
    for n, run in enumerate(sorted(runs, key=lambda wf: wf.start_time), start=1):
        history = await client.get_workflow_handle(handle.id, run_id=run.run_id).fetch_history()
        if not any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in history.events
        ):
            continue  # the run has not done anything yet: nothing to replay
        suffix = f"-run{n}" if len(runs) > 1 else ""
        (HERE / f"{name}{suffix}.json").write_text(history.to_json())
        print(f"recorded {name}{suffix}: {len(history.events)} events")


def _fixed(policy: CartPolicy) -> Callable[[str], CartPolicy]:
    return lambda _shop: policy


async def main() -> None:
    temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp), database_url=f"sqlite+aiosqlite:///{tmp}/replay.db",
            task_queue="record",
        )
        await upgrade_database(settings.resolved_database_url())
        engine = make_engine(settings.resolved_database_url())
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal, search_attributes=sa.ALL_KEYS,
            dev_server_log_level="error",
        )
        async with env:
            activities = CartActivities(make_session_factory(engine))
            async with build_worker(env.client, activities, settings):
                for name, (scenario, policy) in SCENARIOS.items():
                    client = CartkeeperClient(
                        env.client, task_queue="record", policy_for=_fixed(policy)
                    )
                    await scenario(client, name)
                    await asyncio.sleep(0.5)
                    await _save(client.handle(SHOP, name), name)
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
