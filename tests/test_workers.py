"""Several workers, safely: two worker processes on one PostgreSQL read model under
concurrent checkouts use no order number twice and lose no payment."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import PollerBehaviorAutoscaling, PollerBehaviorSimpleMaximum

from activities.cart_activities import CartActivities
from activities.models import OrderNumber
from activities.settings import Settings
from starter.client import CartkeeperClient
from tests.conftest import new_id
from tests.outage import OutageDatabase, outage_database
from workflows.contract import CartLine, CartPolicy, CartState, CartView

REPO = Path(__file__).resolve().parent.parent
SHOP = "workers"


@asynccontextmanager
async def worker_processes(
    client: Client, database_url: str, task_queue: str, count: int
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """``count`` real worker processes (``python worker.py``), polling ``task_queue``."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": client.namespace,
        "DATABASE_URL": database_url,
        "CARTKEEPER_TASK_QUEUE": task_queue,
        "CARTKEEPER_LOG_LEVEL": "WARNING",
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(REPO / "worker.py"),
            cwd=str(REPO),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(count)
    ]
    try:
        for _ in range(300):
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
            if len({poller.identity for poller in response.pollers}) >= count:
                break
            for process in processes:
                if process.returncode is not None:
                    assert process.stderr is not None
                    raise AssertionError((await process.stderr.read()).decode()[-2000:])
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the workers did not poll")
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.wait(), 30)


async def checkout(carts: CartkeeperClient, cart_id: str, rng: random.Random) -> None:
    lines = [CartLine("tea", "Tea", rng.randint(1, 3), 450)]
    await carts.update_cart(SHOP, cart_id, lines, "EUR")
    total = lines[0].subtotal
    if rng.random() < 0.3:
        await carts.start_payment(
            SHOP, cart_id, attempt_id="bank", method="offline", gateway="bank", amount=total
        )
        await carts.report_payment_result(
            SHOP, cart_id, attempt_id="bank", status="succeeded", amount=total
        )
        return
    await carts.start_checkout(SHOP, cart_id)
    await carts.start_payment(
        SHOP, cart_id, attempt_id="card", method="online", gateway="stripe", amount=total
    )
    # Gateways deliver at least once, sometimes concurrently.
    deliveries = [
        carts.report_payment_result(
            SHOP, cart_id, attempt_id="card", status="succeeded", amount=total
        )
        for _ in range(rng.randint(1, 3))
    ]
    await asyncio.gather(*deliveries)


@pytest.mark.parametrize("workers", [2])
async def test_two_workers_share_one_postgresql_read_model(
    dev_env: WorkflowEnvironment, tmp_path: Path, workers: int
) -> None:
    async with outage_database("postgresql", tmp_path) as database:
        task_queue = f"workers-{new_id()}"
        async with worker_processes(dev_env.client, database.url, task_queue, workers):
            carts = CartkeeperClient(
                dev_env.client,
                task_queue=task_queue,
                policy_for=lambda _shop: CartPolicy(projection_interval_seconds=0.5),
            )
            rng = random.Random(7)
            cart_ids = [new_id() for _ in range(40)]
            await asyncio.gather(
                *(checkout(carts, c, random.Random(rng.random())) for c in cart_ids)
            )
            views = await asyncio.gather(*(carts.await_order(SHOP, c, 30) for c in cart_ids))
            await check(carts, database, cart_ids, views)


async def check(
    carts: CartkeeperClient, database: OutageDatabase, cart_ids: list[str], views: list[CartView]
) -> None:
    numbers = [view.order_number for view in views]
    assert None not in numbers, "every order got its number"
    assert len(set(numbers)) == len(cart_ids), "no number used twice"
    for cart_id in cart_ids:
        cart = await carts.get_cart(SHOP, cart_id)
        assert cart.state is CartState.ORDERED and cart.order is not None
        assert cart.order.paid, "no payment lost"
        assert cart.attention == []
    async with database.session_factory() as session:
        rows = await session.scalar(
            select(func.count()).select_from(OrderNumber).where(OrderNumber.shop_id == SHOP)
        )
        distinct = await session.scalar(
            select(func.count(func.distinct(OrderNumber.cart_id))).where(
                OrderNumber.shop_id == SHOP
            )
        )
    assert rows == distinct == len(cart_ids), "one number per order, none wasted on a race"


async def test_a_sqlite_read_model_with_a_remote_temporal_is_refused(tmp_path: Path) -> None:
    """``cartkeeper worker`` against a Temporal on another host with the default SQLite
    read model exits 2 with a clear error, unless explicitly allowed."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": "temporal.example.invalid:7233",
        "CARTKEEPER_DATA_DIR": str(tmp_path),
    }
    env.pop("DATABASE_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from starter.cli import main; main(['worker'])",
        cwd=str(REPO),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    text = err.decode()
    assert process.returncode == 2, text
    assert text.startswith("error: unsafe_configuration:") and "DATABASE_URL" in text
    assert "CARTKEEPER_ALLOW_SQLITE_WITH_REMOTE_TEMPORAL" in text


async def test_a_worker_scales_its_polls_with_the_backlog(
    dev_env: WorkflowEnvironment, session_factory: Any, settings: Settings
) -> None:
    """The workflow-task polls follow the server's hints about waiting tasks (the task
    queue, where the carts the worker does not hold wait, each a full replay): by
    default autoscaled from 8 polls between 2 and 32; the sticky queue's timeout too, and
    a fixed number of polls when autoscaling is off: all from the settings."""
    from worker import build_worker

    assert settings.workflow_task_poller_autoscaling
    tuned = settings.model_copy(
        update={
            "workflow_task_pollers": 12,
            "workflow_task_pollers_max": 40,
            "nonsticky_poll_ratio": 0.5,
            "sticky_timeout_seconds": 2,
        }
    )
    for given, initial, maximum, sticky in ((settings, 8, 32, 1), (tuned, 12, 40, 2)):
        given = given.model_copy(update={"task_queue": f"polls-{new_id()}"})  # one per queue
        worker = build_worker(
            dev_env.client, CartActivities(session_factory, dev_env.client), given
        )
        config = worker.config()
        behaviour = config["workflow_task_poller_behavior"]
        assert isinstance(behaviour, PollerBehaviorAutoscaling)
        assert (behaviour.minimum, behaviour.initial, behaviour.maximum) == (2, initial, maximum)
        assert config["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=sticky)

    fixed = tuned.model_copy(
        update={"workflow_task_poller_autoscaling": False, "task_queue": f"polls-{new_id()}"}
    )
    config = build_worker(
        dev_env.client, CartActivities(session_factory, dev_env.client), fixed
    ).config()
    behaviour = config["workflow_task_poller_behavior"]
    assert isinstance(behaviour, PollerBehaviorSimpleMaximum)
    assert behaviour.maximum == 12
    assert config["nonsticky_to_sticky_poll_ratio"] == 0.5
    # Core's split: at most max(1, floor(polls x ratio)) polls on the task queue, the
    # rest (at least 1) on the sticky queue; both at least 4 here
    on_the_task_queue = max(1, int(behaviour.maximum * 0.5))
    on_the_sticky_queue = max(1, behaviour.maximum - on_the_task_queue)
    assert min(on_the_task_queue, on_the_sticky_queue) >= 4


def test_the_polls_ceiling_is_not_below_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ceiling below the polls a worker starts with is refused, naming both variables."""
    monkeypatch.setenv("CARTKEEPER_WORKFLOW_TASK_POLLERS", "16")
    monkeypatch.setenv("CARTKEEPER_WORKFLOW_TASK_POLLERS_MAX", "8")
    with pytest.raises(ValidationError) as raised:
        Settings()
    (problem,) = raised.value.errors()
    assert problem["loc"] == ("workflow_task_pollers_max",)
    assert "CARTKEEPER_WORKFLOW_TASK_POLLERS (16)" in problem["msg"]
