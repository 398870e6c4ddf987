"""The cartkeeper worker: runs the cart workflows and their activities.

    python worker.py            # or: cartkeeper worker

Connects as the SDK's environment configuration says (``TEMPORAL_ADDRESS`` ...), migrates
the read model, and polls until SIGTERM or SIGINT, then shuts down gracefully.

Several workers share one read model, which must then be a database server: a worker
that talks to a Temporal server on another host with a SQLite read model is refused
(other hosts' workers would keep their own file and allocate the same order numbers),
unless ``CARTKEEPER_ALLOW_SQLITE_WITH_REMOTE_TEMPORAL=true`` says this is deliberate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.alerts import admin_alert_activities
from activities.cart_activities import CartActivities
from activities.db import make_engine, make_session_factory, upgrade_database
from activities.order_activities import order_activities
from activities.reminder_activities import ReminderActivities
from activities.settings import Settings, get_settings
from starter.connect import connect, resolved_address
from starter.errors import EXIT_USAGE, Failure
from starter.schedules import start_digest_schedules
from workflows.cart_workflow import CartWorkflow
from workflows.digest_workflow import DailyDigest

log = logging.getLogger("cartkeeper.worker")

#: Our workflow-side modules are deterministic and import nothing heavy: pass them through
#: the sandbox instead of re-importing them for every workflow run.
SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)


def sandbox(passthrough: Sequence[str] = ()) -> SandboxedWorkflowRunner:
    """The workflow sandbox: ``SANDBOX``, or one that also passes ``passthrough`` modules
    through (the benchmark's floor workflow lives in ``bench``)."""
    if not passthrough:
        return SANDBOX
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows", *passthrough)
    )


def build_worker(
    client: Client,
    activities: CartActivities,
    settings: Settings,
    *,
    extra_workflows: Sequence[type] = (),
    extra_activities: Sequence[Callable[..., Any]] = (),
    sandbox_passthrough: Sequence[str] = (),
    **options: Any,
) -> Worker:
    """The worker for ``settings.task_queue`` (tests and the benchmark use it too): the
    cart's activities, and the e-mail ones on the same sessions and ``settings``."""
    sessions = activities.session_factory
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[CartWorkflow, DailyDigest, *extra_workflows],
        activities=[
            *activities.all(),
            *ReminderActivities(sessions, settings).all(),
            *admin_alert_activities(sessions, settings),
            *order_activities(sessions, settings),
            *extra_activities,
        ],
        workflow_runner=sandbox(sandbox_passthrough),
        max_cached_workflows=settings.max_cached_workflows,
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        graceful_shutdown_timeout=timedelta(seconds=10),
        # A task sent to a worker that died waits this long on its sticky queue before
        # any worker may take it (the SDK's default is 10 s).
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.sticky_timeout_seconds),
        **options,
    )


LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"})


def temporal_host(target: str) -> str:
    """The host part of a Temporal address (``host:port``, ``[v6]:port``)."""
    target = target.split("://", 1)[-1]
    if target.startswith("["):
        return target[: target.find("]") + 1]
    return target.rsplit(":", 1)[0] if ":" in target else target


def check_deployment(temporal: str | Client, settings: Settings) -> None:
    """Refuse a SQLite read model with a Temporal server (an address ``host:port``, or a
    connected client) on another host (see above)."""
    url = settings.resolved_database_url()
    if not url.startswith("sqlite") or settings.allow_sqlite_with_remote_temporal:
        return
    target = temporal if isinstance(temporal, str) else temporal.service_client.config.target_host
    host = temporal_host(target)
    if host.lower() in LOCAL_HOSTS:
        return
    raise Failure(
        "unsafe_configuration",
        f"the read model is SQLite ({url}) but Temporal is at {host}: workers on other"
        " hosts would keep their own database and allocate the same order numbers. Set"
        " DATABASE_URL to a PostgreSQL server shared by every worker, or"
        " CARTKEEPER_ALLOW_SQLITE_WITH_REMOTE_TEMPORAL=true if this is the only worker",
        EXIT_USAGE,
    )


async def run_worker(
    client: Client,
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    extra_workflows: Sequence[type] = (),
    extra_activities: Sequence[Callable[..., Any]] = (),
    sandbox_passthrough: Sequence[str] = (),
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Migrate the read model, then run the worker until ``stop`` is set (or forever).
    ``on_ready`` is called once the worker polls (``starter.workerprocess`` reports it to
    the process that launched it); the other options go to ``build_worker``.

    A read model that cannot be reached does not keep the worker from starting: carts
    must still change and their timers fire during a database outage. The migration is
    then retried in the background (the effect activities retry meanwhile)."""
    check_deployment(client, settings)
    url = settings.resolved_database_url()
    migrating: asyncio.Task[None] | None = None
    if not await migrate_once(url):
        migrating = asyncio.create_task(migrate_until_done(url), name="migrate read model")
    engine = make_engine(url)
    try:
        activities = CartActivities(make_session_factory(engine), client)
        worker = build_worker(
            client,
            activities,
            settings,
            extra_workflows=extra_workflows,
            extra_activities=extra_activities,
            sandbox_passthrough=sandbox_passthrough,
        )
        async with worker:
            log.info(
                "worker polling task queue %r on %s (namespace %s)",
                settings.task_queue,
                client.service_client.config.target_host,
                client.namespace,
            )
            if on_ready is not None:
                on_ready()
            # the daily digests' schedules: a refusal is logged, never stops the worker
            schedules = asyncio.create_task(start_digest_schedules(client, settings))
            await (stop or asyncio.Event()).wait()
            schedules.cancel()
            log.info("worker stopping")
    finally:
        if migrating is not None:
            migrating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await migrating
        await engine.dispose()


#: how long a start waits for the read model before running without it
MIGRATION_WAIT = 10.0
#: between two attempts while the read model is unreachable
MIGRATION_RETRY = 5.0


async def migrate_once(url: str) -> bool:
    """Migrate the read model; ``False`` if its database cannot be reached now."""
    try:
        await asyncio.wait_for(upgrade_database(url), MIGRATION_WAIT)
    except (OSError, TimeoutError, SQLAlchemyError) as error:
        log.warning(
            "the read model cannot be migrated now (%s); the worker starts anyway and"
            " retries every %.0fs",
            str(error).splitlines()[0][:200] if str(error) else type(error).__name__,
            MIGRATION_RETRY,
        )
        return False
    return True


async def migrate_until_done(url: str) -> None:
    while True:
        await asyncio.sleep(MIGRATION_RETRY)
        if await migrate_once(url):
            log.info("the read model is migrated")
            return


async def main(address: str | None = None, namespace: str | None = None) -> None:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    check_deployment(resolved_address(address), settings)  # before connecting
    client = await connect(address, namespace)
    await run_worker(client, settings, stop)


if __name__ == "__main__":
    asyncio.run(main())
