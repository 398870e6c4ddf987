"""The daily digest: its content from a read model we fill (``activities.digest``), sent
once per shop and day through a real SMTP server (aiosmtpd); its Temporal Schedule
(``starter.schedules``) on the dev server, created twice as one, triggered to run the
``DailyDigest`` workflow; the settings; ``cartkeeper digest``. Read model on SQLite and
PostgreSQL (``TEST_DATABASE_URL``)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
)
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.cart_activities import CartActivities
from activities.digest import DigestActivities, build_digest, day_bounds, render_digest
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
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_alerts import CUSTOMER_EMAIL, CUSTOMER_NAME, add, cart_row, parts, received
from tests.test_smtp import Handler, smtp_server
from workflows.alerts_contract import (
    ALERT_ALREADY_SENT,
    ALERT_NO_ADMINS,
    ALERT_NOTHING_TO_REPORT,
    ALERT_SENT,
    AlertResult,
    DigestInput,
    DigestWorkflowInput,
)
from workflows.digest_workflow import SCHEDULED_START_TIME, digest_day

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
BERLIN = "Europe/Berlin"
#: 08:00 in Berlin on the digest's day; "yesterday" is 1 March there
NOW = datetime(2025, 3, 2, 7, 0, tzinfo=UTC)
DAY = date(2025, 3, 2)
ADMINS = ["admin@example.com", "ops@example.com"]


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


def settings_for(port: int, tmp_path: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "smtp_port": port,
        "smtp_timeout_seconds": 5,
        "shop_admins": {"demo": ADMINS},
        "shop_time_zones": {"demo": BERLIN},
        "alert_sender": "alerts@shop.example.com",
    }
    values.update(changes)
    return Settings(**values)


async def fill(db: ScratchDatabase) -> None:
    """Locked carts, payments needing an admin, payments after close, recovered orders
    (yesterday in Berlin: 2025-02-28 23:00 to 2025-03-01 23:00 UTC) and decoys."""
    t = NOW
    await add(
        db,
        # locked: the longest first in the digest
        cart_row(
            "demo",
            "lock-new",
            state="locked",
            needs_admin=True,
            lock_reason="payment_pending",
            locked_at=t - timedelta(minutes=45),
            total=1250,
            currency="USD",
        ),
        cart_row(
            "demo",
            "lock-old",
            state="locked",
            needs_admin=True,
            lock_reason="no_payment_result",
            locked_at=t - timedelta(hours=27),
            total=4900,
        ),
        # open attention items
        cart_row(
            "demo",
            "att-mismatch",
            state="ordered",
            needs_admin=True,
            attention="amount_mismatch",
            order_number=7,
            order_status="P",
            order_paid=True,
            updated_at=t - timedelta(hours=5),
        ),
        cart_row(
            "demo",
            "att-nocart",
            state="active",
            needs_admin=True,
            attention="payment_without_cart",
            total=0,
            updated_at=t - timedelta(hours=2),
        ),
        # payments on closed carts
        cart_row(
            "demo",
            "closed-expired",
            state="expired",
            needs_admin=True,
            attention="paid_after_close",
            total=3000,
        ),
        cart_row(
            "demo",
            "closed-deleted",
            state="deleted",
            needs_admin=True,
            attention="paid_after_close,amount_mismatch",
            total=2000,
        ),
        # recovered yesterday (Berlin): EUR 4900 + 2500 paid, one EUR unpaid, USD 1000 paid
        *[
            cart_row(
                "demo",
                cart_id,
                state="ordered",
                recovered_via="r1",
                order_number=n,
                order_status="P" if paid else "O",
                order_paid=paid,
                total=total,
                currency=currency,
                ordered_at=ordered_at,
            )
            for n, (cart_id, total, currency, paid, ordered_at) in enumerate(
                [
                    ("rec-eur-1", 4900, "EUR", True, datetime(2025, 3, 1, 10, 0, tzinfo=UTC)),
                    # 00:30 on 1 March in Berlin (still 28 February in UTC)
                    ("rec-eur-2", 2500, "EUR", True, datetime(2025, 2, 28, 23, 30, tzinfo=UTC)),
                    ("rec-eur-open", 9999, "EUR", False, datetime(2025, 3, 1, 12, tzinfo=UTC)),
                    ("rec-usd", 1000, "USD", True, datetime(2025, 3, 1, 22, 59, tzinfo=UTC)),
                    # the day before yesterday in Berlin (23:30 on 28 February)
                    ("rec-before", 7777, "EUR", True, datetime(2025, 2, 28, 22, 30, tzinfo=UTC)),
                    # today in Berlin (00:00 on 2 March)
                    ("rec-today", 8888, "EUR", True, datetime(2025, 3, 1, 23, 0, tzinfo=UTC)),
                ],
                start=10,
            )
        ],
        # ordered yesterday, but not through a reminder
        cart_row(
            "demo",
            "plain-order",
            state="ordered",
            order_number=30,
            order_status="P",
            order_paid=True,
            total=5555,
            ordered_at=datetime(2025, 3, 1, 10, tzinfo=UTC),
        ),
        # another shop's carts are not in the digest
        cart_row("other", "lock-other", state="locked", needs_admin=True, locked_at=t),
        cart_row(
            "other",
            "rec-other",
            state="ordered",
            recovered_via="r1",
            order_paid=True,
            total=6666,
            ordered_at=datetime(2025, 3, 1, 10, tzinfo=UTC),
        ),
    )


# --------------------------------------------------------------------------- content


def test_the_day_bounds_are_local_midnights() -> None:
    assert day_bounds(date(2025, 3, 1), BERLIN) == (
        datetime(2025, 2, 28, 23, tzinfo=UTC),
        datetime(2025, 3, 1, 23, tzinfo=UTC),
    )
    # the day summer time starts has 23 hours
    start, end = day_bounds(date(2025, 3, 30), BERLIN)
    assert end - start == timedelta(hours=23)
    assert digest_day(datetime(2025, 3, 1, 23, 30, tzinfo=UTC), BERLIN) == "2025-03-02"
    assert digest_day(datetime(2025, 3, 1, 23, 30, tzinfo=UTC), "UTC") == "2025-03-01"


async def test_the_digest_says_what_needs_the_admins(db: ScratchDatabase) -> None:
    await fill(db)
    digest = await build_digest(db.session_factory, "demo", DAY, BERLIN, NOW)
    assert [cart.cart_id for cart in digest.locked] == ["lock-old", "lock-new"]
    assert digest.locked_count == 2
    assert [cart.cart_id for cart in digest.attention] == ["att-mismatch", "att-nocart"]
    assert digest.attention[1].kinds == ("payment_without_cart",)
    assert {cart.cart_id for cart in digest.paid_after_close} == {
        "closed-expired",
        "closed-deleted",
    }
    assert digest.paid_after_close_count == 2
    assert [(r.currency, r.orders, r.paid_orders, r.amount) for r in digest.recovered] == [
        ("EUR", 3, 2, 4900 + 2500),
        ("USD", 1, 1, 1000),
    ]
    assert digest.recovered_orders == 4 and not digest.empty

    from activities.admin_mail import AdminTemplates

    rendered = render_digest(digest, AdminTemplates())
    assert "demo" in rendered.subject and "2 locked" in rendered.subject
    assert "4 payment(s) to check" in rendered.subject and "4 recovered" in rendered.subject
    text, html = rendered.text, rendered.html
    for body in (text, html):
        assert body.index("lock-old") < body.index("lock-new")  # longest locked first
        assert "1 d 3 h" in body and "45 min" in body
        assert "€49.00" in body and "$12.50" in body
        assert "att-mismatch" in body and "payment_without_cart" in body
        assert "closed-expired" in body and "paid_after_close, amount_mismatch" in body
        assert "€74.00" in body and "$10.00" in body  # recovered revenue per currency
        assert "2025-03-01" in body  # the recovered orders' day
        for absent in ("rec-before", "rec-today", "plain-order", "lock-other", "€77.77", "€88.88"):
            assert absent not in body
        assert "€99.99" not in body  # an unpaid recovered order is no revenue
        assert "cartkeeper carts confirm CART --shop demo" in body
        for personal in (CUSTOMER_EMAIL, CUSTOMER_NAME, "cust-1"):
            assert personal not in body
    # the payments on closed carts are not listed twice
    assert text.count("closed-deleted") == 1
    assert "<table" in html and "<h3>" in html


async def test_the_html_is_escaped(db: ScratchDatabase) -> None:
    await add(
        db,
        cart_row(
            "demo",
            "c-odd",
            state="active",
            needs_admin=True,
            attention="<script>alert(1)</script>",
        ),
    )
    from activities.admin_mail import AdminTemplates

    digest = await build_digest(db.session_factory, "demo", DAY, BERLIN, NOW)
    rendered = render_digest(digest, AdminTemplates())
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "<script>alert(1)</script>" in rendered.text


# --------------------------------------------------------------------------- sending


async def test_the_digest_is_sent_once_a_day(db: ScratchDatabase, tmp_path: Path) -> None:
    await fill(db)
    handler = Handler()
    async with smtp_server(handler) as port:
        acts = DigestActivities(db.session_factory, settings_for(port, tmp_path), clock=lambda: NOW)
        env = ActivityEnvironment()
        first = await env.run(acts.send_daily_digest, DigestInput("demo", DAY.isoformat()))
        again = await env.run(acts.send_daily_digest, DigestInput("demo", DAY.isoformat()))
        # the next day is another digest
        later = DigestActivities(
            db.session_factory,
            settings_for(port, tmp_path),
            clock=lambda: NOW + timedelta(days=1),
        )
        tomorrow = await env.run(later.send_daily_digest, DigestInput("demo", "2025-03-03"))
    assert first.status == ALERT_SENT and first.recipients == 2
    assert again.status == ALERT_ALREADY_SENT and again.message_id == first.message_id
    assert tomorrow.status == ALERT_SENT and tomorrow.message_id != first.message_id
    message, _ = received(handler)
    assert sorted(handler.received[0].rcpt_tos) == sorted(ADMINS)
    assert message["Message-ID"] == first.message_id
    assert str(message["Message-ID"]).endswith("@shop.example.com>")
    text, html = parts(message)
    assert "lock-old" in text and "lock-old" in html
    async with db.session_factory() as session:
        notice = await session.get(AdminNotice, ("demo", "digest:2025-03-02"))
        assert notice is not None and notice.kind == "daily_digest" and notice.sent_at == NOW


async def test_nothing_to_report_and_no_admins(db: ScratchDatabase, tmp_path: Path) -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        acts = DigestActivities(
            db.session_factory,
            settings_for(port, tmp_path, shop_admins={"demo": ADMINS, "other": []}),
            clock=lambda: NOW,
        )
        env = ActivityEnvironment()
        empty = await env.run(acts.send_daily_digest, DigestInput("demo", DAY.isoformat()))
        nobody = await env.run(acts.send_daily_digest, DigestInput("other", DAY.isoformat()))
        unknown = await env.run(acts.send_daily_digest, DigestInput("nope", DAY.isoformat()))
    assert empty.status == ALERT_NOTHING_TO_REPORT
    assert nobody.status == ALERT_NO_ADMINS and unknown.status == ALERT_NO_ADMINS
    assert handler.received == []


# --------------------------------------------------------------------------- settings


def test_the_alert_settings_are_checked() -> None:
    settings = Settings(
        shop_admins={"demo": [" a@example.com", "a@example.com", "b@example.com"]},
        digest_local_time="7:05",
        shop_time_zones={"demo": BERLIN},
    )
    assert settings.admins_for("demo") == ["a@example.com", "b@example.com"]
    assert settings.admins_for("other") == []
    assert settings.digest_time() == (7, 5) and settings.digest_local_time == "07:05"
    assert settings.time_zone_for("demo") == BERLIN and settings.time_zone_for("x") == "UTC"
    assert Settings().lock_alert_after_seconds == 1800
    for bad in (
        {"shop_admins": {"demo": ["not-an-address"]}},
        {"shop_admins": {"demo": ["a@example.com\r\nBcc: x@example.com"]}},
        {"digest_local_time": "24:00"},
        {"digest_local_time": "8h"},
        {"shop_time_zones": {"demo": "Mars/Olympus"}},
        {"alert_sender": "nobody"},
        {"lock_alert_after_seconds": 0},
    ):
        with pytest.raises(ValidationError):
            Settings(**bad)


def test_the_alert_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTKEEPER_SHOP_ADMINS", '{"demo": ["admin@example.com"]}')
    monkeypatch.setenv("CARTKEEPER_SHOP_TIME_ZONES", '{"demo": "America/New_York"}')
    monkeypatch.setenv("CARTKEEPER_DIGEST_LOCAL_TIME", "06:30")
    settings = Settings()
    assert settings.admins_for("demo") == ["admin@example.com"]
    assert settings.time_zone_for("demo") == "America/New_York"
    assert settings.digest_time() == (6, 30)


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

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "starter.cli"]


async def cartkeeper(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


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
