"""Where a reminder's time goes (the reminders part's breakdown).

``history_breakdown``: for sample carts spread over the due times, the steps between the
abandonment and the e-mail, from the workflow's history (server timestamps) and the SMTP
server's receive time:

- ``abandon_applied_s``: the first workflow task that starts at or after the abandonment
  deadline completes (the timer, the wait for a worker, a replay if the cart left the
  worker's cache, the task), minus the deadline;
- ``plan_queue_s`` / ``plan_run_s``: ``plan_reminders`` scheduled to started (waiting for
  an activity slot of the worker) and started to completed;
- ``send_scheduled_after_due_s``: ``send_reminder`` scheduled minus the reminder's due
  time (or minus the plan's completion, if that came after the due time): the timer and
  the workflow task that hands the reminder to sending;
- ``send_queue_s``: ``send_reminder`` scheduled to started;
- ``send_until_received_s``: started until the SMTP server had the message (the checks,
  the ledger's claim, rendering, the SMTP conversation);
- ``send_after_received_s``: until the activity completed (the ledger's ``sent``);
- ``workflow_task_queue_s`` / ``workflow_task_run_s``: every workflow task of the cart
  from its abandonment to the send's completion, scheduled to started and started to
  completed, summed per cart; ``workflow_tasks``: how many; ``workflow_tasks_not_sticky``:
  how many were not on the worker's sticky queue (the worker replays the cart's whole
  history for each: a first task after the cart left its cache, or a task that waited
  out the sticky queue's timeout, ``sticky_timeouts``, because the worker was busy).

``db_probe``: the read queries ``send_reminder`` makes, timed on the run's read model
(one of its carts), and SQLite's plan for the newer-cart query.

``send_probe`` and ``replay_probe``: what the worker's CPU per e-mail is made of, measured
in the bench process once the run is over: the ``send_reminder`` activity alone (and its
rendering and SMTP), and the workflow code (replayed histories).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil
from sqlalchemy import event, text
from temporalio.api.enums.v1 import EventType, TaskQueueKind, TimeoutType
from temporalio.client import Client

from activities import reminder_ledger as ledger
from activities.campaigns import load_campaign
from activities.db import SessionFactory
from activities.models import ReminderSend
from activities.reminder_checks import ReminderKey, cap_reached, newer_cart, suppressed
from activities.settings import Settings
from bench.mailsink import Received
from bench.measure import percentile, rounded
from workflows.contract import (
    ACTIVITY_PLAN_REMINDERS,
    ACTIVITY_SEND_REMINDER,
    GET_CART,
    Cart,
    workflow_id,
)
from workflows.converter import DATA_CONVERTER

STEPS = (
    "abandon_applied_s",
    "plan_queue_s",
    "plan_run_s",
    "send_scheduled_after_due_s",
    "send_queue_s",
    "send_until_received_s",
    "send_after_received_s",
    "lateness_s",
    "workflow_tasks",
    "workflow_tasks_not_sticky",
    "sticky_timeouts",
    "workflow_task_queue_s",
    "workflow_task_run_s",
)


@dataclass
class _Activity:
    name: str
    scheduled: datetime
    started: datetime | None = None
    completed: datetime | None = None
    attempt: int = 1


@dataclass
class _Task:
    scheduled: datetime
    started: datetime | None = None
    completed: datetime | None = None
    #: scheduled on the worker's sticky queue (else on the task queue: the worker that
    #: takes it replays the whole history)
    sticky: bool = False


@dataclass
class _History:
    activities: list[_Activity] = field(default_factory=list)
    tasks: list[_Task] = field(default_factory=list)
    #: when a workflow task waited out its sticky queue's timeout (schedule-to-start)
    sticky_timeouts: list[datetime] = field(default_factory=list)


def _time(event_: Any) -> datetime:
    return event_.event_time.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


def parse(events: Sequence[Any]) -> _History:
    out = _History()
    by_id: dict[int, _Activity] = {}
    task: _Task | None = None
    for ev in events:
        kind = ev.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = ev.activity_task_scheduled_event_attributes
            by_id[ev.event_id] = _Activity(attrs.activity_type.name, _time(ev))
            out.activities.append(by_id[ev.event_id])
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = ev.activity_task_started_event_attributes
            found = by_id.get(attrs.scheduled_event_id)
            if found is not None:
                found.started, found.attempt = _time(ev), attrs.attempt
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            found = by_id.get(ev.activity_task_completed_event_attributes.scheduled_event_id)
            if found is not None:
                found.completed = _time(ev)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            queue = ev.workflow_task_scheduled_event_attributes.task_queue
            task = _Task(_time(ev), sticky=queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and task is not None:
            task.started = _time(ev)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and task is not None:
            task.completed = _time(ev)
            out.tasks.append(task)
            task = None
        elif kind in (
            EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
            EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        ):
            if (
                kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
                and ev.workflow_task_timed_out_event_attributes.timeout_type
                == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
            ):
                out.sticky_timeouts.append(_time(ev))
            task = None
    return out


def _seconds(later: datetime | float | None, earlier: datetime | float | None) -> float | None:
    if later is None or earlier is None:
        return None
    a = later.timestamp() if isinstance(later, datetime) else later
    b = earlier.timestamp() if isinstance(earlier, datetime) else earlier
    return round(a - b, 3)


def breakdown_of(
    history: _History, due: datetime, delay_s: float, received_at: float | None
) -> dict[str, Any]:
    """The steps of one cart's first reminder (see the module's docstring)."""
    deadline = due.timestamp() - delay_s
    row: dict[str, Any] = {}
    applied = next(
        (t.completed for t in history.tasks if t.started and t.started.timestamp() >= deadline),
        None,
    )
    row["abandon_applied_s"] = _seconds(applied, deadline)
    plan = next((a for a in history.activities if a.name == ACTIVITY_PLAN_REMINDERS), None)
    send = next((a for a in history.activities if a.name == ACTIVITY_SEND_REMINDER), None)
    if plan is not None:
        row["plan_queue_s"] = _seconds(plan.started, plan.scheduled)
        row["plan_run_s"] = _seconds(plan.completed, plan.started)
    if send is not None:
        ready = max(due, plan.completed) if plan is not None and plan.completed else due
        row["send_scheduled_after_due_s"] = _seconds(send.scheduled, ready)
        row["send_queue_s"] = _seconds(send.started, send.scheduled)
        row["send_until_received_s"] = _seconds(received_at, send.started)
        row["send_after_received_s"] = _seconds(send.completed, received_at)
        row["send_attempt"] = send.attempt
        end = send.completed.timestamp() if send.completed else None
        tasks = [
            t
            for t in history.tasks
            if t.started is not None
            and t.started.timestamp() >= deadline
            and (end is None or t.scheduled.timestamp() <= end)
        ]
        row["workflow_tasks"] = len(tasks)
        row["workflow_tasks_not_sticky"] = sum(1 for t in tasks if not t.sticky)
        row["sticky_timeouts"] = sum(
            1
            for at in history.sticky_timeouts
            if at.timestamp() >= deadline and (end is None or at.timestamp() <= end)
        )
        row["workflow_task_queue_s"] = round(
            sum((t.started - t.scheduled).total_seconds() for t in tasks if t.started), 3
        )
        run = [
            (t.completed - t.started).total_seconds() for t in tasks if t.completed and t.started
        ]
        row["workflow_task_run_s"] = round(sum(run), 3)
    row["lateness_s"] = _seconds(received_at, due)
    return row


async def history_breakdown(
    client: Client,
    shop_id: str,
    rows: Sequence[ReminderSend],
    received: Sequence[Received],
    samples: int,
    delay_s: float,
) -> dict[str, Any]:
    """The steps of ``samples`` carts spread evenly over ``rows`` (the ledger's rows of
    the first reminder, by due time): per step p50/p90/max, and every sample."""
    if not rows or samples <= 0:
        return {"samples": []}
    first_seen: dict[str, float] = {}
    for message in received:
        if message.message_id and message.message_id not in first_seen:
            first_seen[message.message_id] = message.at
    picks = sorted({round(i * (len(rows) - 1) / max(samples - 1, 1)) for i in range(samples)})
    out_rows: list[dict[str, Any]] = []
    for index in picks:
        row = rows[index]
        assert row.due_at is not None
        try:
            history = await client.get_workflow_handle(
                workflow_id(shop_id, row.cart_id)
            ).fetch_history()
        except Exception as error:
            out_rows.append({"cart": row.cart_id, "error": str(error)[:200]})
            continue
        received_at = first_seen.get(row.message_id or "")
        item = breakdown_of(parse(history.events), row.due_at, delay_s, received_at)
        out_rows.append({"cart": row.cart_id, "rank": index, **item})
    steps: dict[str, Any] = {}
    for name in STEPS:
        values = [r[name] for r in out_rows if r.get(name) is not None]
        steps[name] = {
            "p50": rounded(percentile(values, 50), 3),
            "p90": rounded(percentile(values, 90), 3),
            "max": rounded(max(values) if values else None, 3),
            "mean": rounded(statistics.fmean(values) if values else None, 3),
        }
    return {"steps": steps, "samples": out_rows}


# --------------------------------------------------------------------------- database


async def _timed(call: Callable[[], Awaitable[Any]], reps: int) -> dict[str, Any]:
    values = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await call()
        values.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": round(statistics.median(values), 2), "max_ms": round(max(values), 2)}


async def db_probe(
    client: Client, sessions: SessionFactory, shop_id: str, rows: Sequence[ReminderSend]
) -> dict[str, Any]:
    """The read queries of ``send_reminder``, on the last cart's data, 20 times each."""
    if not rows:
        return {}
    row = rows[-1]
    cart: Cart = await client.get_workflow_handle(workflow_id(shop_id, row.cart_id)).query(
        GET_CART, result_type=Cart
    )
    assert cart.customer is not None
    email = cart.customer.email
    key = ReminderKey(shop_id, row.cart_id, row.lineage, row.reminder_id)
    campaign = await load_campaign(sessions, shop_id)
    assert campaign is not None
    now = datetime.now(UTC)
    reps = 20

    async def in_session(fn: Callable[[Any], Awaitable[Any]]) -> Any:
        async with sessions() as session:
            return await fn(session)

    out: dict[str, Any] = {
        "load_campaign": await _timed(lambda: load_campaign(sessions, shop_id), reps),
        "ledger_row": await _timed(lambda: in_session(lambda s: ledger.stored(s, key)), reps),
        "suppressed": await _timed(
            lambda: in_session(lambda s: suppressed(s, shop_id, email)), reps
        ),
        "newer_cart": await _timed(lambda: in_session(lambda s: newer_cart(s, cart, email)), reps),
        "cap_reached": await _timed(
            lambda: in_session(lambda s: cap_reached(s, key, email, campaign, now)), reps
        ),
    }
    # SQLite's plan for the newer-cart query, as the activity issues it
    async with sessions() as session:
        connection = await session.connection()
        if connection.dialect.name == "sqlite":
            captured: list[tuple[str, Any]] = []

            def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
                captured.append((statement, params))

            sync_engine = connection.engine.sync_engine
            event.listen(sync_engine, "before_cursor_execute", capture)
            try:
                await newer_cart(session, cart, email)
            finally:
                event.remove(sync_engine, "before_cursor_execute", capture)
            if captured:
                statement, params = captured[-1]
                raw = await connection.get_raw_connection()
                driver = raw.driver_connection
                assert driver is not None
                cursor = await driver.execute("EXPLAIN QUERY PLAN " + statement, params)
                out["newer_cart_plan"] = [str(r[-1]) for r in await cursor.fetchall()]
        count = await session.execute(
            text("SELECT count(*) FROM carts WHERE shop_id = :shop"), {"shop": shop_id}
        )
        out["carts_of_the_shop"] = int(count.scalar_one())
    return out


# --------------------------------------------------------------------------- worker CPU


def _cpu() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


async def send_probe(
    client: Client,
    sessions: SessionFactory,
    settings: Settings,
    shop_id: str,
    row: ReminderSend,
    count: int,
) -> dict[str, Any]:
    """The activities of a reminded cart run ``count`` times each in this process
    (``ActivityEnvironment``: no worker, no Temporal, alone on the event loop) on copies of
    a real cart under new ids, against the run's read model and SMTP server:
    ``plan_reminders``, ``send_reminder`` and ``project_cart``; and the pieces of a send:
    rendering the e-mail (``compose``) and the SMTP conversation. CPU of this process per
    call (SQLite works in aiosqlite's thread: counted)."""
    from temporalio.testing import ActivityEnvironment

    from activities.cart_activities import CartActivities
    from activities.reminder_activities import ReminderActivities
    from activities.reminder_mail import compose
    from activities.smtp import SmtpConfig, send_message
    from workflows.contract import PlanRemindersInput, ProjectCartInput, SendReminderInput

    cart: Cart = await client.get_workflow_handle(workflow_id(shop_id, row.cart_id)).query(
        GET_CART, result_type=Cart
    )
    customer, due_at = cart.customer, row.due_at
    assert customer is not None and due_at is not None
    acts = ReminderActivities(sessions, settings)
    env = ActivityEnvironment()

    def request(n: int) -> SendReminderInput:
        copy = dataclasses.replace(
            cart,
            cart_id=f"probe-{n:04d}",
            customer=dataclasses.replace(customer, email=f"probe-{n:04d}@probe.example.com"),
        )
        return SendReminderInput(
            cart=copy, reminder_id=row.reminder_id, sequence=1, due_at=due_at, variant=None
        )

    async def timed(name: str, call: Callable[[int], Awaitable[Any]]) -> list[Any]:
        await call(count)  # warm: templates, key, engine
        cpu0, t0 = _cpu(), time.perf_counter()
        results = [await call(n) for n in range(count)]
        wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
        out[f"{name}_wall_ms"] = round(wall * 1000 / count, 2)
        out[f"{name}_cpu_ms"] = round(cpu * 1000 / count, 2)
        return results

    out: dict[str, Any] = {"calls": count}
    await timed(
        "plan_reminders",
        lambda n: env.run(
            acts.plan_reminders,
            PlanRemindersInput(
                shop_id=shop_id,
                cart_id=f"probe-{n:04d}",
                lineage=row.lineage,
                sequence=1,
                abandoned_at=due_at,
                email=customer.email,
            ),
        ),
    )
    outcomes = await timed("send_reminder", lambda n: env.run(acts.send_reminder, request(n)))
    out["send_outcomes"] = dict(Counter(str(outcome.status) for outcome in outcomes))
    projector = CartActivities(sessions, client)
    await timed(
        "project_cart",
        lambda n: env.run(projector.project_cart, ProjectCartInput(cart=request(n).cart)),
    )
    campaign = await load_campaign(sessions, shop_id)
    assert campaign is not None
    definition = campaign.reminder(row.reminder_id)
    assert definition is not None
    key = ReminderKey(shop_id, cart.cart_id, row.lineage, row.reminder_id)
    messages = []
    cpu0 = _cpu()
    for _ in range(count):
        messages.append(
            compose(
                settings=settings,
                links=acts.links,
                renderer=acts.renderer,
                key=key,
                cart=cart,
                campaign=campaign,
                variant=definition.variant(None),
                message_id=row.message_id or "<probe@bench.example.com>",
                coupon=None,
                date=datetime.now(UTC),
            )
        )
    out["compose_cpu_ms"] = round((_cpu() - cpu0) * 1000 / count, 2)
    config = SmtpConfig.from_settings(settings)
    cpu0 = _cpu()
    for message in messages:
        await send_message(config, message)
    out["smtp_cpu_ms_both_ends"] = round((_cpu() - cpu0) * 1000 / count, 2)
    return out


async def replay_probe(
    client: Client, shop_id: str, cart_ids: Sequence[str], calibration: tuple[str, Sequence[str]]
) -> dict[str, Any]:
    """The workflow code's CPU per cart: replaying (in this process, the worker's
    sandbox) the histories of reminded carts and of calibration carts (created the same
    way, never abandoned). The difference is what the abandonment, the plan, the reminder
    and their projections cost the workflow, replayed in one go (live, the worker also
    pays the SDK per task, and a full replay when the cart left its cache)."""
    from temporalio.worker import Replayer

    from worker import WORKFLOW_RUNNER
    from workflows.cart_workflow import CartWorkflow

    replayer = Replayer(
        workflows=[CartWorkflow], workflow_runner=WORKFLOW_RUNNER, data_converter=DATA_CONVERTER
    )

    async def per_history(shop: str, ids: Sequence[str]) -> dict[str, Any]:
        histories = [
            await client.get_workflow_handle(workflow_id(shop, cart_id)).fetch_history()
            for cart_id in ids
        ]
        await replayer.replay_workflow(histories[0])  # warm
        cpu0 = _cpu()
        for history in histories:
            await replayer.replay_workflow(history)
        return {
            "carts": len(histories),
            "events_per_cart": round(statistics.fmean(len(h.events) for h in histories), 1),
            "cpu_ms_per_cart": round((_cpu() - cpu0) * 1000 / len(histories), 2),
        }

    reminded = await per_history(shop_id, cart_ids)
    created = await per_history(*calibration)
    return {
        "reminded": reminded,
        "created_only": created,
        "reminder_phase_cpu_ms": round(reminded["cpu_ms_per_cart"] - created["cpu_ms_per_cart"], 2),
    }
