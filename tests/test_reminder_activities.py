"""The reminder activities (``activities.reminder_activities``) on SQLite and PostgreSQL,
called in an activity context against a real SMTP server (aiosmtpd on the test's loop):
the plan, one e-mail per cart and reminder through retries and crashes, every check at the
moment of sending, and the workflow's own skips written to the ledger by the projection."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import reminder_ledger
from activities.attempt_budget import attempt_budget
from activities.campaigns import (
    CampaignConfig,
    CouponOffer,
    ReminderDefinition,
    ReminderVariant,
    remove_reminder,
    save_campaign,
    save_reminder,
)
from activities.cart_activities import CartActivities
from activities.db import write_session
from activities.links import Links, RecoveryClaim, UnsubscribeClaim
from activities.mail_render import message_id, money
from activities.models import CartRecord, Coupon, ReminderSend, Suppression
from activities.reminder_activities import ReminderActivities
from activities.reminder_checks import ReminderKey, quiet_until, time_zone, variant_for
from activities.settings import Settings
from tests.admin_mail_fixtures import mail_activity_env
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_smtp import Handler, smtp_server
from workflows.codes import CartState, ReminderStatus, SkipReason
from workflows.contract import (
    Cart,
    CartLine,
    CustomerInfo,
    PlanRemindersInput,
    ProjectCartInput,
    ReminderOutcome,
    RemindersPlanned,
    ReminderStep,
    SendReminderInput,
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
SHOP = "shop-1"
KEY = "k" * 40
PUBLIC = "https://shop.example.com/app"
DOMAIN = "mail.example.com"
#: Tuesday 1 December 2026, 12:00 UTC: 13:00 in Berlin, 22:00 in Brisbane, 04:00 in LA
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ABANDONED = T0 - timedelta(hours=2)
ADDRESS = "Ann.Example@Example.com"


class Clock:
    """The activities' clock, moved by the tests."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
async def relay() -> AsyncIterator[tuple[Handler, int]]:
    handler = Handler()
    async with smtp_server(handler) as port:
        yield handler, port


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def acts(
    db: ScratchDatabase, relay: tuple[Handler, int], clock: Clock, tmp_path: Path
) -> ReminderActivities:
    settings = Settings(
        data_dir=tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=relay[1],
        smtp_timeout_seconds=5,
        secret_key=SecretStr(KEY),
        public_url=PUBLIC,
        mail_domain=DOMAIN,
    )
    return ReminderActivities(db.session_factory, settings, clock=clock)


@pytest.fixture
def received(relay: tuple[Handler, int]) -> Handler:
    return relay[0]


# --------------------------------------------------------------------------- helpers

TEN_PERCENT = CouponOffer(kind="percent", amount=10, expiry_days=7)
FIVE_HUNDRED = CouponOffer(kind="fixed", amount=500, expiry_days=3)


def reminder(
    reminder_id: str,
    position: int,
    delay: timedelta,
    *,
    automatic: bool = True,
    subject: str = "Your cart is waiting",
    coupon: CouponOffer | None = None,
    b: ReminderVariant | None = None,
) -> ReminderDefinition:
    return ReminderDefinition(
        reminder_id=reminder_id,
        position=position,
        name=f"Reminder {position}",
        delay_seconds=int(delay.total_seconds()),
        automatic=automatic,
        a=ReminderVariant(subject=subject, template="reminder", coupon=coupon),
        b=b,
    )


async def campaign(db: ScratchDatabase, **settings: Any) -> None:
    """A campaign: r1 after an hour (a fixed coupon), r2 after a day (variants a and b,
    b with a percent coupon), r3 manual; no quiet hours unless asked."""
    fields: dict[str, Any] = {
        "shop_name": "Demo Shop",
        "sender": "shop@example.com",
        "quiet_start_minute": 0,
        "quiet_end_minute": 0,
        **settings,
    }
    sessions = db.session_factory
    await save_campaign(sessions, CampaignConfig(shop_id=SHOP, **fields), T0 - timedelta(days=9))
    for definition in (
        reminder("r1", 1, timedelta(hours=1), coupon=FIVE_HUNDRED),
        reminder(
            "r2",
            2,
            timedelta(days=1),
            b=ReminderVariant(subject="Still there?", template="reminder", coupon=TEN_PERCENT),
        ),
        reminder("r3", 3, timedelta(days=2), automatic=False, subject="A word from us"),
    ):
        await save_reminder(sessions, SHOP, definition, T0 - timedelta(days=9))


def cart(
    cart_id: str = "cart-1",
    *,
    address: str | None = ADDRESS,
    consent: bool = True,
    zone: str | None = "Europe/Berlin",
    locale: str = "en",
    currency: str = "JPY",
    state: CartState = CartState.ABANDONED,
    created_at: datetime = ABANDONED - timedelta(hours=1),
) -> Cart:
    customer = (
        CustomerInfo(
            email=address,
            name="Ann",
            locale=locale,
            time_zone=zone,
            marketing_consent=consent,
        )
        if address is not None
        else None
    )
    return Cart(
        shop_id=SHOP,
        cart_id=cart_id,
        state=state,
        version=3,
        currency=currency,
        lines=[
            CartLine(sku="mug", name="Blue mug", quantity=2, unit_price=1200),
            CartLine(sku="tea", name="Green tea", quantity=1, unit_price=650),
        ],
        customer=customer,
        lineage=f"run-{cart_id}",
        created_at=created_at,
        updated_at=ABANDONED,
        last_activity_at=ABANDONED - timedelta(hours=1),
        abandoned_at=ABANDONED,
    )


def request(
    the_cart: Cart, reminder_id: str = "r1", *, manual: bool = False, variant: str | None = None
) -> SendReminderInput:
    due = ABANDONED + timedelta(hours=1) if not manual else T0
    return SendReminderInput(
        cart=the_cart,
        reminder_id=reminder_id,
        sequence=1,
        due_at=due,
        variant=variant,
        manual=manual,
    )


def through_temporal(value: Any, kind: type) -> Any:
    """``value`` as an activity gets it (and a workflow its result): encoded to Temporal's
    JSON payload and decoded again."""
    converter = DataConverter.default.payload_converter
    (decoded,) = converter.from_payloads(converter.to_payloads([value]), [kind])
    return decoded


async def send(acts: ReminderActivities, what: SendReminderInput) -> ReminderOutcome:
    request = through_temporal(what, SendReminderInput)
    result = await mail_activity_env().run(acts.send_reminder, request)
    decoded: ReminderOutcome = through_temporal(result, ReminderOutcome)
    return decoded


async def plan(acts: ReminderActivities, what: PlanRemindersInput) -> RemindersPlanned:
    request = through_temporal(what, PlanRemindersInput)
    result = await mail_activity_env().run(acts.plan_reminders, request)
    decoded: RemindersPlanned = through_temporal(result, RemindersPlanned)
    return decoded


def plan_input(
    cart_id: str = "cart-1", *, sequence: int = 1, email: str | None = ADDRESS, **fields: Any
) -> PlanRemindersInput:
    return PlanRemindersInput(
        shop_id=SHOP,
        cart_id=cart_id,
        lineage=f"run-{cart_id}",
        sequence=sequence,
        abandoned_at=ABANDONED,
        email=email,
        marketing_consent=fields.pop("marketing_consent", True),
        **fields,
    )


def messages(handler: Handler) -> list[EmailMessage]:
    out = []
    for envelope in handler.received:
        content = envelope.content or b""
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        out.append(parsed)
    return out


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


async def ledger(db: ScratchDatabase, cart_id: str = "cart-1", reminder_id: str = "r1") -> Any:
    async with db.session_factory() as session:
        return await session.get(ReminderSend, (SHOP, cart_id, f"run-{cart_id}", reminder_id))


async def count(db: ScratchDatabase, model: Any) -> int:
    async with db.session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


# --------------------------------------------------------------------------- plan


async def test_a_shop_without_a_campaign_plans_nothing(acts: ReminderActivities) -> None:
    planned = await plan(acts, plan_input())
    assert planned == RemindersPlanned(1, None, [], note="the shop has no reminder campaign")


async def test_the_once_rule_plans_the_first_abandonment_only(
    db: ScratchDatabase, acts: ReminderActivities
) -> None:
    await campaign(db, restart_rule="once")
    first = await plan(acts, plan_input())
    assert [item.reminder_id for item in first.reminders] == ["r1", "r2"]
    again = await plan(acts, plan_input(sequence=2))
    assert again.reminders == [] and again.sequence == 2
    assert again.note is not None and "once" in again.note


async def test_the_plan_has_the_automatic_reminders_at_their_times(
    db: ScratchDatabase, acts: ReminderActivities
) -> None:
    await campaign(db)
    await save_reminder(
        db.session_factory, SHOP, reminder("r4", 4, timedelta(days=3)), T0 - timedelta(days=9)
    )
    await remove_reminder(db.session_factory, SHOP, "r4", T0 - timedelta(days=8))
    planned = await plan(acts, plan_input())
    assert planned.campaign_version is not None and planned.campaign_version >= 5
    by_id = {item.reminder_id: item for item in planned.reminders}
    assert list(by_id) == ["r1", "r2"], "manual and removed reminders are not planned"
    assert by_id["r1"].due_at == ABANDONED + timedelta(hours=1)
    assert by_id["r2"].due_at == ABANDONED + timedelta(days=1)
    assert by_id["r1"].variant is None and by_id["r2"].variant in ("a", "b")
    assert all(item.skipped is None for item in planned.reminders)
    # what was sent already is not planned again (the ``continue`` rule)
    later = await plan(acts, plan_input(sequence=2, sent=["r1"]))
    assert [item.reminder_id for item in later.reminders] == ["r2"]


async def test_variants_are_split_per_cart_and_stable(
    db: ScratchDatabase, acts: ReminderActivities
) -> None:
    await campaign(db)
    variants = {}
    for number in range(40):
        planned = await plan(acts, plan_input(f"cart-{number}"))
        (r2,) = [item for item in planned.reminders if item.reminder_id == "r2"]
        variants[number] = r2.variant
        again = await plan(acts, plan_input(f"cart-{number}"))
        assert [item.variant for item in again.reminders] == [
            item.variant for item in planned.reminders
        ]
    assert set(variants.values()) == {"a", "b"}, "both variants get carts"
    assert 8 <= list(variants.values()).count("b") <= 32
    # the split is CRC-32 of the ids, the same in every process (never ``hash``)
    key = ReminderKey(SHOP, "cart-7", "run-cart-7", "r2")
    assert variants[7] == variant_for(key, True)


@pytest.mark.parametrize(
    ("setup", "fields", "reason"),
    [
        ({"enabled": False}, {}, SkipReason.CAMPAIGN_DISABLED),
        ({}, {"email": None}, SkipReason.NO_ADDRESS),
        ({"requires_consent": True}, {"marketing_consent": False}, SkipReason.NO_CONSENT),
    ],
    ids=["disabled", "no-address", "no-consent"],
)
async def test_a_plan_skips_with_a_reason(
    db: ScratchDatabase,
    acts: ReminderActivities,
    setup: dict[str, Any],
    fields: dict[str, Any],
    reason: SkipReason,
) -> None:
    await campaign(db, **setup)
    planned = await plan(acts, plan_input(**fields))
    assert [item.reminder_id for item in planned.reminders] == ["r1", "r2"]
    assert {item.skipped for item in planned.reminders} == {reason}
    # consent given, or not required: planned
    if reason is SkipReason.NO_CONSENT:
        consenting = await plan(acts, plan_input(marketing_consent=True))
        assert {item.skipped for item in consenting.reminders} == {None}


# --------------------------------------------------------------------------- send


async def test_a_reminder_is_sent_once_with_everything_in_it(
    db: ScratchDatabase,
    acts: ReminderActivities,
    received: Handler,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await campaign(db)
    the_cart = cart()
    with caplog.at_level(logging.INFO, logger="cartkeeper.reminders"):
        outcome = await send(acts, request(the_cart))
    expected_id = message_id(SHOP, "cart-1", "run-cart-1:r1", DOMAIN)
    assert outcome.status is ReminderStatus.SENT and outcome.reason is None
    assert outcome.message_id == expected_id and outcome.at == T0
    assert outcome.name == "Reminder 1" and outcome.variant is None
    assert outcome.coupon_code is not None

    (message,) = messages(received)
    (envelope,) = received.received
    assert envelope.rcpt_tos == [ADDRESS], "sent to the address as the customer wrote it"
    assert message["Message-ID"] == expected_id
    assert message["Subject"] == "Your cart is waiting"
    assert message["From"].addresses[0].addr_spec == "shop@example.com"
    text = text_of(message)
    # amounts in the cart's own currency (JPY has no decimals), the coupon and its value
    assert money(2400, "JPY", "en") in text and money(3050, "JPY", "en") in text
    assert money(500, "JPY", "en") in text and outcome.coupon_code in text
    # the links: recovery and unsubscribe, signed, readable by the web endpoint
    links = Links(KEY)
    recovery = re.search(re.escape(PUBLIC) + r"/r/(\S+)", text)
    unsubscribe = re.search(re.escape(PUBLIC) + r"/u/(\S+)", text)
    assert recovery is not None and unsubscribe is not None
    assert links.read_recovery(recovery.group(1)) == RecoveryClaim(SHOP, "cart-1", "r1")
    assert links.read_unsubscribe(unsubscribe.group(1)) == UnsubscribeClaim(SHOP, ADDRESS.lower())
    assert message["List-Unsubscribe"] == f"<{unsubscribe.group(0)}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    row = await ledger(db)
    assert (row.status, row.email, row.message_id, row.coupon_code) == (
        "sent",
        ADDRESS.lower(),
        expected_id,
        outcome.coupon_code,
    )
    assert row.sent_at == T0 and row.currency == "JPY" and row.due_at == request(the_cart).due_at
    async with db.session_factory() as session:
        coupon = await session.get(Coupon, (SHOP, outcome.coupon_code))
    assert coupon is not None
    assert (coupon.kind, coupon.amount, coupon.currency, coupon.issued_for) == (
        "fixed",
        500,
        "JPY",
        "r1",
    )
    # the at-least-once window is measured for every send
    (record,) = [item for item in caplog.records if hasattr(item, "window_ms")]
    assert record.window_ms >= 0 and ADDRESS.lower() not in record.getMessage().lower()

    # the same reminder again (a retry, a replay): the same answer, no second e-mail
    again = await send(acts, request(the_cart))
    assert again.status is ReminderStatus.SENT
    assert (again.message_id, again.coupon_code, again.at) == (
        outcome.message_id,
        outcome.coupon_code,
        outcome.at,
    )
    assert len(received.received) == 1


async def test_variant_b_has_its_own_subject_and_a_percent_coupon(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler
) -> None:
    await campaign(db)
    outcome = await send(acts, dataclasses.replace(request(cart(), "r2"), variant="b"))
    assert outcome.status is ReminderStatus.SENT and outcome.variant == "b"
    (message,) = messages(received)
    assert message["Subject"] == "Still there?"
    assert outcome.coupon_code is not None and outcome.coupon_code in text_of(message)
    async with db.session_factory() as session:
        coupon = await session.get(Coupon, (SHOP, outcome.coupon_code))
    assert coupon is not None and (coupon.kind, coupon.amount, coupon.currency) == (
        "percent",
        10,
        None,
    )
    row = await ledger(db, reminder_id="r2")
    assert row.variant == "b"


async def test_a_crash_after_the_relay_accepted_resends_the_same_message_id(
    db: ScratchDatabase,
    acts: ReminderActivities,
    received: Handler,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The documented at-least-once window: the relay took the message, the worker died
    before ``sent`` was committed. The retry sends it again with the same Message-ID (and
    the same coupon), never a new one."""
    await campaign(db)
    record_sent = acts.record_sent
    crashes: list[ReminderKey] = []

    async def crash_once(key: ReminderKey, sent_at: datetime) -> None:
        if not crashes:
            crashes.append(key)
            raise ConnectionError("the database went away")
        await record_sent(key, sent_at)

    monkeypatch.setattr(acts, "record_sent", crash_once)
    with pytest.raises(ConnectionError):
        await send(acts, request(cart()))
    assert (await ledger(db)).status == "sending"
    clock.now = T0 + timedelta(seconds=5)  # Temporal's retry, a moment later
    outcome = await send(acts, request(cart()))
    assert outcome.status is ReminderStatus.SENT
    first, second = messages(received)
    assert first["Message-ID"] == second["Message-ID"] == outcome.message_id
    assert outcome.coupon_code is not None
    assert outcome.coupon_code in text_of(first) and outcome.coupon_code in text_of(second)
    assert await count(db, Coupon) == 1
    assert (await ledger(db)).status == "sent"
    # and that is all: a third call sends nothing
    await send(acts, request(cart()))
    assert len(received.received) == 2


async def test_an_attempt_stops_before_its_timeout_so_retries_never_overlap(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler, clock: Clock
) -> None:
    """Temporal starts the next attempt once start-to-close has passed, even if the first
    still runs: an attempt stops itself ``ATTEMPT_MARGIN`` before (a relay that stalls in
    DATA), the row stays ``sending``, and the retry sends once, same Message-ID."""
    assert attempt_budget(timedelta(seconds=60)) == 50.0
    assert attempt_budget(timedelta(seconds=5)) == 1.0 and attempt_budget(None) is None
    # the workflow gives up on the activity sooner: the attempt stops before that
    assert attempt_budget(timedelta(seconds=60), timedelta(seconds=30)) == 20.0
    assert attempt_budget(None, timedelta(seconds=-3)) == 1.0
    await campaign(db)
    received.data_delay = 3.0
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, start_to_close_timeout=timedelta(seconds=11))
    started = time.monotonic()
    with pytest.raises(ApplicationError) as raised:
        await env.run(acts.send_reminder, through_temporal(request(cart()), SendReminderInput))
    assert time.monotonic() - started < 2.5, "stopped after its 1 s budget, not the relay's 3 s"
    assert raised.value.type == "send_timeout" and not raised.value.non_retryable
    row = await ledger(db)
    assert row.status == "sending"
    received.data_delay = 0.0
    clock.now = T0 + timedelta(seconds=11)  # the retry, once the timeout has passed
    outcome = await send(acts, request(cart()))
    assert outcome.status is ReminderStatus.SENT and outcome.message_id == row.message_id
    # the relay may still finish the stalled DATA: the same Message-ID
    ids = {message["Message-ID"] for message in messages(received)}
    assert ids == {row.message_id}


async def test_once_the_relay_accepted_the_budget_no_longer_applies(
    db: ScratchDatabase,
    acts: ReminderActivities,
    received: Handler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow ``sent`` record after the relay accepted the message is waited for: the
    attempt answers ``sent``, it is not turned into a failure (and a resend)."""
    await campaign(db)
    record_sent = acts.record_sent

    async def slow(key: ReminderKey, sent_at: datetime) -> None:
        await asyncio.sleep(2.0)  # the database busy: longer than the attempt's budget
        await record_sent(key, sent_at)

    monkeypatch.setattr(acts, "record_sent", slow)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        start_to_close_timeout=timedelta(seconds=11),
        schedule_to_close_timeout=None,
    )
    outcome = await env.run(
        acts.send_reminder, through_temporal(request(cart()), SendReminderInput)
    )
    assert outcome.status is ReminderStatus.SENT
    assert (await ledger(db)).status == "sent" and len(received.received) == 1


@pytest.mark.parametrize("reason", ["unsubscribed", "bounced"])
async def test_a_suppressed_address_gets_nothing(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler, reason: str
) -> None:
    await campaign(db)
    async with write_session(db.session_factory) as session:
        session.add(
            Suppression(
                shop_id=SHOP,
                email=ADDRESS.lower(),
                reason=reason,
                source="link",
                cart_id="cart-0",
                created_at=T0 - timedelta(days=1),
            )
        )
    outcome = await send(acts, request(cart()))
    assert outcome.status is ReminderStatus.SKIPPED and outcome.reason == SkipReason(reason)
    assert received.received == []
    row = await ledger(db)
    assert (row.status, row.reason, row.email) == ("skipped", reason, ADDRESS.lower())
    # the skip is the answer to a retry too (no second check, no e-mail)
    again = await send(acts, request(cart()))
    assert (again.status, again.reason, again.detail) == (
        outcome.status,
        outcome.reason,
        outcome.detail,
    )
    assert await count(db, Coupon) == 0


async def test_a_newer_cart_or_order_of_the_same_customer_stops_the_reminder(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler
) -> None:
    await campaign(db)
    projection = CartActivities(db.session_factory)
    # another customer's newer cart, and this customer's older cart: no matter
    other = dataclasses.replace(cart("cart-other", address="bob@example.com"), created_at=T0)
    older = dataclasses.replace(cart("cart-old"), created_at=ABANDONED - timedelta(days=3))
    for item in (other, older):
        await projection.project_cart(ProjectCartInput(cart=item))
    # a cart of the same customer (other case) created after this one was abandoned
    newer = dataclasses.replace(
        cart("cart-2", address=ADDRESS.upper()),
        state=CartState.ACTIVE,
        created_at=ABANDONED + timedelta(minutes=30),
    )
    await projection.project_cart(ProjectCartInput(cart=newer))
    outcome = await send(acts, request(cart()))
    assert outcome.status is ReminderStatus.SKIPPED and outcome.reason is SkipReason.NEWER_CART
    assert outcome.detail is not None and "cart-2" in outcome.detail
    assert received.received == []

    # a customer's older cart that was ordered after this cart was created
    this = cart("cart-3", address="carol@example.com", created_at=ABANDONED - timedelta(hours=5))
    ordered = dataclasses.replace(
        cart("cart-4", address="Carol@Example.com"),
        state=CartState.ORDERED,
        created_at=ABANDONED - timedelta(days=1),
        ordered_at=ABANDONED - timedelta(hours=4),
    )
    await projection.project_cart(ProjectCartInput(cart=ordered))
    outcome = await send(acts, request(this))
    assert outcome.reason is SkipReason.NEWER_CART
    assert outcome.detail is not None and "cart-4 ordered" in outcome.detail


async def test_the_customers_cap_is_kept(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler, clock: Clock
) -> None:
    await campaign(db, cap_count=2, cap_period_days=7)
    # reminders sent to the address for other carts: 10, 6 and 2 days ago (the first
    # outside the week)
    for number, days in ((7, 10), (6, 6), (5, 2)):
        clock.now = T0 - timedelta(days=days)
        outcome = await send(acts, request(cart(f"cart-{number}")))
        assert outcome.status is ReminderStatus.SENT
    clock.now = T0
    assert len(received.received) == 3
    outcome = await send(acts, request(cart()))
    assert outcome.status is ReminderStatus.SKIPPED and outcome.reason is SkipReason.CAP_REACHED
    assert outcome.detail is not None and ADDRESS.lower() not in outcome.detail.lower()
    assert len(received.received) == 3
    # another address is not capped; a day later the oldest of the two leaves the week
    other = await send(acts, request(cart("cart-8", address="bob@example.com")))
    assert other.status is ReminderStatus.SENT
    clock.now = T0 + timedelta(days=1, minutes=1)
    later = await send(acts, request(cart(), "r2"))
    assert later.status is ReminderStatus.SENT


@pytest.mark.parametrize(
    ("zone", "now", "retry_at"),
    [
        # 22:00 in Brisbane (UTC+10, no DST): the next 08:00 there is 22:00 UTC
        ("Australia/Brisbane", T0, datetime(2026, 12, 1, 22, 0, tzinfo=UTC)),
        # 01:30 in Brisbane, after midnight: 08:00 the same local day
        (
            "Australia/Brisbane",
            datetime(2026, 12, 1, 15, 30, tzinfo=UTC),
            datetime(2026, 12, 1, 22, 0, tzinfo=UTC),
        ),
        # 22:00 on 30 November in Los Angeles (UTC-8 in winter): 08:00 PST is 16:00 UTC
        (
            "America/Los_Angeles",
            datetime(2026, 12, 1, 6, 0, tzinfo=UTC),
            datetime(2026, 12, 1, 16, 0, tzinfo=UTC),
        ),
        # an unknown zone: the campaign's default (UTC here), 21:30 UTC
        (
            "Mars/Olympus_Mons",
            datetime(2026, 12, 1, 21, 30, tzinfo=UTC),
            datetime(2026, 12, 2, 8, 0, tzinfo=UTC),
        ),
    ],
    ids=["brisbane-evening", "brisbane-night", "los-angeles", "unknown-zone"],
)
async def test_quiet_hours_in_the_customers_time_zone_defer_the_reminder(
    db: ScratchDatabase,
    acts: ReminderActivities,
    received: Handler,
    clock: Clock,
    zone: str,
    now: datetime,
    retry_at: datetime,
) -> None:
    await campaign(db, quiet_start_minute=21 * 60, quiet_end_minute=8 * 60)
    clock.now = now
    outcome = await send(acts, request(cart(zone=zone)))
    assert outcome.status is ReminderStatus.PLANNED and outcome.reason is None
    assert outcome.retry_at == retry_at and outcome.retry_at.tzinfo is not None
    assert received.received == [] and await ledger(db) is None, "a deferral writes nothing"
    # at the allowed time it goes out
    clock.now = retry_at
    sent = await send(acts, request(cart(zone=zone)))
    assert sent.status is ReminderStatus.SENT and len(received.received) == 1


async def test_outside_quiet_hours_the_reminder_goes_out(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler, clock: Clock
) -> None:
    await campaign(db, quiet_start_minute=21 * 60, quiet_end_minute=8 * 60)
    # 12:00 UTC is 04:00 in LA (quiet) but 13:00 in Berlin
    assert (await send(acts, request(cart(zone="Europe/Berlin")))).status is ReminderStatus.SENT
    la = await send(acts, request(cart("cart-la", zone="America/Los_Angeles")))
    assert la.retry_at == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


def test_quiet_until() -> None:
    utc = time_zone(None, "UTC")
    at = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
    assert quiet_until(at, utc, 600, 600) is None, "equal: no quiet hours"
    assert quiet_until(at, utc, 12 * 60, 13 * 60) == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    assert quiet_until(at, utc, 13 * 60, 14 * 60) is None
    assert quiet_until(at, utc, 22 * 60, 12 * 60 + 30) is None, "the end is allowed"
    # summer in Los Angeles is UTC-7
    la = time_zone("America/Los_Angeles", "UTC")
    summer = datetime(2026, 7, 1, 5, 0, tzinfo=UTC)  # 22:00 PDT
    assert quiet_until(summer, la, 21 * 60, 8 * 60) == datetime(2026, 7, 1, 15, 0, tzinfo=UTC)
    # the night the clocks go forward: 02:30 does not exist, still a later time
    dst = datetime(2026, 3, 8, 9, 45, tzinfo=UTC)  # 01:45 PST
    until = quiet_until(dst, la, 0, 150)
    assert until is not None and until > dst
    assert time_zone("Nowhere/Else", "Also/Nowhere").key == "UTC"


async def test_a_transient_relay_failure_is_retried_and_sends_once(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler
) -> None:
    await campaign(db)
    received.rcpt_answer = "451 4.3.0 try again later"
    with pytest.raises(ApplicationError) as raised:
        await send(acts, request(cart()))
    assert not raised.value.non_retryable and raised.value.type == "smtp_unavailable"
    assert ADDRESS.lower() not in str(raised.value).lower(), "no address in the error"
    row = await ledger(db)
    assert row.status == "sending" and row.coupon_code is not None
    first_coupon = row.coupon_code
    received.rcpt_answer = None
    outcome = await send(acts, request(cart()))
    assert outcome.status is ReminderStatus.SENT and outcome.coupon_code == first_coupon
    assert len(received.received) == 1
    await send(acts, request(cart()))
    assert len(received.received) == 1
    assert await count(db, Coupon) == 1, "the coupon is issued once"


async def test_a_permanent_refusal_is_a_skip_and_a_bounce(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler
) -> None:
    await campaign(db)
    received.rcpt_answer = "550 5.1.1 no such user"
    outcome = await send(acts, request(cart()))
    assert outcome.status is ReminderStatus.SKIPPED and outcome.reason is SkipReason.SEND_FAILED
    assert outcome.detail is not None and "550 5.1.1 no such user" in outcome.detail
    assert ADDRESS.lower() not in outcome.detail.lower()
    row = await ledger(db)
    assert (row.status, row.reason) == ("skipped", "send_failed")
    async with db.session_factory() as session:
        bounce = await session.get(Suppression, (SHOP, ADDRESS.lower()))
    assert bounce is not None and (bounce.reason, bounce.source) == ("bounced", "smtp")
    # the next reminder to that address is not even tried
    received.rcpt_answer = None
    later = await send(acts, request(cart(), "r2"))
    assert later.reason is SkipReason.BOUNCED and received.received == []


async def test_a_skip_after_an_attempt_that_may_have_sent_says_so(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler
) -> None:
    """A ``sending`` row checked again before the resend: the customer unsubscribed in
    the meantime, so nothing more goes out, and the skip says an e-mail may have left."""
    await campaign(db)
    received.rcpt_answer = "451 4.3.0 try again later"
    with pytest.raises(ApplicationError):
        await send(acts, request(cart()))
    assert (await ledger(db)).status == "sending"
    async with write_session(db.session_factory) as session:
        session.add(
            Suppression(
                shop_id=SHOP,
                email=ADDRESS.lower(),
                reason="unsubscribed",
                source="link",
                cart_id="cart-1",
                created_at=T0,
            )
        )
    received.rcpt_answer = None
    outcome = await send(acts, request(cart()))
    assert outcome.status is ReminderStatus.SKIPPED and outcome.reason is SkipReason.UNSUBSCRIBED
    assert outcome.detail is not None and "an earlier attempt may have" in outcome.detail
    row = await ledger(db)
    assert (row.status, row.reason, row.detail) == ("skipped", "unsubscribed", outcome.detail)
    assert received.received == []


async def test_an_email_that_cannot_be_made_is_a_skip(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler
) -> None:
    await campaign(db)
    outcome = await send(acts, request(cart(address="not-an-address")))
    assert outcome.status is ReminderStatus.SKIPPED and outcome.reason is SkipReason.SEND_FAILED
    assert outcome.detail is not None and "could not be made" in outcome.detail
    assert "not-an-address" not in outcome.detail, "no address in the detail"
    row = await ledger(db)
    assert (row.status, row.reason, row.detail) == ("skipped", "send_failed", outcome.detail)
    assert received.received == []
    # the skip answers a retry
    again = await send(acts, request(cart(address="not-an-address")))
    assert (again.status, again.reason, again.detail) == (
        outcome.status,
        outcome.reason,
        outcome.detail,
    )


async def test_a_campaign_edited_mid_sequence(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler
) -> None:
    """A plan fixes which reminders and when; what a reminder says is read when it is
    sent; a removed reminder is skipped."""
    await campaign(db)
    sessions = db.session_factory
    await save_reminder(
        sessions,
        SHOP,
        reminder("r1", 1, timedelta(hours=1), subject="New subject", coupon=FIVE_HUNDRED),
        T0 - timedelta(minutes=5),
    )
    await remove_reminder(sessions, SHOP, "r2", T0 - timedelta(minutes=5))
    sent = await send(acts, request(cart()))
    assert sent.status is ReminderStatus.SENT
    assert messages(received)[0]["Subject"] == "New subject"
    removed = await send(acts, request(cart(), "r2"))
    assert removed.reason is SkipReason.REMINDER_REMOVED
    # an automatic reminder made manual is skipped by the schedule, sent by an admin
    await save_reminder(
        sessions,
        SHOP,
        dataclasses.replace(reminder("r1", 1, timedelta(hours=1)), automatic=False),
        T0,
    )
    made_manual = await send(acts, request(cart("cart-9")))
    assert made_manual.reason is SkipReason.REMINDER_REMOVED
    by_hand = await send(acts, request(cart("cart-9"), "r3", manual=True))
    assert by_hand.status is ReminderStatus.SENT and by_hand.name == "Reminder 3"
    assert (await ledger(db, "cart-9", "r3")).manual is True
    # a disabled campaign stops everything
    await save_campaign(
        sessions,
        CampaignConfig(shop_id=SHOP, enabled=False, quiet_start_minute=0, quiet_end_minute=0),
        T0,
    )
    disabled = await send(acts, request(cart("cart-10"), "r3", manual=True))
    assert disabled.reason is SkipReason.CAMPAIGN_DISABLED
    assert len(received.received) == 2


async def test_checks_at_sending_without_address_consent_or_abandonment(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler
) -> None:
    await campaign(db, requires_consent=True)
    no_consent = await send(acts, request(cart(consent=False)))
    assert no_consent.reason is SkipReason.NO_CONSENT
    no_address = await send(acts, request(cart("cart-2", address=None)))
    assert no_address.reason is SkipReason.NO_ADDRESS
    ordered = await send(acts, request(cart("cart-3", state=CartState.ORDERED)))
    assert ordered.reason is SkipReason.ORDERED
    assert received.received == []
    # a skip for another time (an earlier abandonment) is checked again
    later = dataclasses.replace(request(cart(consent=True)), due_at=T0)
    assert (await send(acts, later)).status is ReminderStatus.SENT


# --------------------------------------------------------------------------- projection


async def test_the_projection_writes_the_workflows_skips_to_the_ledger(
    db: ScratchDatabase, acts: ReminderActivities, received: Handler
) -> None:
    await campaign(db)
    assert (await send(acts, request(cart()))).status is ReminderStatus.SENT
    async with write_session(db.session_factory) as session:
        session.add(
            ReminderSend(
                shop_id=SHOP,
                cart_id="cart-1",
                lineage="run-cart-1",
                reminder_id="r3",
                status="skipped",
                reason="unsubscribed",
                detail="by send_reminder",
                manual=True,
                created_at=T0,
                updated_at=T0,
            )
        )
    due = ABANDONED + timedelta(days=1)
    steps = [
        # sent according to the ledger: a (stale) skip never overwrites it
        ReminderStep(
            "r1",
            1,
            "Reminder 1",
            ABANDONED,
            status=ReminderStatus.SKIPPED,
            reason=SkipReason.CART_ACTIVE,
            at=T0,
        ),
        ReminderStep(
            "r2",
            2,
            "Reminder 2",
            due,
            status=ReminderStatus.SKIPPED,
            variant="b",
            reason=SkipReason.OVERDUE,
            detail="r4 was due too",
            at=T0,
        ),
        ReminderStep(
            "r3",
            3,
            "Reminder 3",
            T0,
            status=ReminderStatus.SKIPPED,
            reason=SkipReason.QUIET_HOURS,
            at=T0,
        ),
        ReminderStep("r4", 4, "Reminder 4", due, status=ReminderStatus.PLANNED),
    ]
    the_cart = dataclasses.replace(
        cart(), version=9, reminders=steps, recovered_via="r1", coupon_code="ABCD-EFGH"
    )
    projection = CartActivities(db.session_factory)
    await projection.project_cart(ProjectCartInput(cart=the_cart))

    r1 = await ledger(db, reminder_id="r1")
    r2 = await ledger(db, reminder_id="r2")
    r3 = await ledger(db, reminder_id="r3")
    assert r1.status == "sent" and r1.reason is None
    assert (r2.status, r2.reason, r2.detail, r2.variant, r2.due_at, r2.email) == (
        "skipped",
        "overdue",
        "r4 was due too",
        "b",
        due,
        ADDRESS.lower(),
    )
    assert (r3.reason, r3.detail) == ("unsubscribed", "by send_reminder"), "kept"
    assert await ledger(db, reminder_id="r4") is None, "only skips are written"
    async with db.session_factory() as session:
        row = await session.get(CartRecord, (SHOP, "cart-1"))
    assert row is not None and (row.recovered_via, row.coupon_code) == ("r1", "ABCD-EFGH")

    # an older projection that arrives late writes no skip either
    stale_steps = [dataclasses.replace(steps[1], reason=SkipReason.CART_ACTIVE, detail=None)]
    stale = dataclasses.replace(cart("cart-1"), version=8, reminders=stale_steps)
    async with write_session(db.session_factory) as session:
        await session.execute(
            update(ReminderSend).where(ReminderSend.reminder_id == "r2").values(reason=None)
        )
    await projection.project_cart(ProjectCartInput(cart=stale))
    assert (await ledger(db, reminder_id="r2")).detail == "r4 was due too"
    # a cart without reminders writes no ledger row
    await projection.project_cart(ProjectCartInput(cart=cart("cart-5")))
    assert await count(db, ReminderSend) == 3


async def test_a_database_failure_is_retried_without_the_address_in_the_error(
    db: ScratchDatabase, acts: ReminderActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    await campaign(db)

    async def failing(*_args: Any) -> None:
        raise OperationalError("SELECT ...", {"email": ADDRESS}, Exception("server closed"))

    monkeypatch.setattr(reminder_ledger, "stored", failing)
    with pytest.raises(ApplicationError) as raised:
        await send(acts, request(cart()))
    assert raised.value.type == "read_model_unavailable" and not raised.value.non_retryable
    assert ADDRESS.lower() not in str(raised.value).lower()
