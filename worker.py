"""The cartkeeper worker: runs the cart workflows and their activities.

    python worker.py            # or: cartkeeper worker

Connects as the SDK's environment configuration says (``TEMPORAL_ADDRESS`` ...), migrates
the read model, and polls until SIGTERM or SIGINT, then shuts down gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.cart_activities import CartActivities
from activities.db import make_engine, make_session_factory, upgrade_database
from activities.settings import Settings, get_settings
from starter.connect import connect
from workflows.cart_workflow import CartWorkflow

log = logging.getLogger("cartkeeper.worker")

#: Our workflow-side modules are deterministic and import nothing heavy: pass them through
#: the sandbox instead of re-importing them for every workflow run.
SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)


def build_worker(
    client: Client,
    activities: CartActivities,
    settings: Settings,
    *,
    extra_workflows: Sequence[type] = (),
    **options: Any,
) -> Worker:
    """The worker for ``settings.task_queue`` (tests and the benchmark use it too)."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[CartWorkflow, *extra_workflows],
        activities=[
            activities.load_cart_record,
            activities.project_cart,
            activities.allocate_order_number,
        ],
        workflow_runner=SANDBOX,
        max_cached_workflows=settings.max_cached_workflows,
        max_concurrent_activities=settings.max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=10),
        **options,
    )


async def run_worker(
    client: Client, settings: Settings, stop: asyncio.Event | None = None
) -> None:
    """Migrate the read model, then run the worker until ``stop`` is set (or forever)."""
    url = settings.resolved_database_url()
    await upgrade_database(url)
    engine = make_engine(url)
    try:
        worker = build_worker(client, CartActivities(make_session_factory(engine)), settings)
        async with worker:
            log.info(
                "worker polling task queue %r on %s (namespace %s)",
                settings.task_queue,
                client.service_client.config.target_host,
                client.namespace,
            )
            await (stop or asyncio.Event()).wait()
            log.info("worker stopping")
    finally:
        await engine.dispose()


async def main(address: str | None = None, namespace: str | None = None) -> None:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    client = await connect(address, namespace)
    await run_worker(client, settings, stop)


if __name__ == "__main__":
    asyncio.run(main())
