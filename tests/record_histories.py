"""Record histories of the cart workflow for the replay test (``tests/test_replay.py``).

    .venv/bin/python -m tests.record_histories

    .venv/bin/python -m tests.record_histories online_order   # one scenario, added

Runs a set of scenarios against a fresh dev server with the current workflow code and
writes each cart's history to ``tests/histories/<scenario>[-runN].json``. The histories
were last replaced as a whole by the issue "The cart keeps every promise" (see the README's
changelog); from then on, changes to ``workflows/`` keep them replaying
(``workflow.patched``) and new scenarios are *added* by name, never re-recorded.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.cart_activities import CartActivities
from activities.db import make_engine, make_session_factory, upgrade_database
from activities.settings import Settings
from starter.client import CartkeeperClient, CartkeeperError
from worker import build_worker
from workflows import search_attributes as sa
from workflows.contract import (
    PAYMENT_RESULT,
    CartLine,
    CartPolicy,
    CartState,
    CustomerInfo,
    workflow_id,
)
from workflows.converter import DATA_CONVERTER

HERE = Path(__file__).parent / "histories"
#: the cart each recorded history ends with, as replayed when it was recorded
EXPECTED = Path(__file__).parent / "replayed_carts.json"
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
    await c.resolve(SHOP, cart, admin="ann", note="refunded a2")


async def offline_order_paid_in_parts(c: CartkeeperClient, cart: str) -> None:
    await c.update_cart(SHOP, cart, LINES, "EUR")
    await c.start_payment(
        SHOP, cart, attempt_id="b1", method="offline", gateway="bank", amount=2100
    )
    await c.await_order(SHOP, cart, 10)
    await c.report_payment_result(SHOP, cart, attempt_id="b1", status="succeeded", amount=1000)
    await c.report_payment_result(SHOP, cart, attempt_id="b2", status="succeeded", amount=1100)
    await _settled(c, cart)


async def failed_then_pending_then_confirmed(c: CartkeeperClient, cart: str) -> None:
    await _pay(c, cart)
    await c.report_payment_result(SHOP, cart, attempt_id="a1", status="failed", amount=2100)
    await c.start_payment(
        SHOP, cart, attempt_id="a2", method="online", gateway="stripe", amount=2100
    )
    await c.report_payment_result(SHOP, cart, attempt_id="a2", status="pending", amount=2100)
    await c.confirm(SHOP, cart, admin="ann", note="seen in the gateway")
    await c.await_order(SHOP, cart, 10)
    await c.report_payment_result(SHOP, cart, attempt_id="a2", status="succeeded", amount=2100)
    await _settled(c, cart)


async def cart_changed_during_payment(c: CartkeeperClient, cart: str) -> None:
    await _pay(c, cart)
    # Back from the gateway the customer adds more; then the old payment succeeds.
    await c.update_cart(SHOP, cart, [*LINES, CartLine("pot", "Teapot", 1, 500_000)], "EUR")
    await c.report_payment_result(SHOP, cart, attempt_id="a1", status="succeeded", amount=2100)
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
    """Deleted, retired; a late success brings the cart back (a second run restores it
    from the first run's result) and is recorded for an admin."""
    await _pay(c, cart)
    await c.delete(SHOP, cart, admin="ann")
    await c.handle(SHOP, cart).result()
    await c.report_payment_result(SHOP, cart, attempt_id="a1", status="succeeded", amount=2100)
    await _until_attention(c, cart)
    await c.handle(SHOP, cart).result()


async def terminated_then_paid(c: CartkeeperClient, cart: str) -> None:
    """Terminated by ops while at the gateway; the late success restores the cart from
    the terminated run (replayed by a query) and makes the order."""
    await _pay(c, cart)
    await c.handle(SHOP, cart).terminate("ops")
    await c.report_payment_result(SHOP, cart, attempt_id="a1", status="succeeded", amount=2100)
    await c.await_order(SHOP, cart, 10)


async def continued_as_new(c: CartkeeperClient, cart: str) -> None:
    for quantity in range(1, 12):
        await c.update_cart(SHOP, cart, [CartLine("tea", "Green tea", quantity, 450)], "EUR")
    await c.start_payment(
        SHOP, cart, attempt_id="b1", method="offline", gateway="bank", amount=4950
    )
    await c.await_order(SHOP, cart, 10)


async def lines_removed(c: CartkeeperClient, cart: str) -> None:
    """Several lines removed at once: the journal lists them in the cart's order."""
    many = [CartLine(f"sku-{n}", f"Item {n}", 1, 100 + n) for n in range(12)]
    await c.update_cart(SHOP, cart, many, "EUR")
    await c.update_cart(SHOP, cart, many[::5], "EUR")
    await c.update_cart(SHOP, cart, [], "EUR")


async def operated_from_the_ui(c: CartkeeperClient, cart: str) -> None:
    """What ops send from the Temporal UI: raw payloads, admin signals, a cancellation."""
    await _pay(c, cart)
    handle = c.client.get_workflow_handle(workflow_id(SHOP, cart))
    await handle.signal(
        PAYMENT_RESULT, {"attempt_id": "a1", "status": "SUCCEEDED", "amount": "2100"}
    )
    await handle.signal(PAYMENT_RESULT, ["not", "an", "object"])
    await handle.signal("confirm", {"admin": "ops"})  # not locked yet: refused, journaled
    await handle.signal(PAYMENT_RESULT, {"attempt_id": "a1", "status": "pending", "amount": 2100})
    await _until(c, cart, CartState.LOCKED)
    await handle.signal("confirm", {"admin": "ops", "note": "seen in Stripe", "status": "P"})
    await c.await_order(SHOP, cart, 10)
    await handle.signal("resolve", {"admin": "ops", "note": "a bad webhook", "items": [1]})
    await handle.cancel()  # an order: refused and recorded
    await _until_journal(c, cart, "cancellation_requested")


async def cancelled_from_the_ui(c: CartkeeperClient, cart: str) -> None:
    await c.update_cart(SHOP, cart, LINES, "EUR")
    await c.handle(SHOP, cart).cancel()
    await _until(c, cart, CartState.DELETED)


async def payment_for_an_unknown_cart(c: CartkeeperClient, cart: str) -> None:
    await c.report_payment_result(
        SHOP, cart, attempt_id="ghost", status="succeeded", amount=999, currency="EUR"
    )
    await _until_attention(c, cart)


async def control_characters(c: CartkeeperClient, cart: str) -> None:
    """Outside text with control characters and lone surrogates, as the workflow took it
    before ``invalid_text`` (item names, a customer's name, a gateway, admin names and
    notes, a garbled result): replayed today it makes the same cart (no text patch)."""
    handle = c.client.get_workflow_handle(workflow_id(SHOP, cart))
    lines = [CartLine("tea", "Green\ttea", 2, 450), CartLine("cup", "Cup\x00", 1, 1200)]
    await c.update_cart(SHOP, cart, [*lines, CartLine("mug", "Mug\ud800", 1, 0)], "EUR")
    await c.identify_customer(SHOP, cart, CustomerInfo(email="ann@example.com", name="Ann\x00"))
    await c.start_checkout(SHOP, cart)
    await c.start_payment(
        SHOP, cart, attempt_id="a1", method="online", gateway="stripe\n", amount=2100
    )
    await handle.signal("confirm", {"admin": "o\x01ps"})  # not locked: refused, journaled
    await handle.signal(PAYMENT_RESULT, {"attempt_id": "a1", "status": "ok\ud800", "amount": 1})
    pending = {"attempt_id": "a1", "status": "pending", "amount": 2100, "gateway": "gw\x00"}
    await handle.signal(PAYMENT_RESULT, pending)
    await _until(c, cart, CartState.LOCKED)
    await handle.signal("unlock", {"admin": "op\x00s", "note": "called\x07her"})
    await _until(c, cart, CartState.ACTIVE)
    await c.start_payment(SHOP, cart, attempt_id="a2", method="online", gateway="b\x00", amount=9)
    await handle.signal(PAYMENT_RESULT, {**pending, "attempt_id": "a2", "gateway": "\ud800"})
    await _until(c, cart, CartState.LOCKED)
    await handle.signal("confirm", {"admin": "ops", "note": "paid\x00", "status": "P"})
    await c.await_order(SHOP, cart, 10)


async def keyed_updates(c: CartkeeperClient, cart: str) -> None:
    """Updates sent under an ``Idempotency-Key`` (ids ``idem-...``): the cart remembers
    those it applied (patch ``keyed-updates-remembered``), not the one it refused, carries
    them across a continue-as-new, and answers their retries in the next run with the
    cart as it is, without applying them again."""
    from starter.client import idempotent_updates

    await c.update_cart(SHOP, cart, LINES, "EUR")
    with idempotent_updates("replay-visit"):
        await c.record_visit(SHOP, cart, page="/keyed")
    with idempotent_updates("replay-checkout"):
        await c.start_checkout(SHOP, cart)
    with idempotent_updates("replay-refused"):
        await _refused(c.update_cart(SHOP, cart, LINES, "USD"), "currency_mismatch")
    handle = c.client.get_workflow_handle(workflow_id(SHOP, cart))
    first = (await handle.describe()).run_id
    for n in range(100):
        if (await handle.describe()).run_id != first:
            break
        await c.record_visit(SHOP, cart, page=f"/p{n}")
    with idempotent_updates("replay-visit"):
        await c.record_visit(SHOP, cart, page="/keyed")  # answered, not applied
    with idempotent_updates("replay-checkout"):
        await c.start_checkout(SHOP, cart)  # answered, not applied
    with idempotent_updates("replay-next"):
        await c.record_visit(SHOP, cart, page="/next")


#: the recording's read model (scenarios that need rows, e.g. a campaign, write them)
_SESSIONS: list[Any] = []


async def _campaign(delays: tuple[int, ...]) -> None:
    """A campaign with short delays, written as rows (the store refuses delays under a
    minute, which would make the recording slow)."""
    from datetime import UTC, datetime

    from activities.db import write_session
    from activities.models import Campaign, CampaignReminder

    now = datetime.now(UTC)
    async with write_session(_SESSIONS[0]) as session:
        if await session.get(Campaign, SHOP) is not None:
            return
        session.add(
            Campaign(
                shop_id=SHOP,
                enabled=True,
                version=1,
                shop_name="Replay shop",
                sender="shop@example.com",
                restore_url="https://shop.example.com/cart/{cart_id}?coupon={coupon}",
                requires_consent=False,
                restart_rule="continue",
                quiet_start_minute=0,
                quiet_end_minute=0,
                default_time_zone="UTC",
                cap_count=10,
                cap_period_days=7,
                created_at=now,
                updated_at=now,
            )
        )
        for n, delay in enumerate(delays, start=1):
            session.add(
                CampaignReminder(
                    shop_id=SHOP,
                    reminder_id=f"r{n}",
                    position=n,
                    name=f"Reminder {n}",
                    delay_seconds=delay,
                    automatic=True,
                    subject="Your cart is waiting",
                    template="reminder",
                    coupon_kind="percent" if n == 1 else None,
                    coupon_amount=10 if n == 1 else None,
                    coupon_expiry_days=7 if n == 1 else None,
                    created_at=now,
                    updated_at=now,
                )
            )


async def reminder_sequence(c: CartkeeperClient, cart: str) -> None:
    """Abandoned with an address: the first reminder is sent (with a coupon), the
    customer follows its recovery link (the second is skipped), pays; an admin's manual
    send is refused on the ordered cart."""
    await _campaign((1, 30))
    await c.update_cart(SHOP, cart, LINES[:1], "EUR")
    await c.identify_customer(SHOP, cart, CustomerInfo(email="ann@example.com", name="Ann"))
    await _until(c, cart, CartState.ABANDONED)
    await _until_journal(c, cart, "reminder_sent")
    await c.handle(SHOP, cart).signal(
        "recovery_link_clicked", {"reminder_id": "r1", "coupon_code": "K7Q2M9XA"}
    )
    await _until(c, cart, CartState.ACTIVE)
    await _pay(c, cart)
    await c.report_payment_result(SHOP, cart, attempt_id="a1", status="succeeded", amount=2100)
    await _settled(c, cart)


async def lock_alert(c: CartkeeperClient, cart: str) -> None:
    """Locked long enough to alert the shop's admins (the recording's shop has none: the
    alert is recorded with no recipient), then confirmed."""
    await _pay(c, cart)
    await _until(c, cart, CartState.LOCKED)
    await _until_journal(c, cart, "lock_alert_sent")
    await c.confirm(SHOP, cart, admin="ann")


async def _order_settled(c: CartkeeperClient, cart: str) -> None:
    """The order has its number and its effects (registry, stock, e-mails) are done."""
    for _ in range(200):
        order = (await c.get_cart(SHOP, cart)).order
        if (
            order is not None
            and order.number is not None
            and order.statuses
            and order.statuses[-1].resolved
            and order.wanted_status is None
            and all(move.outcome != "pending" for move in order.stock_moves)
            and all(mail.outcome != "pending" for mail in order.mails)
        ):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{cart}'s order never settled")


async def _refused(call: Awaitable[Any], code: str) -> None:
    try:
        await call
    except CartkeeperError as error:
        if error.code != code:
            raise
    else:
        raise RuntimeError(f"not refused with {code}")


async def _finished(c: CartkeeperClient, cart: str) -> None:
    await asyncio.wait_for(c.handle(SHOP, cart).result(), timeout=30)


async def order_phase(c: CartkeeperClient, cart: str) -> None:
    """An online order taken from Processed to Delivered by an admin: stock taken once
    (tracked for tea), new contents (given back and taken again), delivery, a refused
    hidden status (update: not recorded) and an unknown one (signal: journaled), a note,
    status e-mails; the workflow finishes after the final status."""
    from activities.stock import set_stock_level

    await set_stock_level(_SESSIONS[0], SHOP, "tea", 10)
    await _pay(c, cart)
    await c.report_payment_result(SHOP, cart, attempt_id="a1", status="succeeded", amount=2100)
    await _order_settled(c, cart)
    await c.set_order_status(SHOP, cart, "A", admin="ann", note="checking stock")
    await c.edit_order_lines(SHOP, cart, [LINES[0], replace(LINES[1], quantity=2)], admin="ann")
    await c.edit_delivery(SHOP, cart, admin="ann", method="dhl", cost=500, city="Berlin")
    await _order_settled(c, cart)
    await c.set_order_status(SHOP, cart, "R", admin="ann")
    await c.edit_delivery(SHOP, cart, admin="bob", tracking_code="JJD0001")
    await c.set_order_status(SHOP, cart, "S", admin="bob")
    await _refused(c.set_order_status(SHOP, cart, "N", admin="bob"), "status_hidden")
    await c.handle(SHOP, cart).signal("set_order_status", {"admin": "bob", "status": "Q"})
    await c.add_order_note(SHOP, cart, "left the warehouse", admin="bob")
    await _order_settled(c, cart)
    await c.set_order_status(SHOP, cart, "V", admin="bob")
    await _finished(c, cart)


async def not_finished_order(c: CartkeeperClient, cart: str) -> None:
    """A locked cart (no return from the gateway) becomes an order when an admin sets
    its status (it gets its number then), and is cancelled: the stock comes back."""
    await _pay(c, cart)
    await _until(c, cart, CartState.LOCKED)
    await c.set_order_status(SHOP, cart, "O", admin="ann", note="customer called")
    await _order_settled(c, cart)
    await c.set_order_status(SHOP, cart, "I", admin="ann", note="customer cancelled")
    await _finished(c, cart)


async def offline_order_statuses(c: CartkeeperClient, cart: str) -> None:
    """An offline order: a partial payment while Awaiting makes it Awaiting with payments
    (the workflow reads the registry for it), the rest makes it paid; a refund; Complete
    needs the payments to cover the total; then Complete."""
    await c.update_cart(SHOP, cart, LINES, "EUR")
    await c.start_checkout(SHOP, cart)
    await c.start_payment(
        SHOP, cart, attempt_id="bank-1", method="offline", gateway="bank", amount=2100
    )
    await _order_settled(c, cart)
    await c.set_order_status(SHOP, cart, "A", admin="ann")
    await c.record_payment(SHOP, cart, admin="ann", amount=1000, currency="EUR", reference="t1")
    await _order_settled(c, cart)
    await c.record_payment(SHOP, cart, admin="ann", amount=1100, currency="EUR", reference="t2")
    await c.record_payment(SHOP, cart, admin="ann", kind="refund", amount=100, currency="EUR")
    await _refused(c.set_order_status(SHOP, cart, "C", admin="ann"), "payment_required")
    await c.record_payment(SHOP, cart, admin="ann", amount=100, currency="EUR")
    await _order_settled(c, cart)
    await c.set_order_status(SHOP, cart, "C", admin="ann")
    await _finished(c, cart)


SCENARIOS: dict[str, tuple[Scenario, CartPolicy]] = {
    "online_order": (online_order, CartPolicy(projection_interval_seconds=0.2)),
    "offline_order_paid_in_parts": (offline_order_paid_in_parts, CartPolicy()),
    "failed_then_pending_then_confirmed": (failed_then_pending_then_confirmed, CartPolicy()),
    "cart_changed_during_payment": (cart_changed_during_payment, CartPolicy()),
    "lock_unlock_abandon_expire": (lock_unlock_abandon_expire, FAST),
    "deleted_then_paid": (deleted_then_paid, FAST),
    "terminated_then_paid": (terminated_then_paid, CartPolicy()),
    "continued_as_new": (continued_as_new, CartPolicy(continue_as_new_after_events=25)),
    "lines_removed": (lines_removed, CartPolicy()),
    "operated_from_the_ui": (operated_from_the_ui, replace(FAST, lock_after_seconds=60)),
    "cancelled_from_the_ui": (cancelled_from_the_ui, CartPolicy()),
    "payment_for_an_unknown_cart": (payment_for_an_unknown_cart, CartPolicy()),
    "control_characters": (control_characters, CartPolicy(projection_interval_seconds=0.2)),
    "lock_alert": (lock_alert, replace(FAST, lock_alert_after_seconds=1, lifetime_seconds=3600)),
    "reminder_sequence": (
        reminder_sequence,
        replace(FAST, lifetime_seconds=3600, retire_after_seconds=3600),
    ),
    "order_phase": (
        order_phase,
        CartPolicy(projection_interval_seconds=0.2, retire_after_seconds=1),
    ),
    # the same, recorded under the patch ``order-effects-folded``: the new order's first
    # status read by the projection that numbers it, its effects' results written together
    "order_effects_folded": (
        order_phase,
        CartPolicy(projection_interval_seconds=0.2, retire_after_seconds=1),
    ),
    "not_finished_order": (
        not_finished_order,
        replace(FAST, lifetime_seconds=3600, retire_after_seconds=1),
    ),
    "offline_order_statuses": (
        offline_order_statuses,
        CartPolicy(projection_interval_seconds=0.2, retire_after_seconds=1),
    ),
    "keyed_updates": (keyed_updates, CartPolicy(continue_as_new_after_events=25)),
    # the failures, pending results and success of ``failed_then_pending_then_confirmed``
    # recorded under the patch ``signal-tasks-marked``: each signal that changed the cart
    # writes its version to the memo (``workflows.signal_marks``)
    "signal_tasks_marked": (failed_then_pending_then_confirmed, CartPolicy()),
}


async def _settled(c: CartkeeperClient, cart: str) -> None:
    for _ in range(100):
        full = await c.get_cart(SHOP, cart)
        if full.order is not None and full.order.paid and full.order.number is not None:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{cart} was never paid")


async def _until_attention(c: CartkeeperClient, cart: str) -> None:
    for _ in range(100):
        if (await c.get_cart(SHOP, cart)).attention:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{cart} never needed an admin")


async def _until_journal(c: CartkeeperClient, cart: str, kind: str) -> None:
    for _ in range(100):
        if any(entry.kind == kind for entry in (await c.get_cart(SHOP, cart)).journal):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{cart} never recorded {kind}")


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
    names = sys.argv[1:] or list(SCENARIOS)
    if not sys.argv[1:]:
        for old in HERE.glob("*.json"):  # a full recording replaces the set
            old.unlink()
    temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=f"sqlite+aiosqlite:///{tmp}/replay.db",
            task_queue="record",
        )
        await upgrade_database(settings.resolved_database_url())
        engine = make_engine(settings.resolved_database_url())
        _SESSIONS[:] = [make_session_factory(engine)]
        from starter.dev import start_mail_catcher

        catcher, settings = await start_mail_catcher(settings)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal,
            search_attributes=sa.ALL_KEYS,
            dev_server_log_level="error",
            data_converter=DATA_CONVERTER,
        )
        async with env:
            activities = CartActivities(make_session_factory(engine), env.client)
            async with build_worker(env.client, activities, settings):
                for name in names:
                    scenario, policy = SCENARIOS[name]
                    client = CartkeeperClient(
                        env.client, task_queue="record", policy_for=_fixed(policy)
                    )
                    await scenario(client, name)
                    await asyncio.sleep(0.5)
                    await _save(client.handle(SHOP, name), name)
        await engine.dispose()
        if catcher is not None:
            await catcher.stop()


async def write_expected() -> None:
    """Replay every history and keep the carts they end with (``test_replay`` compares)."""
    import json

    from tests.replay_carts import replayed_carts

    carts = await replayed_carts()
    known = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
    known.update({name: cart for name, cart in carts.items() if name not in known})
    EXPECTED.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
    print(f"wrote {EXPECTED.name}: {len(known)} carts")


if __name__ == "__main__":
    asyncio.run(main())
    if not sys.argv[1:] and EXPECTED.exists():
        EXPECTED.unlink()  # a full recording replaces the expectations too
    asyncio.run(write_expected())
