"""A signal's workflow task never completes empty (``workflows.signal_marks``).

Core folds a workflow task that completed with no command (and nothing between it and the
next task) into the next one when a worker that does not hold the cart replays its
history, unless it can see that the next task carries an update: a fresh worker, taking a
task whose update is still a message (not yet in the history), applies the signal of the
empty task at the next task's time, while a later replay, which sees the update accepted
in the history, applies it at its own. The cart's commands then differ and its workflow
is stuck (``bench/known_issues``: four carts under ``make chaos``). Here the same
sequence on purpose: a payment failure signalled while the loop's alarm rings before
anything the failure makes due, the worker gone, a timer and an update waiting, a fresh
worker; then the history replays."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from activities.cart_activities import CartActivities
from activities.settings import Settings
from starter.client import CartkeeperClient
from tests.conftest import new_id
from tests.test_workflow_dev import LINES, SHOP, TOTAL
from worker import WORKFLOW_RUNNER, build_worker
from workflows.cart_workflow import CartWorkflow
from workflows.contract import CartPolicy, workflow_id
from workflows.converter import DATA_CONVERTER

#: the read model written 4 s after a change; a cart at the gateway locked after 8 s
POLICY = CartPolicy(projection_interval_seconds=4, lock_after_seconds=8)


async def test_a_signal_applied_in_a_task_of_its_own_replays_as_it_ran(
    dev_env: Any, session_factory: Any, settings: Settings
) -> None:
    client = dev_env.client
    queue = f"fold-{new_id()}"
    tuned = settings.model_copy(update={"task_queue": queue, "sticky_timeout_seconds": 0.5})
    carts = CartkeeperClient(client, task_queue=queue, policy_for=lambda _s: POLICY)
    cart_id = new_id()

    def worker() -> Any:
        return build_worker(client, CartActivities(session_factory, client), tuned)

    async with worker():
        # t = 0: the cart's changes wait 4 s for the read model
        await carts.update_cart(SHOP, cart_id, LINES, "EUR")
        await carts.start_checkout(SHOP, cart_id)
        await asyncio.sleep(2.0)
        # t = 2: at the gateway (locked at 10, if no result comes)
        await carts.start_payment(
            SHOP, cart_id, attempt_id="a1", method="online", gateway="stripe", amount=TOTAL
        )
        await asyncio.sleep(4.5)
        # t = 6.5: the read model written at 4, the search attributes at 6; the loop's
        # alarm rings at 10 (the lock). A failure sends the cart back to checkout; its
        # write is due at 10.5, after the alarm: its task completes with no command.
        await carts.report_payment_result(
            SHOP, cart_id, attempt_id="a1", status="failed", amount=TOTAL
        )
        await asyncio.sleep(0.3)
    # The worker is gone. The shopper tries again before the alarm rings (a task is
    # scheduled right after the empty one), and the alarm rings while it waits.
    retry = asyncio.create_task(
        carts.start_payment(
            SHOP, cart_id, attempt_id="a2", method="online", gateway="stripe", amount=TOTAL
        )
    )
    await asyncio.sleep(5.5)  # t = 12: past the alarm and the failure's write (10.5)
    async with worker():  # a fresh worker: the whole history, the update as a message
        await asyncio.wait_for(retry, 30)
        await asyncio.sleep(6.0)  # its next tasks

    handle = client.get_workflow_handle(workflow_id(SHOP, cart_id))
    history: WorkflowHistory = await handle.fetch_history()
    # The shape the test needs (a loaded machine could shift it): the failure's task
    # carries the mark, and the next task was scheduled (for the update) before the
    # alarm rang, while no worker was there.
    events = [event.event_type for event in history.events]
    signalled = events.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    completed = events.index(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, signalled)
    after = events[completed + 1 :]
    scheduled = after.index(EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)
    assert EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED in after[:scheduled], after[:6]
    fired = after.index(EventType.EVENT_TYPE_TIMER_FIRED)
    assert scheduled < fired, "the update's task must wait when the alarm rings"
    replayer = Replayer(
        workflows=[CartWorkflow], workflow_runner=WORKFLOW_RUNNER, data_converter=DATA_CONVERTER
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
