"""The chaos run's invariant checker: every workflow and the read model, after the run.

- ``catch_up`` reads every cart from its workflow (``get_cart``) and every read-model row
  until each row holds its workflow's version (or a deadline passes);
- ``check`` counts what must never happen (see ``bench/README.md``);
- ``timer_lateness`` measures, from each workflow's history, how late the lock and abandon
  timers were applied.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import Client

from activities.db import SessionFactory
from activities.models import OrderNumber
from activities.read_model import CartRow, list_carts
from bench.chaos_shoppers import Delivered
from bench.measure import percentile
from workflows.contract import Cart, JournalKind, LockReason, PaymentStatus, workflow_id

#: the columns of a read-model row compared with the workflow
COMPARED = ("state", "version", "order_number", "order_paid", "needs_admin")


@dataclass
class Snapshot:
    carts: dict[str, Cart]
    rows: dict[str, CartRow]
    #: ``order_numbers``: (number, shop, cart, lineage)
    numbers: list[tuple[int, str, str, str]]
    #: carts whose workflow could not be read
    unreadable: list[str] = field(default_factory=list)


async def read_model(
    sessions: SessionFactory, shop_id: str
) -> tuple[dict[str, CartRow], list[tuple[int, str, str, str]]]:
    rows = await list_carts(sessions, shop_id=shop_id, limit=1_000_000)
    query = select(
        OrderNumber.number, OrderNumber.shop_id, OrderNumber.cart_id, OrderNumber.lineage
    ).where(OrderNumber.shop_id == shop_id)
    async with sessions() as session:
        numbers = [
            (int(n), str(s), str(c), str(lineage))
            for n, s, c, lineage in (await session.execute(query)).all()
        ]
    return {row.cart_id: row for row in rows}, numbers


async def read_workflows(
    get: Callable[[str], Awaitable[Cart]], cart_ids: Iterable[str], concurrency: int = 16
) -> tuple[dict[str, Cart], list[str]]:
    """Every cart from its workflow; the ids that could not be read."""
    carts: dict[str, Cart] = {}
    failed: list[str] = []
    ids = iter(sorted(set(cart_ids)))

    async def reader() -> None:
        for cart_id in ids:
            try:
                carts[cart_id] = await get(cart_id)
            except Exception:
                failed.append(cart_id)

    await asyncio.gather(*(reader() for _ in range(concurrency)))
    return carts, failed


async def catch_up(
    get: Callable[[str], Awaitable[Cart]],
    cart_ids: Iterable[str],
    sessions: SessionFactory,
    shop_id: str,
    within: float,
    say: Callable[[str], None],
) -> tuple[Snapshot, dict[str, Any]]:
    """Poll until every row's version equals its workflow's, or ``within`` seconds. A
    workflow that cannot be read three rounds in a row (its workflow task keeps failing)
    is not waited for: it is reported as unreadable."""
    started = time.monotonic()
    ids = set(cart_ids)
    rounds = 0
    unreadable_before: list[list[str]] = []
    while True:
        rounds += 1
        carts, unreadable = await read_workflows(get, ids)
        rows, numbers = await read_model(sessions, shop_id)
        behind = sorted(
            cart_id
            for cart_id, cart in carts.items()
            if cart_id not in rows or rows[cart_id].version != cart.version
        )
        elapsed = time.monotonic() - started
        unreadable = sorted(unreadable)
        unreadable_before.append(unreadable)
        stuck = len(unreadable_before) >= 3 and all(u == unreadable for u in unreadable_before[-3:])
        if not behind and (not unreadable or stuck):
            break
        if elapsed > within:
            say(f"  catch-up: gave up after {elapsed:.0f} s ({len(behind)} rows behind)")
            break
        say(f"  catch-up round {rounds}: {len(behind)} rows behind, {len(unreadable)} unread")
        await asyncio.sleep(2)
    info = {
        "seconds": round(time.monotonic() - started, 1),
        "rounds": rounds,
        "caught_up": not behind,
        "rows_behind": behind[:20],
        "unreadable": unreadable[:20],
    }
    return Snapshot(carts, rows, numbers, unreadable), info


# --------------------------------------------------------------------------- invariants


def _succeeded_in(cart: Cart, currency: str | None) -> int:
    return sum(
        p.succeeded_amount or 0
        for p in cart.payments
        if p.status is PaymentStatus.SUCCEEDED and p.succeeded_currency == currency
    )


def check(snapshot: Snapshot, delivered: list[Delivered]) -> tuple[dict[str, int], dict[str, Any]]:
    """The counts of ``chaos.json`` and the offending carts (a few of each)."""
    carts, rows = snapshot.carts, snapshot.rows
    examples: dict[str, list[Any]] = defaultdict(list)

    # lost_payments: a delivered success that is neither an order's payment nor flagged.
    lost = 0
    for payment in {(d.cart_id, d.attempt_id): d for d in delivered}.values():
        cart = carts.get(payment.cart_id)
        attempt = cart.attempt(payment.attempt_id) if cart else None
        succeeded = attempt is not None and attempt.status is PaymentStatus.SUCCEEDED
        counted = (
            cart is not None
            and cart.order is not None
            and succeeded
            and attempt is not None
            and attempt.succeeded_currency == cart.order.currency
        )
        flagged = cart is not None and any(
            item.attempt_id == payment.attempt_id for item in cart.attention
        )
        if not succeeded or not (counted or flagged):
            lost += 1
            examples["lost_payments"].append(
                {
                    "cart": payment.cart_id,
                    "attempt": payment.attempt_id,
                    "state": str(cart.state) if cart else None,
                    "attempt_status": str(attempt.status) if attempt else None,
                }
            )

    # duplicate_orders: two orders on one cart (the journal), or two numbers for one cart.
    duplicates: set[str] = set()
    truncated = 0
    for cart_id, cart in carts.items():
        created = sum(1 for e in cart.journal if e.kind is JournalKind.ORDER_CREATED)
        truncated += cart.journal_dropped > 0
        if created > 1:
            duplicates.add(cart_id)
            examples["duplicate_orders"].append({"cart": cart_id, "order_created": created})
    numbers_per_cart = Counter(cart_id for _n, _s, cart_id, _l in snapshot.numbers)
    for cart_id, count in numbers_per_cart.items():
        if count > 1:
            duplicates.add(cart_id)
            examples["duplicate_orders"].append({"cart": cart_id, "order_numbers": count})

    # duplicate_numbers: a number on two carts (workflows), or a cart whose number the
    # read model allocated to another cart.
    carts_by_number: dict[int, set[str]] = defaultdict(set)
    for cart_id, cart in carts.items():
        if cart.order is not None and cart.order.number is not None:
            carts_by_number[cart.order.number].add(cart_id)
    owner = {number: cart_id for number, _s, cart_id, _l in snapshot.numbers}
    duplicate_numbers = 0
    for number, holders in carts_by_number.items():
        foreign = {c for c in holders if owner.get(number, c) != c}
        if len(holders) > 1 or foreign:
            duplicate_numbers += 1
            examples["duplicate_numbers"].append(
                {"number": number, "carts": sorted(holders), "allocated_to": owner.get(number)}
            )

    # paid_flag_wrong: paid iff the succeeded payments in the order's currency cover it.
    paid_wrong = amount_wrong = without_number = 0
    for cart_id, cart in carts.items():
        order = cart.order
        if order is None:
            continue
        paid = _succeeded_in(cart, order.currency)
        if order.paid != (paid >= order.total):
            paid_wrong += 1
            examples["paid_flag_wrong"].append(
                {"cart": cart_id, "paid": order.paid, "succeeded": paid, "total": order.total}
            )
        amount_wrong += order.amount_paid != paid
        if order.number is None:
            without_number += 1
            examples["orders_without_number"].append(cart_id)

    # read_model_mismatches: rows that differ from their workflow (or are missing).
    mismatches = 0
    for cart_id, cart in carts.items():
        row = rows.get(cart_id)
        expected = {
            "state": cart.state,
            "version": cart.version,
            "order_number": cart.order.number if cart.order else None,
            "order_paid": bool(cart.order and cart.order.paid),
            "needs_admin": cart.needs_admin,
        }
        if row is None:
            mismatches += 1
            examples["read_model_mismatches"].append({"cart": cart_id, "row": None})
            continue
        differs = {
            name: {"workflow": str(value), "row": str(getattr(row, name))}
            for name, value in expected.items()
            if getattr(row, name) != value
        }
        if differs:
            mismatches += 1
            examples["read_model_mismatches"].append({"cart": cart_id, **differs})
    orphans = sorted(set(rows) - set(carts) - set(snapshot.unreadable))
    mismatches += len(orphans)
    examples["read_model_mismatches"] += [{"cart": c, "workflow": None} for c in orphans]

    counts = {
        "lost_payments": lost,
        "duplicate_orders": len(duplicates),
        "duplicate_numbers": duplicate_numbers,
        "paid_flag_wrong": paid_wrong,
        "read_model_mismatches": mismatches,
        "orders_without_number": without_number,
    }
    details = {
        "carts_checked": len(carts),
        "carts_unreadable": len(snapshot.unreadable),
        "rows": len(rows),
        "order_numbers": len(snapshot.numbers),
        "orders": sum(1 for c in carts.values() if c.order is not None),
        "orders_paid": sum(1 for c in carts.values() if c.order is not None and c.order.paid),
        "delivered_successes": len(delivered),
        "distinct_successes": len({(d.cart_id, d.attempt_id) for d in delivered}),
        "amount_paid_wrong": amount_wrong,
        "journals_truncated": truncated,
        "states": dict(Counter(str(c.state) for c in carts.values())),
        "open_attention": dict(
            Counter(str(item.kind) for c in carts.values() for item in c.open_attention)
        ),
        "examples": {key: value[:10] for key, value in examples.items()},
    }
    return counts, details


# --------------------------------------------------------------------------- timers


def _at(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def timer_deadlines(cart: Cart) -> list[tuple[str, datetime]]:
    """The cart's timer transitions: (``lock`` | ``abandon``, deadline). A timer writes its
    journal entry at its deadline (``workflows.timers.fire``); a lock for a ``pending``
    result is not a timer."""
    out = []
    for entry in cart.journal:
        if entry.kind is JournalKind.CART_ABANDONED:
            out.append(("abandon", _at(entry.at)))
        elif entry.kind is JournalKind.CART_LOCKED and entry.detail == str(
            LockReason.NO_PAYMENT_RESULT
        ):
            out.append(("lock", _at(entry.at)))
    return out


def _event_time(event: Any) -> datetime:
    at: datetime = event.event_time.ToDatetime(tzinfo=UTC)
    return at


def applied_times(events: Iterable[Any]) -> list[tuple[datetime, datetime]]:
    """(started, completed) of every completed workflow task, from a history."""
    tasks = []
    started: datetime | None = None
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started = _event_time(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and started is not None:
            tasks.append((started, _event_time(event)))
            started = None
        elif kind in (
            EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
            EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        ):
            started = None
    return tasks


def lateness_breakdown(events: list[Any], deadline: datetime, done: datetime) -> dict[str, Any]:
    """Where a late timer's time went, from the history between its deadline and the
    completion of the task that applied it (seconds after the deadline): the server's
    timer (``fired_s``), the applying task's scheduling, start and completion (its wait
    for a worker and its replay and run), the tasks lost on the way (``timed_out``: a
    killed worker's sticky queue, ``schedule_to_start``, or a task it had started,
    ``start_to_close``), and the worker that applied it."""

    def after(moment: datetime) -> float:
        return round((moment - deadline).total_seconds(), 3)

    out: dict[str, Any] = {"fired_s": None, "timed_out": [], "failed": 0}
    scheduled: datetime | None = None
    for event in events:
        at = _event_time(event)
        if at > done:
            break
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            scheduled = at
        if at < deadline:
            continue
        if kind == EventType.EVENT_TYPE_TIMER_FIRED and out["fired_s"] is None:
            out["fired_s"] = after(at)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            timeout = event.workflow_task_timed_out_event_attributes.timeout_type
            out["timed_out"].append(
                {"at_s": after(at), "type": TimeoutType.Name(timeout).removeprefix("TIMEOUT_TYPE_")}
            )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            out["failed"] += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            out["scheduled_s"] = after(scheduled) if scheduled is not None else None
            out["started_s"] = after(at)
            out["worker"] = event.workflow_task_started_event_attributes.identity
    out["done_s"] = after(done)
    return out


def _parts(samples: list[dict[str, Any]], stats: Any) -> dict[str, Any]:
    """The breakdowns summed up: how long after the deadline the applying task started
    (the server's timer, the wait for a worker, tasks lost with killed workers), how long
    that task took (a fresh worker's replay, and the run), and how many samples lost a
    task of each kind of timeout on the way."""
    parts = [s["breakdown"] for s in samples if "started_s" in s["breakdown"]]
    lost: Counter[str] = Counter(t["type"] for p in parts for t in p["timed_out"])
    return {
        "until_task_started": stats([p["started_s"] for p in parts]),
        "task_run": stats([round(p["done_s"] - p["started_s"], 3) for p in parts]),
        "timer_fired": stats([p["fired_s"] for p in parts if p["fired_s"] is not None]),
        "samples_with_lost_tasks": sum(1 for p in parts if p["timed_out"]),
        "lost_tasks_by_timeout": dict(lost),
    }


async def timer_lateness(
    client: Client,
    shop_id: str,
    carts: dict[str, Cart],
    windows: dict[str, list[tuple[datetime, datetime]]],
    exclude: str = "db_outage",
) -> dict[str, Any]:
    """How late each lock and abandon timer was applied.

    The workflow applies a due timer in the first workflow task that starts at or after
    its deadline (``workflow.now()`` is that task's start; ``machine.tick`` fires every
    timer due by then), and the change is durable when that task completes. So the
    lateness of a timer is (the completion time of the first completed workflow task
    started at or after the deadline) minus the deadline, both from the server's history:
    it includes the server's timer, the wait for a worker (a killed worker's sticky queue
    times out first), replay and the task itself. Deadlines inside ``exclude``'s windows
    are reported apart and left out of ``p99_s``.
    """
    samples: list[dict[str, Any]] = []
    unmeasured = 0
    for cart_id, cart in sorted(carts.items()):
        deadlines = timer_deadlines(cart)
        if not deadlines:
            continue
        handle = client.get_workflow_handle(workflow_id(shop_id, cart_id))
        try:
            history = await handle.fetch_history()
        except Exception:
            unmeasured += len(deadlines)
            continue
        events = list(history.events)
        tasks = applied_times(events)
        for kind, deadline in deadlines:
            done = next((end for start, end in tasks if start >= deadline), None)
            if done is None:  # in an earlier run (continue-as-new): not measured here
                unmeasured += 1
                continue
            inside = [
                name
                for name, spans in windows.items()
                for start, end in spans
                if start <= deadline <= end
            ]
            samples.append(
                {
                    "cart": cart_id,
                    "timer": kind,
                    "deadline": deadline.isoformat(),
                    "lateness_s": round((done - deadline).total_seconds(), 3),
                    "windows": inside,
                    "breakdown": lateness_breakdown(events, deadline, done),
                }
            )
    kept = [s["lateness_s"] for s in samples if exclude not in s["windows"]]
    excluded = [s["lateness_s"] for s in samples if exclude in s["windows"]]
    # Also without the timers still pending at any time during the outage (due shortly
    # before it, applied after it): the outage delayed them too.
    spans = windows.get(exclude, [])

    def pending_in_outage(sample: dict[str, Any]) -> bool:
        deadline = datetime.fromisoformat(sample["deadline"])
        applied = deadline + timedelta(seconds=sample["lateness_s"])
        return any(deadline <= end and applied >= start for start, end in spans)

    untouched = [s["lateness_s"] for s in samples if not pending_in_outage(s)]

    def stats(values: list[float]) -> dict[str, Any]:
        return {
            "n": len(values),
            "p50_s": percentile(values, 50),
            "p90_s": percentile(values, 90),
            "p99_s": percentile(values, 99),
            "max_s": max(values) if values else None,
        }

    by_window: dict[str, list[float]] = defaultdict(list)
    for s in samples:
        for name in s["windows"] or ["none"]:
            by_window[name].append(s["lateness_s"])
    return {
        "p99_s": percentile(kept, 99),
        "note": f"measured leaves out deadlines inside {exclude}; by_window and by_timer"
        " count every sample",
        "measured": stats(kept),
        f"in_{exclude}": stats(excluded),
        f"not_pending_during_{exclude}": stats(untouched),
        "by_window": {name: stats(values) for name, values in sorted(by_window.items())},
        "by_timer": {
            kind: stats([s["lateness_s"] for s in samples if s["timer"] == kind])
            for kind in ("lock", "abandon")
        },
        "parts": _parts(samples, stats),
        "unmeasured": unmeasured,
        "latest": sorted(samples, key=lambda s: -s["lateness_s"])[:10],
        "samples": samples,
    }
