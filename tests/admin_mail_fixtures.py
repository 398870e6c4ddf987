"""What the tests of the admin e-mail (``test_alerts``, ``test_digest``,
``test_digest_schedule``) share: the read model on SQLite and PostgreSQL
(``TEST_DATABASE_URL``), its rows (with a customer's data that must never reach an admin
e-mail), the settings and the messages the SMTP server (aiosmtpd) received.

Not a conftest: import what you need (the ``db`` fixture too)."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.testing import ActivityEnvironment

from activities.models import AdminNotice, CartRecord
from activities.settings import Settings
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_smtp import Handler
from workflows.cart_mail import EFFECT_GIVE_UP, SEND_TIMEOUT

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
LOCKED_AT = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
ADMINS = ["admin@example.com", "ops@example.com"]
#: the customer's data, which must never appear in an alert
CUSTOMER_EMAIL = "ann.customer@example.org"
CUSTOMER_NAME = "Ann Customerova"


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


def cart_row(shop_id: str, cart_id: str, **values: Any) -> CartRecord:
    """A read-model row with sensible defaults (and the customer's data in it)."""
    row: dict[str, Any] = {
        "shop_id": shop_id,
        "cart_id": cart_id,
        "state": "active",
        "version": 1,
        "currency": "EUR",
        "total": 4900,
        "item_count": 2,
        "customer_email": CUSTOMER_EMAIL,
        "customer_id": "cust-1",
        "order_number": None,
        "order_status": None,
        "order_paid": False,
        "order_amount_paid": 0,
        "needs_admin": False,
        "lock_reason": None,
        "attention": None,
        "lineage": "run-1",
        "recovered_via": None,
        "coupon_code": None,
        "created_at": LOCKED_AT - timedelta(hours=1),
        "updated_at": LOCKED_AT - timedelta(minutes=5),
        "last_activity_at": None,
        "locked_at": None,
        "abandoned_at": None,
        "ordered_at": None,
        "closed_at": None,
        "projected_at": LOCKED_AT,
        "snapshot": {"customer": {"email": CUSTOMER_EMAIL, "name": CUSTOMER_NAME}},
    }
    row.update(values)
    return CartRecord(**row)


async def add(db: ScratchDatabase, *rows: CartRecord) -> None:
    async with db.session_factory() as session:
        session.add_all(rows)
        await session.commit()


def settings_for(port: int, tmp_path: Path, **changes: Any) -> Settings:
    """The shop ``demo`` with two admins, the relay on ``port``."""
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "smtp_port": port,
        "smtp_timeout_seconds": 5,
        "shop_admins": {"demo": ADMINS},
        "alert_sender": "alerts@shop.example.com",
    }
    values.update(changes)
    return Settings(**values)


def received(handler: Handler) -> list[EmailMessage]:
    out = []
    for envelope in handler.received:
        content = envelope.content
        data = content if isinstance(content, bytes) else str(content).encode()
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        out.append(message)
    return out


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


class HeldHandler(Handler):
    """A relay that holds every message in DATA (``arrived`` set) until ``go`` is set:
    a delivery under way for as long as a test needs, not for as long as timing allows."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.arrived = asyncio.Event()
        self.go = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.arrived.set()
        await self.go.wait()
        return await super().handle_DATA(server, session, envelope)


async def notice_of(db: ScratchDatabase, shop_id: str, key: str) -> AdminNotice | None:
    """The notice's row as it is now (``admin_notices``)."""
    async with db.session_factory() as session:
        return await session.get(AdminNotice, (shop_id, key))


async def add_notice(
    db: ScratchDatabase, shop_id: str, key: str, kind: str, claimed_at: datetime
) -> None:
    """An unsent notice claimed at ``claimed_at`` (by a delivery under way, or one whose
    process died)."""
    async with db.session_factory() as session:
        session.add(
            AdminNotice(
                shop_id=shop_id,
                key=key,
                kind=kind,
                created_at=claimed_at,
                sent_at=None,
                claimed_at=claimed_at,
            )
        )
        await session.commit()


def mail_activity_env() -> ActivityEnvironment:
    """An activity environment whose attempt started now with the workflow's timeouts for
    an e-mail (``SEND_TIMEOUT``, ``EFFECT_GIVE_UP``): its budget is the deployed one. The
    SDK's default info started in 1970 with 1 s timeouts, a budget of 1 s, which a
    delivery on a loaded machine overran (``smtp_timeout``)."""
    env = ActivityEnvironment()
    now = datetime.now(UTC)
    env.info = dataclasses.replace(
        env.info,
        started_time=now,
        scheduled_time=now,
        current_attempt_scheduled_time=now,
        start_to_close_timeout=SEND_TIMEOUT,
        schedule_to_close_timeout=EFFECT_GIVE_UP,
    )
    return env
