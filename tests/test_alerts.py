"""The lock alert (``activities.alerts.send_lock_alert``): one e-mail to the shop's admins
per (cart, lineage, lock), through a real SMTP server (aiosmtpd), whatever the retries;
nothing about the customer in it. On SQLite and PostgreSQL (``TEST_DATABASE_URL``)."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jinja2 import TemplateError
from sqlalchemy import inspect
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import admin_mail
from activities.admin_mail import BUSY_RETRY_DELAY, CLAIM_FOR, KIND_LOCK_ALERT, SEND_LIMIT
from activities.alerts import LockAlertActivities, lock_alert_key
from activities.models import AdminNotice
from tests import admin_mail_fixtures
from tests.admin_mail_fixtures import (
    ADMINS,
    CUSTOMER_EMAIL,
    CUSTOMER_NAME,
    LOCKED_AT,
    HeldHandler,
    add,
    add_notice,
    cart_row,
    mail_activity_env,
    notice_of,
    parts,
    received,
    settings_for,
)
from tests.conftest_db import ScratchDatabase
from tests.test_order_numbering import downgrade
from tests.test_smtp import Handler, smtp_server
from workflows.alerts_contract import (
    ALERT_ALREADY_SENT,
    ALERT_FAILED,
    ALERT_NO_ADMINS,
    ALERT_NO_LONGER_LOCKED,
    ALERT_SENDING,
    ALERT_SENT,
    LockAlertInput,
)

db = admin_mail_fixtures.db  # the read model, on SQLite and PostgreSQL

NOW = LOCKED_AT + timedelta(minutes=30, seconds=5)


def locked_input(cart_id: str = "c-locked", **changes: Any) -> LockAlertInput:
    values: dict[str, Any] = {
        "shop_id": "demo",
        "cart_id": cart_id,
        "lineage": "run-1",
        "locked_at": LOCKED_AT,
        "lock_reason": "no_payment_result",
        "total": 4900,
        "currency": "EUR",
        "attempt_ids": ["pay-1a2b", "pay-3c4d"],
    }
    values.update(changes)
    return LockAlertInput(**values)


async def test_the_lock_alert_is_sent_once_to_the_admins(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    await add(
        db,
        cart_row(
            "demo",
            "c-locked",
            state="locked",
            needs_admin=True,
            lock_reason="no_payment_result",
            locked_at=LOCKED_AT,
            updated_at=LOCKED_AT,
        ),
    )
    handler = Handler()
    async with smtp_server(handler) as port:
        acts = LockAlertActivities(
            db.session_factory, settings_for(port, tmp_path), clock=lambda: NOW
        )
        env = mail_activity_env()
        first = await env.run(acts.send_lock_alert, locked_input())
        again = await env.run(acts.send_lock_alert, locked_input())  # a retry, a replay
    assert first.status == ALERT_SENT and first.recipients == 2
    assert again.status == ALERT_ALREADY_SENT
    assert again.message_id == first.message_id and again.sent_at == first.sent_at
    (message,) = received(handler)
    assert sorted(handler.received[0].rcpt_tos) == sorted(ADMINS)
    assert message["Message-ID"] == first.message_id
    assert message["From"] == "cartkeeper <alerts@shop.example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    subject = str(message["Subject"])
    assert "c-locked" in subject and "30 min" in subject and "€49.00" in subject
    text, html = parts(message)
    for body in (text, html):
        assert "c-locked" in body and "€49.00" in body
        assert "30 min" in body  # how long it has been locked
        assert "no payment result came back" in body  # why
        assert "pay-1a2b" in body and "pay-3c4d" in body
        assert "cartkeeper carts confirm c-locked" in body
        assert "cartkeeper carts unlock c-locked" in body
        assert "2025-03-01 12:00 UTC" in body
    # nothing about the customer, anywhere in the message
    raw = b"".join(
        envelope.content if isinstance(envelope.content, bytes) else b""
        for envelope in handler.received
    ).decode()
    for personal in (CUSTOMER_EMAIL, CUSTOMER_NAME, "cust-1", "Ann"):
        assert personal not in raw and personal not in text and personal not in html
    async with db.session_factory() as session:
        notice = await session.get(AdminNotice, ("demo", lock_alert_key(locked_input())))
        assert notice is not None and notice.kind == "lock_alert"
        assert notice.sent_at == first.sent_at == NOW


async def test_a_relay_that_says_try_later_is_retried_and_sends_once(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    handler = Handler(rcpt_answer="451 4.3.0 try again later")
    async with smtp_server(handler) as port:
        acts = LockAlertActivities(
            db.session_factory, settings_for(port, tmp_path), clock=lambda: NOW
        )
        env = mail_activity_env()
        with pytest.raises(ApplicationError) as refused:
            await env.run(acts.send_lock_alert, locked_input())
        assert refused.value.type == "smtp_unavailable" and not refused.value.non_retryable
        notice = await notice_of(db, "demo", lock_alert_key(locked_input()))
        assert notice is not None and notice.claimed_at is None, "the claim was given back"
        handler.rcpt_answer = None  # the relay is back: Temporal's retry
        sent = await env.run(acts.send_lock_alert, locked_input())
        again = await env.run(acts.send_lock_alert, locked_input())
    assert sent.status == ALERT_SENT and again.status == ALERT_ALREADY_SENT
    assert len(handler.received) == 1


async def test_an_attempt_stops_before_its_timeout_and_the_retry_sends_once(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    """A relay stalled in DATA: the attempt stops after its budget (start-to-close less
    the margin) with a retryable ``smtp_timeout``, before Temporal would start the next
    one beside it (``activities.attempt_budget``)."""
    handler = Handler(data_delay=3.0)
    async with smtp_server(handler) as port:
        acts = LockAlertActivities(
            db.session_factory, settings_for(port, tmp_path), clock=lambda: NOW
        )
        env = mail_activity_env()
        env.info = dataclasses.replace(
            env.info, start_to_close_timeout=timedelta(seconds=11), schedule_to_close_timeout=None
        )
        started = time.monotonic()
        with pytest.raises(ApplicationError) as stopped:
            await env.run(acts.send_lock_alert, locked_input())
        assert time.monotonic() - started < 2.5, "stopped after its 1 s budget"
        assert stopped.value.type == "smtp_timeout" and not stopped.value.non_retryable
        handler.data_delay = 0.0
        sent = await env.run(acts.send_lock_alert, locked_input())
    assert sent.status == ALERT_SENT
    # the stalled DATA may still arrive: under the same Message-ID, never another
    ids = {
        email.message_from_bytes(envelope.content)["Message-ID"]
        for envelope in handler.received
        if isinstance(envelope.content, bytes)
    }
    assert ids == {sent.message_id}


async def test_a_crash_after_the_relay_took_it_resends_the_same_message(
    db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The at-least-once window: the relay took the message, the ``sent`` commit did
    not happen; its claim holds (the message may be out), so a retry waits until it has
    expired, then sends it again with the same Message-ID, then never again."""
    from activities import admin_mail

    real_mark_sent = admin_mail.mark_sent

    async def crash(*args: Any) -> None:
        raise ConnectionError("the worker died")

    handler = Handler()
    now = [NOW]
    async with smtp_server(handler) as port:
        acts = LockAlertActivities(
            db.session_factory, settings_for(port, tmp_path), clock=lambda: now[0]
        )
        monkeypatch.setattr(admin_mail, "mark_sent", crash)
        with pytest.raises(ConnectionError):
            await mail_activity_env().run(acts.send_lock_alert, locked_input())
        monkeypatch.setattr(admin_mail, "mark_sent", real_mark_sent)
        with pytest.raises(ApplicationError) as held:
            await mail_activity_env().run(acts.send_lock_alert, locked_input())
        assert held.value.type == ALERT_SENDING and not held.value.non_retryable
        now[0] = NOW + CLAIM_FOR  # the claim has expired: Temporal's later retry
        retried = await mail_activity_env().run(acts.send_lock_alert, locked_input())
        again = await mail_activity_env().run(acts.send_lock_alert, locked_input())
    assert retried.status == ALERT_SENT and again.status == ALERT_ALREADY_SENT
    first, second = received(handler)
    assert first["Message-ID"] == second["Message-ID"] == retried.message_id


def unbounded(env: ActivityEnvironment) -> ActivityEnvironment:
    """``env`` without timeouts (its default budget is 1 s): bounded by ``SEND_LIMIT``."""
    env.info = dataclasses.replace(
        env.info, start_to_close_timeout=None, schedule_to_close_timeout=None
    )
    return env


async def test_two_deliveries_at_once_send_one_alert(db: ScratchDatabase, tmp_path: Path) -> None:
    """The alert is with the relay (held there) when a second delivery of it comes: that
    one sends nothing and raises a retryable error; Temporal's retry finds it sent."""
    handler = HeldHandler()
    async with smtp_server(handler) as port:
        acts = LockAlertActivities(
            db.session_factory, settings_for(port, tmp_path), clock=lambda: NOW
        )
        first = asyncio.create_task(
            unbounded(mail_activity_env()).run(acts.send_lock_alert, locked_input())
        )
        await asyncio.wait_for(handler.arrived.wait(), 10)
        with pytest.raises(ApplicationError) as busy:
            await unbounded(mail_activity_env()).run(acts.send_lock_alert, locked_input())
        handler.go.set()
        sent = await asyncio.wait_for(first, 10)
        retried = await mail_activity_env().run(acts.send_lock_alert, locked_input())
    assert busy.value.type == ALERT_SENDING and not busy.value.non_retryable
    assert busy.value.next_retry_delay == BUSY_RETRY_DELAY
    assert sent.status == ALERT_SENT
    assert retried.status == ALERT_ALREADY_SENT and retried.message_id == sent.message_id
    assert len(handler.received) == 1


async def test_a_failed_delivery_gives_its_claim_back(
    db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused by the relay, or not made: the claim is given back and the next delivery
    sends at once (the same time: no claim to wait out)."""
    key = lock_alert_key(locked_input())
    handler = Handler(rcpt_answer="550 5.1.1 no such user")
    async with smtp_server(handler) as port:
        acts = LockAlertActivities(
            db.session_factory, settings_for(port, tmp_path), clock=lambda: NOW
        )
        env = mail_activity_env()
        refused = await env.run(acts.send_lock_alert, locked_input())
        after_refusal = await notice_of(db, "demo", key)
        handler.rcpt_answer = None

        def broken(request: LockAlertInput) -> Any:
            raise TemplateError("the template is broken")

        monkeypatch.setattr(acts, "render", broken)
        not_made = await env.run(acts.send_lock_alert, locked_input())
        after_template = await notice_of(db, "demo", key)
        monkeypatch.undo()
        sent = await env.run(acts.send_lock_alert, locked_input())
    assert refused.status == ALERT_FAILED and not_made.status == ALERT_FAILED
    for notice in (after_refusal, after_template):
        assert notice is not None and notice.claimed_at is None and notice.sent_at is None
    assert sent.status == ALERT_SENT and len(handler.received) == 1


async def test_a_claim_whose_answer_was_lost_or_a_cancelled_delivery_gives_it_back(
    db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim is committed but its answer never comes back (the connection drops after
    the commit), or the delivery is cancelled while the relay has the message: the claim
    is given back all the same (by the stamp the delivery chose before claiming), so the
    retry sends at once instead of waiting ``CLAIM_FOR``."""
    key = lock_alert_key(locked_input())
    real_claim = admin_mail.claim

    async def committed_then_lost(*args: Any) -> Any:
        await real_claim(*args)
        raise OSError("connection lost after the commit")

    handler = HeldHandler()
    async with smtp_server(handler) as port:
        acts = LockAlertActivities(
            db.session_factory, settings_for(port, tmp_path), clock=lambda: NOW
        )
        env = mail_activity_env()
        monkeypatch.setattr(admin_mail, "claim", committed_then_lost)
        with pytest.raises(OSError):
            await env.run(acts.send_lock_alert, locked_input())
        after_lost = await notice_of(db, "demo", key)
        monkeypatch.undo()

        delivery = asyncio.create_task(env.run(acts.send_lock_alert, locked_input()))
        await asyncio.wait_for(handler.arrived.wait(), 10)
        delivery.cancel()
        with pytest.raises(asyncio.CancelledError):
            await delivery
        after_cancel = await notice_of(db, "demo", key)
        handler.go.set()
        handler.arrived.clear()
        sent = await asyncio.wait_for(env.run(acts.send_lock_alert, locked_input()), 10)
    for notice in (after_lost, after_cancel):
        assert notice is not None and notice.claimed_at is None and notice.sent_at is None
    assert sent.status == ALERT_SENT


async def test_the_claim_of_a_crashed_delivery_expires(db: ScratchDatabase, tmp_path: Path) -> None:
    """A delivery whose process died holds its claim ``CLAIM_FOR``, longer than any
    delivery may take (``SEND_LIMIT``); after that the next one takes it over."""
    assert CLAIM_FOR > SEND_LIMIT
    key = lock_alert_key(locked_input())
    await add_notice(db, "demo", key, KIND_LOCK_ALERT, NOW - CLAIM_FOR + timedelta(seconds=1))
    handler = Handler()
    async with smtp_server(handler) as port:
        later = [NOW]
        acts = LockAlertActivities(
            db.session_factory, settings_for(port, tmp_path), clock=lambda: later[0]
        )
        env = mail_activity_env()
        with pytest.raises(ApplicationError) as busy:
            await env.run(acts.send_lock_alert, locked_input())
        held = await notice_of(db, "demo", key)
        nothing = list(handler.received)
        later[0] = NOW + timedelta(seconds=1)  # the claim is CLAIM_FOR old now
        sent = await env.run(acts.send_lock_alert, locked_input())
    assert busy.value.type == ALERT_SENDING and nothing == []
    assert held is not None and held.claimed_at == NOW - CLAIM_FOR + timedelta(seconds=1)
    assert sent.status == ALERT_SENT and len(handler.received) == 1
    notice = await notice_of(db, "demo", key)
    assert notice is not None and notice.claimed_at == notice.sent_at == later[0]


async def test_0015_adds_the_claim_and_is_undone(db: ScratchDatabase) -> None:
    async def columns() -> set[str]:
        async with db.engine.connect() as connection:
            return await connection.run_sync(
                lambda c: {column["name"] for column in inspect(c).get_columns("admin_notices")}
            )

    assert "claimed_at" in await columns()
    await add_notice(db, "demo", "digest:2025-03-02", "daily_digest", NOW)
    await downgrade(db, "0014")
    assert "claimed_at" not in await columns()
    await db.upgrade()
    assert "claimed_at" in await columns()
    notice = await notice_of(db, "demo", "digest:2025-03-02")
    assert notice is not None and notice.claimed_at is None, "the row kept, unclaimed"


async def test_each_lock_of_a_cart_gets_its_own_alert(db: ScratchDatabase, tmp_path: Path) -> None:
    handler = Handler()
    later = LOCKED_AT + timedelta(hours=2)
    async with smtp_server(handler) as port:
        acts = LockAlertActivities(
            db.session_factory,
            settings_for(port, tmp_path),
            clock=lambda: later + timedelta(minutes=31),
        )
        env = mail_activity_env()
        one = await env.run(acts.send_lock_alert, locked_input())
        two = await env.run(acts.send_lock_alert, locked_input(locked_at=later))
        other_lineage = await env.run(acts.send_lock_alert, locked_input(lineage="run-2"))
    assert [one.status, two.status, other_lineage.status] == [ALERT_SENT] * 3
    assert len({one.message_id, two.message_id, other_lineage.message_id}) == 3
    assert len(handler.received) == 3


async def test_a_shop_without_admins_gets_no_alert(
    db: ScratchDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        acts = LockAlertActivities(
            db.session_factory,
            settings_for(port, tmp_path, shop_admins={"other": ["a@example.com"]}),
            clock=lambda: NOW,
        )
        result = await mail_activity_env().run(acts.send_lock_alert, locked_input())
    assert result.status == ALERT_NO_ADMINS and "no admin addresses" in (result.detail or "")
    assert "no admin addresses" in caplog.text
    assert handler.received == []


async def test_no_alert_for_a_lock_the_read_model_shows_is_over(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    """The relay was down past the admin's action: the alert is dropped. A read model
    that lags (the lock not projected yet) never stops it."""
    await add(
        db,
        # confirmed since: the same lineage, newer
        cart_row(
            "demo",
            "c-done",
            state="ordered",
            updated_at=LOCKED_AT + timedelta(minutes=40),
            locked_at=None,
        ),
        # the read model has not seen the lock yet
        cart_row("demo", "c-lagging", state="payment_pending", updated_at=LOCKED_AT - timedelta(1)),
        # the same id, another (older) cart
        cart_row("demo", "c-other", state="active", lineage="run-0", updated_at=NOW),
    )
    handler = Handler()
    async with smtp_server(handler) as port:
        acts = LockAlertActivities(
            db.session_factory, settings_for(port, tmp_path), clock=lambda: NOW
        )
        env = mail_activity_env()
        done = await env.run(acts.send_lock_alert, locked_input("c-done"))
        lagging = await env.run(acts.send_lock_alert, locked_input("c-lagging"))
        other = await env.run(acts.send_lock_alert, locked_input("c-other"))
    assert done.status == ALERT_NO_LONGER_LOCKED and "ordered" in (done.detail or "")
    assert lagging.status == ALERT_SENT and other.status == ALERT_SENT
    assert len(handler.received) == 2


def test_a_lock_alert_input_survives_the_payload_converter() -> None:
    from temporalio.converter import DataConverter

    converter = DataConverter.default.payload_converter
    request = locked_input()
    (payload,) = converter.to_payloads([request])
    (back,) = converter.from_payloads([payload], [LockAlertInput])
    assert back == request
