"""``workflows.clock``: a live workflow task on a replayed task's time fails, nothing else."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.cart_activities import CartActivities
from starter.client import CartkeeperClient
from tests.conftest import new_id
from worker import SANDBOX
from workflows.cart_workflow import CartWorkflow
from workflows.clock import ClockGuard, StaleWorkflowClock
from workflows.contract import CartLine, CartPolicy, workflow_id

SHOP = "clock-shop"
T0 = datetime(2026, 12, 1, 3, 31, 33, 270824, tzinfo=UTC)


def test_a_live_task_on_the_last_replayed_time_is_refused() -> None:
    """What the chaos run's stuck carts show: the fresh worker replayed the task that
    started at T0 and ran the new task on T0 again."""
    guard = ClockGuard()
    guard.note(T0 - timedelta(seconds=2), replaying=True, read_only=False)
    guard.note(T0, replaying=True, read_only=False)
    with pytest.raises(StaleWorkflowClock, match="not after the last replayed"):
        guard.note(T0, replaying=False, read_only=False)
    # every reading of that task is refused, until the task is given again
    with pytest.raises(StaleWorkflowClock):
        guard.note(T0, replaying=False, read_only=False)


def test_a_live_time_before_the_replayed_ones_is_refused() -> None:
    guard = ClockGuard()
    guard.note(T0, replaying=True, read_only=False)
    with pytest.raises(StaleWorkflowClock):
        guard.note(T0 - timedelta(microseconds=1), replaying=False, read_only=False)


def test_a_live_task_after_the_replayed_ones_runs_and_is_not_checked_again() -> None:
    guard = ClockGuard()
    guard.note(T0, replaying=True, read_only=False)
    guard.note(T0 + timedelta(microseconds=1), replaying=False, read_only=False)
    assert guard.live
    # a cached instance's later readings are live: not compared any more
    guard.note(T0, replaying=False, read_only=False)


def test_a_run_that_starts_live_and_read_only_readings_are_not_checked() -> None:
    guard = ClockGuard()
    guard.note(T0, replaying=False, read_only=False)  # nothing replayed: a new run
    assert guard.live
    reader = ClockGuard()
    reader.note(T0, replaying=True, read_only=False)
    reader.note(T0, replaying=False, read_only=True)  # a query, a validator
    assert not reader.live
    reader.note(T0 + timedelta(seconds=1), replaying=True, read_only=True)
    assert reader.replayed_until == T0


async def test_a_worker_that_replays_every_task_never_fails_one(
    dev_env: WorkflowEnvironment, session_factory: Any
) -> None:
    """No cache: every task is a full replay followed by the live task, the path the
    guard checks; with the true clock none of them fails (the history has no failed
    workflow task) and the cart ends where its messages took it."""
    queue = f"clock-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        dev_env.client,
        task_queue=queue,
        workflows=[CartWorkflow],
        activities=CartActivities(session_factory, dev_env.client).all(),
        workflow_runner=SANDBOX,
        max_cached_workflows=0,
    )
    policy = CartPolicy(projection_interval_seconds=0.3)
    carts = CartkeeperClient(dev_env.client, task_queue=queue, policy_for=lambda _s: policy)
    cart_id = new_id()
    async with worker:
        await carts.update_cart(
            SHOP, cart_id, [CartLine(sku="A", name="A", quantity=1, unit_price=500)], "EUR"
        )
        for n in range(4):
            await carts.record_visit(SHOP, cart_id, page=f"/p{n}")
        await carts.start_checkout(SHOP, cart_id)
        cart = await carts.get_cart(SHOP, cart_id)
        handle = dev_env.client.get_workflow_handle(workflow_id(SHOP, cart_id))
        history = await handle.fetch_history()
    kinds = [event.event_type for event in history.events]
    assert kinds.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) >= 6
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in kinds
    assert cart.state == "checkout"
