"""The daily digest's Temporal Schedule (``starter.schedules``) on the dev server, created
twice as one, triggered to run the ``DailyDigest`` workflow, made by the worker at start;
``cartkeeper digest``. Read model on SQLite and PostgreSQL (``TEST_DATABASE_URL``)."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
)
from temporalio.testing import WorkflowEnvironment

from activities.cart_activities import CartActivities
from activities.models import AdminNotice
from activities.settings import Settings
from starter.schedules import (
    CREATED,
    UNCHANGED,
    UPDATED,
    digest_schedule_id,
    ensure_digest_schedule,
    ensure_digest_schedules,
)
from tests import admin_mail_fixtures
from tests.admin_mail_fixtures import ADMINS, add, cart_row, parts, received, settings_for
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_cli import run_cli
from tests.test_smtp import Handler, smtp_server
from workflows.alerts_contract import (
    ALERT_ALREADY_SENT,
    ALERT_SENT,
    AlertResult,
    DigestInput,
    DigestWorkflowInput,
)
from workflows.digest_workflow import SCHEDULED_START_TIME

db = admin_mail_fixtures.db  # the read model, on SQLite and PostgreSQL

BERLIN = "Europe/Berlin"


# --------------------------------------------------------------------------- the schedule


async def test_the_schedule_is_made_once_and_follows_the_settings(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = dev_env.client
    shop = f"shop-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=tmp_path,
        task_queue=f"digest-{shop}",
        shop_admins={shop: ["admin@example.com"]},
        shop_time_zones={shop: BERLIN},
        digest_local_time="07:30",
    )
    handle = client.get_schedule_handle(digest_schedule_id(shop))
    try:
        first = await ensure_digest_schedule(client, settings, shop)
        (second,) = await ensure_digest_schedules(client, settings)
        assert (first.action, second.action) == (CREATED, UNCHANGED)
        described = await handle.describe()
        spec = described.schedule.spec
        assert spec.time_zone_name == BERLIN
        (calendar,) = spec.calendars
        assert [(r.start, r.end or r.start) for r in calendar.hour] == [(7, 7)]
        assert [(r.start, r.end or r.start) for r in calendar.minute] == [(30, 30)]
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == "DailyDigest" and action.task_queue == settings.task_queue
        assert await schedule_count(client, digest_schedule_id(shop)) == 1

        moved = settings.model_copy(update={"digest_local_time": "09:15"})
        assert (await ensure_digest_schedule(client, moved, shop)).action == UPDATED
        assert (await ensure_digest_schedule(client, moved, shop)).action == UNCHANGED
        (calendar,) = (await handle.describe()).schedule.spec.calendars
        assert [(r.start, r.end or r.start) for r in calendar.hour] == [(9, 9)]
        assert [(r.start, r.end or r.start) for r in calendar.minute] == [(15, 15)]
        assert await schedule_count(client, digest_schedule_id(shop)) == 1
    finally:
        await handle.delete()


async def schedule_count(client: Client, schedule_id: str) -> int:
    """How many schedules have this id, once visibility shows it (it lags a little)."""
    count = 0
    for _ in range(50):
        count = 0
        async for listed in await client.list_schedules():
            count += listed.id == schedule_id
        if count:
            return count
        await asyncio.sleep(0.1)
    return count


async def test_triggering_the_schedule_sends_the_digest(
    dev_env: WorkflowEnvironment, db: ScratchDatabase, tmp_path: Path
) -> None:
    from worker import build_worker

    client = dev_env.client
    shop = f"shop-{uuid.uuid4().hex[:8]}"
    await add(
        db,
        cart_row(
            shop,
            "c-locked",
            state="locked",
            needs_admin=True,
            lock_reason="payment_pending",
            locked_at=datetime.now(UTC) - timedelta(hours=1),
        ),
    )
    handler = Handler()
    async with smtp_server(handler) as port:
        settings = settings_for(
            port,
            tmp_path,
            task_queue=f"digest-{shop}",
            shop_admins={shop: ADMINS},
            shop_time_zones={shop: BERLIN},
        )
        await ensure_digest_schedule(client, settings, shop)
        handle = client.get_schedule_handle(digest_schedule_id(shop))
        worker = build_worker(client, CartActivities(db.session_factory, client), settings)
        try:
            async with worker:
                await handle.trigger()
                workflow_id = await started_workflow(client, digest_schedule_id(shop))
                result = await client.get_workflow_handle(
                    workflow_id, result_type=AlertResult
                ).result()
                # a second run of the same day sends nothing again
                await handle.trigger()
                second_id = await started_workflow(client, digest_schedule_id(shop), after=1)
                second = await client.get_workflow_handle(
                    second_id, result_type=AlertResult
                ).result()
        finally:
            await handle.delete()
    assert result.status == ALERT_SENT and result.recipients == 2
    assert second.status == ALERT_ALREADY_SENT and second.message_id == result.message_id
    (message,) = received(handler)
    assert "c-locked" in parts(message)[0]
    today = datetime.now(ZoneInfo(BERLIN)).date().isoformat()
    async with db.session_factory() as session:
        notice = await session.get(AdminNotice, (shop, f"digest:{today}"))
    assert notice is not None and notice.sent_at is not None
    description = await client.get_workflow_handle(workflow_id).describe()
    assert description.workflow_type == "DailyDigest"
    # the day comes from the time the schedule meant (not the worker's clock)
    assert description.typed_search_attributes.get(SCHEDULED_START_TIME) is not None


async def started_workflow(client: Client, schedule_id: str, after: int = 0) -> str:
    """The id of the workflow the schedule's action number ``after`` started."""
    handle = client.get_schedule_handle(schedule_id)
    for _ in range(100):
        actions = (await handle.describe()).info.recent_actions
        if len(actions) > after:
            action = actions[after].action
            assert isinstance(action, ScheduleActionExecutionStartWorkflow)
            return action.workflow_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"schedule {schedule_id} started no workflow")


def test_the_workflow_input_survives_the_payload_converter() -> None:
    from temporalio.converter import DataConverter

    converter = DataConverter.default.payload_converter
    for value in (DigestWorkflowInput("demo", BERLIN), DigestInput("demo", "2025-03-02")):
        (payload,) = converter.to_payloads([value])
        assert converter.from_payloads([payload], [type(value)]) == [value]


# --------------------------------------------------------------------------- the CLI


async def cartkeeper(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    run = await run_cli(env, *args)
    return run.code, run.out, run.err


async def test_digest_send_from_the_command_line(tmp_path: Path) -> None:
    async with scratch_database("sqlite", tmp_path) as db:
        await add(
            db,
            cart_row(
                "demo",
                "c-locked",
                state="locked",
                needs_admin=True,
                locked_at=datetime.now(UTC) - timedelta(hours=2),
            ),
        )
        handler = Handler()
        async with smtp_server(handler) as port:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CARTKEEPER_")}
            env.update(
                {
                    "DATABASE_URL": db.url,
                    "CARTKEEPER_DATA_DIR": str(tmp_path),
                    "CARTKEEPER_SMTP_PORT": str(port),
                    "CARTKEEPER_SHOP_ADMINS": '{"demo": ["admin@example.com"]}',
                    "CARTKEEPER_SHOP_TIME_ZONES": '{"demo": "Europe/Berlin"}',
                }
            )
            env.pop("TEMPORAL_ADDRESS", None)
            code, out, err = await cartkeeper(
                env, "digest", "send", "--shop", "demo", "--day", "2025-03-02", "--dry-run"
            )
            assert code == 0, err
            assert "To: admin@example.com" in out and "c-locked" in out
            assert "Daily digest of shop demo, 2025-03-02" in out
            assert handler.received == []

            code, out, err = await cartkeeper(env, "digest", "send", "--day", "2025-03-02")
            assert code == 0, err
            assert "sent to 1 admin(s)" in out
            code, out, err = await cartkeeper(env, "digest", "send", "--day", "2025-03-02")
            assert code == 0, err
            assert "already sent" in out
            assert len(handler.received) == 1

            # another process has the next day's digest with the relay right now
            await admin_mail_fixtures.add_notice(
                db, "demo", "digest:2025-03-03", "daily_digest", datetime.now(UTC)
            )
            code, out, err = await cartkeeper(env, "digest", "send", "--day", "2025-03-03")
            assert code == 1 and err.startswith("error: digest_sending: the digest of shop demo")
            assert "being sent by another process right now" in err
            assert len(handler.received) == 1

            code, out, err = await cartkeeper(env, "digest", "send", "--shop", "nobody")
            assert code == 1 and err.startswith("error: no_admins: shop nobody has no admin")
            code, out, err = await cartkeeper(env, "digest", "send", "--day", "2025-13-01")
            assert code == 2


async def test_digest_schedule_from_the_command_line(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    shop = f"shop-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTKEEPER_")}
    env.update(
        {
            "CARTKEEPER_DATA_DIR": str(tmp_path),
            "CARTKEEPER_TASK_QUEUE": f"digest-{shop}",
            "CARTKEEPER_SHOP_ADMINS": f'{{"{shop}": ["admin@example.com"]}}',
            "CARTKEEPER_SHOP_TIME_ZONES": f'{{"{shop}": "Asia/Tokyo"}}',
            "CARTKEEPER_DIGEST_LOCAL_TIME": "06:45",
        }
    )
    address = dev_env.client.service_client.config.target_host
    try:
        code, out, err = await cartkeeper(env, "--address", address, "digest", "schedule")
        assert code == 0, err
        assert f"digest:{shop}: created, every day at 06:45 Asia/Tokyo" in out
        code, out, err = await cartkeeper(
            env, "--address", address, "digest", "schedule", "--shop", shop
        )
        assert code == 0, err
        assert f"digest:{shop}: unchanged" in out
        env["CARTKEEPER_DIGEST_LOCAL_TIME"] = "bad"
        code, out, err = await cartkeeper(env, "--address", address, "digest", "schedule")
        assert code == 2 and "CARTKEEPER_DIGEST_LOCAL_TIME" in err
    finally:
        await dev_env.client.get_schedule_handle(digest_schedule_id(shop)).delete()


async def test_the_worker_makes_the_schedules_at_start(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    from temporalio.service import RPCError

    from worker import run_worker

    client = dev_env.client
    shop = f"shop-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=tmp_path,
        task_queue=f"digest-{shop}",
        shop_admins={shop: ["admin@example.com"]},
        shop_time_zones={shop: "America/New_York"},
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(run_worker(client, settings, stop, on_ready=ready.set))
    handle = client.get_schedule_handle(digest_schedule_id(shop))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        for _ in range(100):
            try:
                described = await handle.describe()
                break
            except RPCError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the worker made no schedule")
        assert described.schedule.spec.time_zone_name == "America/New_York"
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
        await handle.delete()


async def test_a_temporal_that_refuses_schedules_stops_no_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from typing import cast

    from temporalio.service import RPCError, RPCStatusCode

    from starter.schedules import start_digest_schedules

    class Refusing:
        async def create_schedule(self, *args: Any, **kwargs: Any) -> None:
            raise RPCError("no schedules for you", RPCStatusCode.PERMISSION_DENIED, b"")

    settings = Settings(data_dir=tmp_path, shop_admins={"demo": ["admin@example.com"]})
    await start_digest_schedules(cast(Client, Refusing()), settings)
    assert "the digest schedule of shop demo could not be made" in caplog.text
    assert "no schedules for you" in caplog.text
