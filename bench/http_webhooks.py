"""Where the time from a payment webhook accepted to its order in the admin's list goes,
read from each paid cart's history (the http part, ``bench.http``).

The webhook is answered ``delivered`` once its ``payment_result`` signal is in the cart's
history; then a worker runs the workflow task that applies it, which schedules the
``project_cart`` activity that numbers the order and writes it to the read model; the
order is visible at the end of the next read of the orders list. So, per webhook:

- ``to_task``: the signal in the history -> the workflow task that applies it starts (the
  task waits for a worker);
- ``task``: that task's run (started -> completed);
- ``to_schedule``: that task completed -> the projection scheduled (0 when the task
  scheduled it; a projection already running or paused makes a later task schedule it);
- ``to_activity``: the projection scheduled -> started (near 0: the worker takes it
  eagerly with the task's completion, so a wait in the worker is inside ``activity``);
- ``activity``: the projection's run (the read model's write, the order's number);
- ``to_visible``: the projection completed -> the list showed the order (the list's
  polling, ``POLL_S``, and its read; below 0 when the list showed the order before the
  server recorded the completion, which the worker reports after its commit);
- ``retries``: the projection's attempts after the first (a failed write is retried).

Times are the server's event times and the bench's wall clock (one machine: the same
clock). The signal's time stands in for "accepted" (the answer leaves the web process
right after it).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.chaos_check import _event_time as _at
from bench.http_check import Updates
from workflows.contract import ACTIVITY_PROJECT_CART, workflow_id

PARTS = ("to_task", "task", "to_schedule", "to_activity", "activity", "to_visible")
#: histories read at once
CONCURRENCY = 8
#: slowest webhooks shown with their parts
SLOWEST = 10


def _ms(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() * 1000


def parts_of(events: Iterable[Any], visible_at: datetime) -> dict[str, float] | None:
    """The parts of one webhook's path, from its cart's history (``None`` when the
    history has no payment signal followed by a completed projection): the first
    projection scheduled after the signal numbers the order."""
    signal_at: datetime | None = None
    task_started: datetime | None = None
    task_done: datetime | None = None
    scheduled: dict[int, datetime] = {}
    started: dict[int, tuple[datetime, int]] = {}
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs = event.workflow_execution_signaled_event_attributes
            if attrs.signal_name == "payment_result" and signal_at is None:
                signal_at = _at(event)
        elif signal_at is None:
            continue
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and task_done is None:
            task_started = _at(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and task_started is not None:
            task_done = task_done or _at(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == ACTIVITY_PROJECT_CART:
                scheduled[event.event_id] = _at(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            if attrs.scheduled_event_id in scheduled:
                started[attrs.scheduled_event_id] = (_at(event), attrs.attempt)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs = event.activity_task_completed_event_attributes
            first = attrs.scheduled_event_id
            if first in scheduled and first in started:
                assert signal_at is not None and task_started is not None
                assert task_done is not None
                start, attempt = started[first]
                return {
                    "to_task": _ms(signal_at, task_started),
                    "task": _ms(task_started, task_done),
                    "to_schedule": _ms(task_done, scheduled[first]),
                    "to_activity": _ms(scheduled[first], start),
                    "activity": _ms(start, _at(event)),
                    "to_visible": _ms(_at(event), visible_at),
                    "retries": float(attempt - 1),
                }
    return None


async def breakdown(
    client: Client, shop: str, accepted_at: dict[str, datetime], visible_ms: dict[str, float]
) -> dict[str, Any]:
    """Each visible order's parts, and their percentiles (``parts``); the slowest
    webhooks with theirs (``slowest``); the histories not read, by reason (``unread``)."""
    limit = asyncio.Semaphore(CONCURRENCY)
    samples: dict[str, dict[str, float]] = {}
    unread: Counter[str] = Counter()

    async def one(cart_id: str) -> None:
        visible_at = accepted_at[cart_id].timestamp() + visible_ms[cart_id] / 1000
        async with limit:
            handle = client.get_workflow_handle(workflow_id(shop, cart_id))
            try:
                history = await handle.fetch_history()
            except Exception as error:  # (counted: the breakdown is a diagnosis)
                unread[f"fetch: {type(error).__name__}"] += 1
                return
        parts = parts_of(history.events, datetime.fromtimestamp(visible_at, UTC))
        if parts is None:
            unread["no projection completed after the signal"] += 1
        else:
            samples[cart_id] = parts

    await asyncio.gather(*(one(c) for c in visible_ms if c in accepted_at))
    slowest = sorted(samples, key=lambda c: -visible_ms[c])[:SLOWEST]
    return {
        "n": len(samples),
        "unread": dict(unread),
        "parts": {p: Updates.figures([s[p] for s in samples.values()]) for p in PARTS},
        "retried": sum(1 for s in samples.values() if s["retries"]),
        "slowest": [
            {"cart": c, "visible_ms": round(visible_ms[c], 1)}
            | {p: round(samples[c][p], 1) for p in (*PARTS, "retries")}
            for c in slowest
        ],
    }
