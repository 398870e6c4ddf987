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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import temporalio.bridge.proto.workflow_activation as activation_pb
import temporalio.bridge.proto.workflow_completion as completion_pb
from sqlalchemy.exc import SQLAlchemyError
from temporalio import workflow
from temporalio.client import Client
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    NexusSerializationContext,
    SerializationContext,
    StorageDriverStoreContext,
    WorkflowSerializationContext,
)
from temporalio.worker import (
    PollerBehavior,
    PollerBehaviorAutoscaling,
    PollerBehaviorSimpleMaximum,
    Worker,
    WorkflowInstance,
    WorkflowInstanceDetails,
)
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
from workflows.converter import DATA_CONVERTER
from workflows.digest_workflow import DailyDigest

log = logging.getLogger("cartkeeper.worker")


def is_context_free(converter: DataConverter) -> bool:
    """The converter encodes a value the same whatever workflow, activity or Nexus
    operation it is for: the SDK's ``with_context`` gives back the converter itself (no
    part of it takes a serialization context), and it stores nothing outside the history."""
    return converter.external_storage is None and all(
        converter.with_context(context) is converter for context in PROBE_CONTEXTS
    )


#: one context of each kind the SDK hands a converter (``is_context_free`` tries them all)
PROBE_CONTEXTS: tuple[SerializationContext, ...] = (
    WorkflowSerializationContext(namespace="default", workflow_id="probe"),
    ActivitySerializationContext(
        namespace="default",
        workflow_id="probe",
        workflow_type="probe",
        activity_type="probe",
        activity_task_queue="probe",
        is_local=False,
        activity_id="probe",
    ),
    NexusSerializationContext(endpoint="probe", service="probe", operation="probe"),
)


class ContextFreeInstance(WorkflowInstance):
    """A sandboxed workflow instance that answers the SDK's two context questions itself.

    Before it encodes or decodes a workflow task's payloads, the SDK asks the instance
    which serialization context (and external-store context) each payload sequence belongs
    to; the sandbox answers by compiling and running a line of code inside the sandbox,
    its import hooks installed and removed around it, for every sequence: a quarter of a
    replay's CPU. With a context-free converter every answer leads to the same converter
    (the SDK falls back to the worker's own converter on ``None``), so this answers
    ``None`` and the no-store context at once, and passes everything else through.
    """

    def __init__(self, inner: WorkflowInstance) -> None:
        self.inner = inner

    def activate(
        self, act: activation_pb.WorkflowActivation
    ) -> completion_pb.WorkflowActivationCompletion:
        return self.inner.activate(act)

    def get_serialization_context(self, command_info: Any) -> SerializationContext | None:
        return None

    def get_external_store_context(self, command_info: Any) -> StorageDriverStoreContext:
        return StorageDriverStoreContext(target=None)

    def get_info(self) -> workflow.Info:
        return self.inner.get_info()

    def get_thread_id(self) -> int | None:
        return self.inner.get_thread_id()  # the SDK's deadlock detection reads it


@dataclass(frozen=True)
class ContextFreeSandbox(SandboxedWorkflowRunner):
    """The sandbox, its instances wrapped in ``ContextFreeInstance``: only for a worker or
    a replayer whose converter ``is_context_free`` (``workflow_runner`` checks). Still a
    ``SandboxedWorkflowRunner``, so what the SDK adds to a sandbox (the debugger's
    passthrough in ``debug_mode``, plugins' passthrough modules) applies to it too."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return ContextFreeInstance(super().create_instance(det))


def workflow_runner(
    converter: DataConverter, passthrough: Sequence[str] = ()
) -> SandboxedWorkflowRunner:
    """The sandbox of a worker or replayer with ``converter``, without the per-payload
    context questions when the converter does not need their answers. Our workflow-side
    modules are deterministic and import nothing heavy: they are passed through instead of
    re-imported for every workflow run, with ``passthrough`` (the benchmark's floor
    workflow lives in ``bench``)."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules("workflows", *passthrough)
    if is_context_free(converter):
        return ContextFreeSandbox(restrictions=restrictions)
    return SandboxedWorkflowRunner(restrictions=restrictions)


#: the runner for ``DATA_CONVERTER`` (replayers and test workers; the worker builds its own
#: the same way)
WORKFLOW_RUNNER = workflow_runner(DATA_CONVERTER)


def workflow_poller_behavior(settings: Settings) -> PollerBehavior:
    """The workflow-task polls of ``settings``: autoscaled between 2 and the maximum,
    starting at ``workflow_task_pollers``, unless autoscaling is off."""
    if settings.workflow_task_poller_autoscaling:
        return PollerBehaviorAutoscaling(
            minimum=2,
            maximum=settings.workflow_task_pollers_max,
            initial=settings.workflow_task_pollers,
        )
    return PollerBehaviorSimpleMaximum(settings.workflow_task_pollers)


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
        workflow_runner=workflow_runner(client.data_converter, sandbox_passthrough),
        max_cached_workflows=settings.max_cached_workflows,
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        graceful_shutdown_timeout=timedelta(seconds=10),
        # A task sent to a worker that died waits this long on its sticky queue before
        # any worker may take it (the SDK's default is 10 s).
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.sticky_timeout_seconds),
        # Polls that follow the backlog of the task queue, where the carts the worker does
        # not hold wait (``Settings``).
        workflow_task_poller_behavior=workflow_poller_behavior(settings),
        nonsticky_to_sticky_poll_ratio=settings.nonsticky_poll_ratio,
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
