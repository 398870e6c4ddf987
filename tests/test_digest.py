"""The daily digest: its content from a read model we fill (``activities.digest``), sent
once per shop and day through a real SMTP server (aiosmtpd); the settings. Read model on
SQLite and PostgreSQL (``TEST_DATABASE_URL``). Its schedule, workflow and command line:
``test_digest_schedule``."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities import admin_mail
from activities.digest import DigestActivities, build_digest, day_bounds, render_digest
from activities.models import AdminNotice
from activities.settings import Settings
from tests import admin_mail_fixtures
from tests.admin_mail_fixtures import (
    ADMINS,
    CUSTOMER_EMAIL,
    CUSTOMER_NAME,
    HeldHandler,
    add,
    cart_row,
    mail_activity_env,
    notice_of,
    parts,
    received,
)
from tests.conftest_db import ScratchDatabase
from tests.test_smtp import Handler, smtp_server
from workflows.alerts_contract import (
    ALERT_ALREADY_SENT,
    ALERT_NO_ADMINS,
    ALERT_NOTHING_TO_REPORT,
    ALERT_SENDING,
    ALERT_SENT,
    DigestInput,
)
from workflows.digest_workflow import digest_day

db = admin_mail_fixtures.db  # the read model, on SQLite and PostgreSQL

BERLIN = "Europe/Berlin"
#: 08:00 in Berlin on the digest's day; "yesterday" is 1 March there
NOW = datetime(2025, 3, 2, 7, 0, tzinfo=UTC)
DAY = date(2025, 3, 2)


def settings_for(port: int, tmp_path: Path, **changes: Any) -> Settings:
    """``admin_mail_fixtures.settings_for``, the shop ``demo`` in Berlin."""
    return admin_mail_fixtures.settings_for(
        port, tmp_path, **{"shop_time_zones": {"demo": BERLIN}, **changes}
    )


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
        env = mail_activity_env()
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


async def test_the_digest_sent_by_hand_while_its_schedule_sends_it_goes_once(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    """``cartkeeper digest send`` has the digest with the relay (held there) when the
    schedule's activity and another hand comes: the activity raises a retryable error
    (Temporal's retry finds it sent), the hand is told it is being sent; one e-mail."""
    await fill(db)
    handler = HeldHandler()
    async with smtp_server(handler) as port:
        acts = DigestActivities(db.session_factory, settings_for(port, tmp_path), clock=lambda: NOW)
        by_hand = asyncio.create_task(acts.send("demo", DAY))
        await asyncio.wait_for(handler.arrived.wait(), 10)
        env = mail_activity_env()
        env.info = dataclasses.replace(
            env.info, start_to_close_timeout=None, schedule_to_close_timeout=None
        )
        with pytest.raises(ApplicationError) as busy:
            await env.run(acts.send_daily_digest, DigestInput("demo", DAY.isoformat()))
        second_hand = await acts.send("demo", DAY)
        handler.go.set()
        sent = await asyncio.wait_for(by_hand, 10)
        retried = await env.run(acts.send_daily_digest, DigestInput("demo", DAY.isoformat()))
    assert busy.value.type == ALERT_SENDING and not busy.value.non_retryable
    assert busy.value.next_retry_delay == admin_mail.BUSY_RETRY_DELAY
    assert second_hand.status == ALERT_SENDING and second_hand.message_id == sent.message_id
    assert sent.status == ALERT_SENT and sent.recipients == 2
    assert retried.status == ALERT_ALREADY_SENT and retried.sent_at == NOW
    assert len(handler.received) == 1
    notice = await notice_of(db, "demo", "digest:2025-03-02")
    assert notice is not None and notice.sent_at == NOW


async def test_concurrent_claims_take_a_notice_once(db: ScratchDatabase) -> None:
    """Many deliveries claiming one notice at once (each its own connection): one takes
    it, the others find it busy; once sent, every claim finds it sent."""
    sessions = db.session_factory
    key, kind = "digest:2025-03-02", admin_mail.KIND_DAILY_DIGEST
    claims = await asyncio.gather(
        *(admin_mail.claim(sessions, "demo", key, kind, NOW) for _ in range(8))
    )
    assert sorted(claim.outcome for claim in claims) == ["busy"] * 7 + ["taken"]
    await admin_mail.mark_sent(sessions, "demo", key, NOW)
    after = await admin_mail.claim(sessions, "demo", key, kind, NOW + admin_mail.CLAIM_FOR)
    assert after == admin_mail.Claim("sent", sent_at=NOW)


async def test_nothing_to_report_and_no_admins(db: ScratchDatabase, tmp_path: Path) -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        acts = DigestActivities(
            db.session_factory,
            settings_for(port, tmp_path, shop_admins={"demo": ADMINS, "other": []}),
            clock=lambda: NOW,
        )
        env = mail_activity_env()
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
