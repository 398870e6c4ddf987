"""The admin API's view of a shop's daily-digest schedule in Temporal (what
``cartkeeper digest schedule`` makes, and the worker at start-up):

    GET /api/v1/admin/shops/{shop_id}/digest/schedule   the schedule, its next and last runs
    PUT /api/v1/admin/shops/{shop_id}/digest/schedule   make it as the settings say

The time and zone come from the processes' environment (``CARTKEEPER_DIGEST_LOCAL_TIME``,
``CARTKEEPER_SHOP_TIME_ZONES``): ``PUT`` takes no body, it creates the schedule or brings
it in step with the settings (``starter.schedules.ensure_digest_schedule``), keeping its
state (a schedule an operator paused in the Temporal UI stays paused). ``GET`` says
whether it is ``in_step`` with the settings.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from starter.schedules import (
    DigestSchedule,
    ensure_digest_schedule,
    read_digest_schedule,
)
from starter.web.admin_api_calls import (
    AdminCall,
    Reader,
    Refused,
    Writer,
    admin_router,
    answers,
    check_shop,
)
from starter.web.admin_api_carts import ShopId

router = admin_router("admin: shop")

PATH = "/shops/{shop_id}/digest/schedule"

SCHEDULE_EXAMPLE = {
    "hour": 8,
    "minute": 0,
    "time_zone": "Europe/Paris",
    "task_queue": "cartkeeper",
    "workflow": "DailyDigest",
    "description": "every day at 08:00 Europe/Paris",
}


def _schedule(schedule: DigestSchedule | None) -> dict[str, Any] | None:
    if schedule is None:
        return None
    return {
        "hour": schedule.hour,
        "minute": schedule.minute,
        "time_zone": schedule.time_zone,
        "task_queue": schedule.task_queue,
        "workflow": schedule.workflow,
        "description": schedule.describe(),
    }


async def _client(call: AdminCall) -> Client:
    """The Temporal client (``temporal_unavailable`` 503 when it cannot be reached)."""
    carts = await call.context.carts()
    client: Client = carts.client
    return client


#: Temporal's answers that mean "not now": 503, try again
_TRANSIENT = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)


def _unavailable(shop_id: str, error: RPCError) -> Refused:
    """Temporal's refusal as a coded one: ``temporal_unavailable`` (503) for a Temporal
    that cannot answer now, ``schedule_refused`` (422, its message) for any other (no
    permission, a namespace that is not there ...)."""
    code = "temporal_unavailable" if error.status in _TRANSIENT else "schedule_refused"
    return Refused(
        code, f"the digest schedule of shop {shop_id!r}: Temporal answered {error.message[:200]}"
    )


@router.get(
    PATH,
    summary="Get the shop's digest schedule",
    description="The shop's daily-digest schedule in Temporal (`digest:<shop>`): what it"
    " does (`schedule`), what the settings want (`wanted`; `in_step` when they agree),"
    " whether it is paused, its next runs and its last ones. 404 `schedule_not_found`"
    " when there is none (`PUT` makes it); 503 `temporal_unavailable`; 422"
    " `schedule_refused` (Temporal refused: its message).",
    responses=answers(
        "The schedule",
        {
            "shop_id": "demo",
            "schedule_id": "digest:demo",
            "in_step": True,
            "paused": False,
            "note": "cartkeeper: the daily digest of shop demo",
            "schedule": SCHEDULE_EXAMPLE,
            "wanted": SCHEDULE_EXAMPLE,
            "next_runs": ["2026-12-02T07:00:00+00:00"],
            "recent_runs": [
                {
                    "scheduled_at": "2026-12-01T07:00:00+00:00",
                    "started_at": "2026-12-01T07:00:00.2+00:00",
                    "workflow_id": "digest:demo-2026-12-01T07:00:00Z",
                }
            ],
            "missed": 0,
            "has_admins": True,
        },
    ),
)
async def get_digest_schedule(shop_id: ShopId, call: Reader) -> Response:
    async def work() -> dict[str, Any]:
        settings = call.context.settings
        check_shop(shop_id)
        if settings is None:
            raise Refused("schedule_not_found", "no settings: no schedule")
        client = await _client(call)
        try:
            status = await read_digest_schedule(client, settings, shop_id)
        except RPCError as error:
            raise _unavailable(shop_id, error) from None
        if status is None:
            raise Refused(
                "schedule_not_found",
                f"shop {shop_id!r} has no digest schedule: PUT {PATH.format(shop_id=shop_id)}"
                " makes it",
            )
        return {
            "shop_id": shop_id,
            "schedule_id": status.schedule_id,
            "in_step": status.in_step,
            "paused": status.paused,
            "note": status.note,
            "schedule": _schedule(status.found),
            "wanted": _schedule(status.wanted),
            "next_runs": status.next_runs,
            "recent_runs": [
                {
                    "scheduled_at": run.scheduled_at,
                    "started_at": run.started_at,
                    "workflow_id": run.workflow_id,
                }
                for run in status.recent_runs
            ],
            "missed": status.missed,
            "has_admins": bool(settings.admins_for(shop_id)),
        }

    return await call.read(work)


@router.put(
    PATH,
    summary="Make the shop's digest schedule",
    description="Creates the shop's daily-digest schedule in Temporal, or brings it in"
    " step with the settings (time `CARTKEEPER_DIGEST_LOCAL_TIME`, the shop's zone,"
    " the task queue), keeping its state (a paused schedule stays paused). No body."
    " `action`: `created`, `updated` or `unchanged`. Refused: 422 `invalid_id`,"
    " `no_admins` (the shop has no admin addresses: its digest would go to nobody),"
    " `schedule_refused` (Temporal refused: its message); 503 `temporal_unavailable`.",
    responses=answers(
        "What was done",
        {
            "shop_id": "demo",
            "schedule_id": "digest:demo",
            "action": "created",
            "schedule": SCHEDULE_EXAMPLE,
        },
    ),
)
async def put_digest_schedule(shop_id: ShopId, call: Writer) -> Response:
    async def work() -> dict[str, Any]:
        settings = call.context.settings
        check_shop(shop_id)
        if settings is None or not settings.admins_for(shop_id):
            raise Refused(
                "no_admins",
                f"shop {shop_id!r} has no admin addresses (CARTKEEPER_SHOP_ADMINS):"
                " its digest would go to nobody",
            )
        client = await _client(call)
        try:
            outcome = await ensure_digest_schedule(client, settings, shop_id)
        except RPCError as error:
            raise _unavailable(shop_id, error) from None
        return {
            "shop_id": shop_id,
            "schedule_id": outcome.schedule_id,
            "action": outcome.action,
            "schedule": _schedule(outcome.schedule),
        }

    return await call.write(None, work)
