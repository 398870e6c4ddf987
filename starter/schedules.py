"""The daily digest's Temporal Schedules: one per shop with admins, ``digest:<shop>``,
starting the ``DailyDigest`` workflow every day at ``digest_local_time`` in the shop's
time zone (``shop_time_zones``, else UTC; the schedule's spec carries the zone, so
Temporal keeps the local time across DST changes).

``ensure_digest_schedule`` is idempotent: it creates the schedule, or updates it when it
exists with another time, zone, workflow input or task queue (keeping its state: a
schedule an operator paused stays paused), or leaves it alone. The worker calls it for
every shop with admins at start-up (``start_digest_schedules``: a refusal is logged, never
fatal); ``cartkeeper digest schedule`` does it by hand.

Policy: an overlapping run is skipped; a run missed while Temporal was down is caught up
within ``CATCHUP_WINDOW`` (the workflow reports the day it was scheduled for, and the
activity sends a day's digest once). A shop removed from ``CARTKEEPER_SHOP_ADMINS`` keeps
its schedule, whose runs then answer ``no_admins``: delete it with
``temporal schedule delete --schedule-id digest:<shop>``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from workflows.alerts_contract import DIGEST_WORKFLOW_NAME, DigestWorkflowInput

if TYPE_CHECKING:
    from activities.settings import Settings

log = logging.getLogger("cartkeeper.schedules")

#: a run missed while Temporal was down still starts if it is at most this late
CATCHUP_WINDOW = timedelta(hours=12)
#: the digest workflow's run gives up after this long (its activity after 12 h)
DIGEST_EXECUTION_TIMEOUT = timedelta(hours=13)
RPC_TIMEOUT = timedelta(seconds=10)
#: how long the worker's start-up spends on the schedules at most
STARTUP_TIMEOUT = 60.0

CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"


def digest_schedule_id(shop_id: str) -> str:
    return f"digest:{shop_id}"


def digest_shops(settings: Settings) -> list[str]:
    """The shops that get a digest: those with admin addresses."""
    return sorted(shop for shop, admins in settings.shop_admins.items() if admins)


@dataclass(frozen=True)
class DigestSchedule:
    """What a shop's schedule should be (and what it is, once described)."""

    hour: int
    minute: int
    time_zone: str
    workflow: str
    task_queue: str
    workflow_input: DigestWorkflowInput | None

    def describe(self) -> str:
        return f"every day at {self.hour:02d}:{self.minute:02d} {self.time_zone}"


@dataclass(frozen=True)
class ScheduleOutcome:
    shop_id: str
    #: ``created``, ``updated`` or ``unchanged``
    action: str
    schedule: DigestSchedule

    @property
    def schedule_id(self) -> str:
        return digest_schedule_id(self.shop_id)


def wanted(settings: Settings, shop_id: str) -> DigestSchedule:
    hour, minute = settings.digest_time()
    zone = settings.time_zone_for(shop_id)
    return DigestSchedule(
        hour=hour,
        minute=minute,
        time_zone=zone,
        workflow=DIGEST_WORKFLOW_NAME,
        task_queue=settings.task_queue,
        workflow_input=DigestWorkflowInput(shop_id=shop_id, time_zone=zone),
    )


def digest_schedule(shop_id: str, want: DigestSchedule) -> Schedule:
    """The shop's schedule (``wanted``) as Temporal takes it."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            want.workflow,
            want.workflow_input,
            id=digest_schedule_id(shop_id),  # Temporal appends the scheduled time
            task_queue=want.task_queue,
            execution_timeout=DIGEST_EXECUTION_TIMEOUT,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    second=[ScheduleRange(0)],
                    minute=[ScheduleRange(want.minute)],
                    hour=[ScheduleRange(want.hour)],
                    comment=f"the daily digest of shop {shop_id}",
                )
            ],
            time_zone_name=want.time_zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(note=f"cartkeeper: the daily digest of shop {shop_id}"),
    )


def _single(ranges: Any) -> int | None:
    """The one value of a calendar field such as ``[ScheduleRange(8)]`` (else ``None``)."""
    items = list(ranges)
    if len(items) != 1:
        return None
    only = items[0]
    end = only.end if only.end else only.start
    return int(only.start) if end == only.start else None


def found(client: Client, schedule: Schedule) -> DigestSchedule | None:
    """What a described schedule does, in our terms (``None``: not one of ours)."""
    spec = schedule.spec
    action = schedule.action
    if (
        len(spec.calendars) != 1
        or spec.intervals
        or spec.cron_expressions
        or not isinstance(action, ScheduleActionStartWorkflow)
    ):
        return None
    calendar = spec.calendars[0]
    hour, minute, second = (
        _single(calendar.hour),
        _single(calendar.minute),
        _single(calendar.second),
    )
    if hour is None or minute is None or second != 0:
        return None
    workflow_input: DigestWorkflowInput | None = None
    if len(action.args) == 1:
        try:
            workflow_input = client.data_converter.payload_converter.from_payload(
                action.args[0],  # type: ignore[arg-type]  # raw payloads when described
                DigestWorkflowInput,
            )
        except Exception:  # another input: the schedule gets ours
            workflow_input = None
    return DigestSchedule(
        hour=hour,
        minute=minute,
        time_zone=spec.time_zone_name or "UTC",
        workflow=action.workflow,
        task_queue=action.task_queue,
        workflow_input=workflow_input,
    )


async def ensure_digest_schedule(
    client: Client, settings: Settings, shop_id: str
) -> ScheduleOutcome:
    """Create the shop's digest schedule, or update it if it differs (see above)."""
    schedule_id = digest_schedule_id(shop_id)
    want = wanted(settings, shop_id)
    desired = digest_schedule(shop_id, want)
    try:
        await client.create_schedule(schedule_id, desired, rpc_timeout=RPC_TIMEOUT)
        log.info("digest schedule %s created: %s", schedule_id, want.describe())
        return ScheduleOutcome(shop_id, CREATED, want)
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(schedule_id)
    description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    if found(client, description.schedule) == want:
        return ScheduleOutcome(shop_id, UNCHANGED, want)

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        # the time, zone and workflow are ours; the state (paused, note) stays as it is
        schedule = replace(
            current.description.schedule,
            spec=desired.spec,
            action=desired.action,
            policy=desired.policy,
        )
        return ScheduleUpdate(schedule=schedule)

    await handle.update(update, rpc_timeout=RPC_TIMEOUT)
    log.info("digest schedule %s updated: %s", schedule_id, want.describe())
    return ScheduleOutcome(shop_id, UPDATED, want)


@dataclass(frozen=True)
class ScheduleRun:
    """One run the schedule started: when it was due, when it started, its workflow."""

    scheduled_at: datetime
    started_at: datetime
    workflow_id: str | None


@dataclass(frozen=True)
class ScheduleStatus:
    """A shop's digest schedule as Temporal has it (``read_digest_schedule``)."""

    shop_id: str
    #: what it does (``None``: a schedule of that id that is not one of ours)
    found: DigestSchedule | None
    #: what the settings want it to do: ``in_step`` when it does that
    wanted: DigestSchedule
    paused: bool
    note: str | None
    #: the next times it starts the digest (up to 10)
    next_runs: list[datetime]
    #: its last runs, oldest first (up to 10)
    recent_runs: list[ScheduleRun]
    #: runs skipped because Temporal was down longer than ``CATCHUP_WINDOW``
    missed: int

    @property
    def schedule_id(self) -> str:
        return digest_schedule_id(self.shop_id)

    @property
    def in_step(self) -> bool:
        return self.found == self.wanted


async def read_digest_schedule(
    client: Client, settings: Settings, shop_id: str
) -> ScheduleStatus | None:
    """The shop's digest schedule as Temporal describes it (``None``: there is none)."""
    handle = client.get_schedule_handle(digest_schedule_id(shop_id))
    try:
        description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    info = description.info
    return ScheduleStatus(
        shop_id=shop_id,
        found=found(client, description.schedule),
        wanted=wanted(settings, shop_id),
        paused=description.schedule.state.paused,
        note=description.schedule.state.note,
        next_runs=list(info.next_action_times),
        recent_runs=[
            ScheduleRun(
                scheduled_at=result.scheduled_at,
                started_at=result.started_at,
                workflow_id=getattr(result.action, "workflow_id", None),
            )
            for result in info.recent_actions
        ],
        missed=info.num_actions_missed_catchup_window,
    )


async def ensure_digest_schedules(client: Client, settings: Settings) -> list[ScheduleOutcome]:
    """``ensure_digest_schedule`` for every shop with admins."""
    return [await ensure_digest_schedule(client, settings, shop) for shop in digest_shops(settings)]


async def start_digest_schedules(client: Client, settings: Settings) -> None:
    """The worker's start-up: make the schedules, logging (never raising) a refusal, so a
    Temporal that refuses schedules (permissions, an old server) stops nothing else."""
    shops = digest_shops(settings)
    if not shops:
        log.info("no shop has admin addresses (CARTKEEPER_SHOP_ADMINS): no digest schedules")
        return
    for shop in shops:
        try:
            await asyncio.wait_for(
                ensure_digest_schedule(client, settings, shop), STARTUP_TIMEOUT / len(shops)
            )
        except Exception as error:  # logged: the worker runs without this shop's schedule
            log.warning(
                "the digest schedule of shop %s could not be made: %s: %s",
                shop,
                type(error).__name__,
                (str(error).splitlines() or [""])[0][:300],
            )
