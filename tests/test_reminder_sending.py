"""An admin's reminder to many carts (``starter.reminder_sending``, ``cartkeeper reminders
send``): the dry run's reasons for a mix of carts on SQLite and PostgreSQL (the
workflow's refusals from the snapshot, the ledger, the send-time checks of
``activities.reminder_checks.check_send``), paging through every matching cart, and real
sending on the dev server: a worker of this module's own with a real campaign, the
read model and an SMTP relay on the test's loop."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pydantic import SecretStr
from sqlalchemy import update
from temporalio.testing import WorkflowEnvironment

import starter.cli.reminders as cli_reminders
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
from activities.db import make_engine, make_session_factory, write_session
from activities.models import CartRecord, ReminderSend, Suppression
from activities.read_model import cart_values, encode_cart, get_cart_record
from activities.settings import Settings
from starter.cli import cli
from starter.client import CartkeeperClient, CartkeeperError
from starter.reminder_sending import (
    CartResult,
    CartSelection,
    SendReport,
    check_carts,
    exit_status,
    select_carts,
    send_checked,
)
from tests.conftest import new_id
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_cli import run_cli
from tests.test_smtp import Handler, smtp_server
from workflows.codes import CartState, JournalKind, ReminderStatus
from workflows.contract import Cart, CartLine, CartPolicy, CustomerInfo, ErrorCode, ReminderStep

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
SHOP = "shop-1"
#: Tuesday 1 December 2026, 12:00 UTC: 13:00 in Berlin, 22:00 in Brisbane (quiet hours)
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ABANDONED = T0 - timedelta(hours=1)
LINES = [CartLine("mug", "Blue mug", 2, 1200), CartLine("tea", "Earl Grey", 1, 650)]
FIVE_EUR = CouponOffer(kind="fixed", amount=500, expiry_days=7)
KEY = "k" * 40


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


def winback(
    *, automatic: bool = False, coupon: CouponOffer | None = FIVE_EUR
) -> ReminderDefinition:
    return ReminderDefinition(
        reminder_id="winback",
        position=1,
        name="Win back",
        delay_seconds=86_400,
        automatic=automatic,
        a=ReminderVariant(subject="We kept your cart", template="reminder", coupon=coupon),
    )


async def a_campaign(db: ScratchDatabase, shop: str = SHOP, **settings: Any) -> None:
    """A campaign with one manual reminder (``winback``, a 5 EUR coupon); consent
    required, quiet hours 21:00-08:00, at most 2 reminders per customer in 7 days."""
    fields: dict[str, Any] = {
        "shop_name": "Demo Shop",
        "sender": "shop@example.com",
        "requires_consent": True,
        "cap_count": 2,
        "cap_period_days": 7,
        **settings,
    }
    await save_campaign(
        db.session_factory, CampaignConfig(shop_id=shop, **fields), T0 - timedelta(days=9)
    )
    await save_reminder(db.session_factory, shop, winback(), T0 - timedelta(days=9))


def a_cart(
    cart_id: str,
    *,
    address: str | None = "",
    consent: bool = True,
    zone: str = "Europe/Berlin",
    state: CartState = CartState.ABANDONED,
    shop: str = SHOP,
    abandoned_at: datetime | None = ABANDONED,
    created_at: datetime = T0 - timedelta(hours=3),
    reminders: list[ReminderStep] | None = None,
) -> Cart:
    """An abandoned cart with its own address (``<cart_id>@example.com``) unless told."""
    email_address = f"{cart_id}@example.com" if address == "" else address
    customer = (
        CustomerInfo(email=email_address, name="Ann", time_zone=zone, marketing_consent=consent)
        if email_address is not None
        else None
    )
    return Cart(
        shop_id=shop,
        cart_id=cart_id,
        state=state,
        version=3,
        currency="EUR",
        lines=list(LINES),
        customer=customer,
        lineage=f"run-{cart_id}",
        created_at=created_at,
        updated_at=abandoned_at or created_at,
        last_activity_at=created_at,
        abandoned_at=abandoned_at,
        reminders=reminders or [],
    )


async def write_carts(db: ScratchDatabase, *carts: Cart) -> None:
    async with write_session(db.session_factory) as session:
        for cart in carts:
            session.add(CartRecord(**cart_values(cart, T0)))


def sent_row(
    cart_id: str, email_address: str, sent_at: datetime, reminder_id: str = "winback"
) -> ReminderSend:
    return ReminderSend(
        shop_id=SHOP,
        cart_id=cart_id,
        lineage=f"run-{cart_id}",
        reminder_id=reminder_id,
        status="sent",
        manual=True,
        email=email_address,
        message_id=f"<{cart_id}@test>",
        due_at=sent_at,
        created_at=sent_at,
        updated_at=sent_at,
        sent_at=sent_at,
    )


def by_cart(report: SendReport) -> dict[str, CartResult]:
    return {result.cart_id: result for result in report.results}


def why(report: SendReport) -> dict[str, tuple[str, str | None]]:
    return {result.cart_id: (str(result.status), result.reason) for result in report.results}


# --------------------------------------------------------------------------- dry run


async def test_the_dry_run_says_who_gets_it_and_why_not_the_others(db: ScratchDatabase) -> None:
    await a_campaign(db)
    sent_step = ReminderStep(
        reminder_id="winback",
        position=1,
        name="Win back",
        due_at=ABANDONED,
        status=ReminderStatus.SENT,
        at=ABANDONED,
    )
    await write_carts(
        db,
        a_cart("c-go"),
        a_cart("c-active", state=CartState.ACTIVE, abandoned_at=None),
        a_cart("c-ordered", state=CartState.ORDERED),
        a_cart("c-locked", state=CartState.LOCKED),
        a_cart("c-guest", address=None),
        a_cart("c-no-consent", consent=False),
        a_cart("c-unsub"),
        a_cart("c-bounced"),
        a_cart("c-sent", reminders=[sent_step]),
        a_cart("c-ledger"),  # its snapshot lags: the ledger has it sent
        a_cart("c-newer", address="twice@example.com"),
        a_cart(
            "c-newer-2",
            address="Twice@Example.com",
            state=CartState.ACTIVE,
            created_at=T0 - timedelta(minutes=30),
            abandoned_at=None,
        ),
        a_cart("c-cap", address="cap@example.com"),
        a_cart("c-quiet", zone="Australia/Brisbane"),
    )
    async with write_session(db.session_factory) as session:
        for address, reason in (
            ("c-unsub@example.com", "unsubscribed"),
            ("c-bounced@example.com", "bounced"),
        ):
            session.add(
                Suppression(
                    shop_id=SHOP,
                    email=address,
                    reason=reason,
                    source="admin",
                    created_at=T0 - timedelta(days=1),
                )
            )
        session.add(sent_row("c-ledger", "c-ledger@example.com", T0 - timedelta(minutes=5)))
        for other in ("x-1", "x-2"):  # the customer's cap: 2 in 7 days
            session.add(sent_row(other, "cap@example.com", T0 - timedelta(days=2)))

    named = (
        "c-go", "c-active", "c-ordered", "c-locked", "c-guest", "c-no-consent", "c-unsub",
        "c-bounced", "c-sent", "c-ledger", "c-newer", "c-cap", "c-quiet", "c-missing", "c-go",
    )  # fmt: skip
    report = await check_carts(
        db.session_factory, CartSelection(SHOP, cart_ids=named), "winback", admin="ann", now=T0
    )
    assert report.dry_run and report.checked_at == T0
    assert [result.cart_id for result in report.results] == list(dict.fromkeys(named)), (
        "in order, once"
    )
    assert why(report) == {
        "c-go": ("would_send", None),
        "c-active": ("not_sent", "not_abandoned"),
        "c-ordered": ("not_sent", "already_ordered"),
        "c-locked": ("not_sent", "cart_locked"),
        "c-guest": ("not_sent", "no_address"),
        "c-no-consent": ("not_sent", "no_consent"),
        "c-unsub": ("not_sent", "unsubscribed"),
        "c-bounced": ("not_sent", "bounced"),
        "c-sent": ("not_sent", "reminder_already_sent"),
        "c-ledger": ("not_sent", "reminder_already_sent"),
        "c-newer": ("not_sent", "newer_cart"),
        "c-cap": ("not_sent", "cap_reached"),
        "c-quiet": ("not_sent", "quiet_hours"),
        "c-missing": ("not_found", "cart_not_found"),
    }
    results = by_cart(report)
    go = results["c-go"]
    assert go.email == "c-go@example.com" and go.state is CartState.ABANDONED
    assert go.abandoned_at == ABANDONED and go.offer == "5.00 EUR off for 7 days"
    assert go.variant is None and go.message_id is None
    assert "ledger" in (results["c-ledger"].detail or "")
    assert "c-newer-2" in (results["c-newer"].detail or "")
    assert "cap 2" in (results["c-cap"].detail or "")
    assert "Australia/Brisbane" in (results["c-quiet"].detail or "")
    assert "this cart is active" in (results["c-active"].detail or "")
    assert report.counts() == {"would_send": 1, "not_sent": 12, "not_found": 1}
    assert report.reasons()["reminder_already_sent"] == 2
    assert exit_status(report.results)[0] == 3, "a named cart the read model lacks"
    assert exit_status([go])[0] == 0

    # the same checks whatever the reminder: removed, unknown, or no campaign at all
    await remove_reminder(db.session_factory, SHOP, "winback", T0)
    removed = await check_carts(
        db.session_factory, CartSelection(SHOP, cart_ids=("c-go",)), "winback", now=T0
    )
    unknown = await check_carts(
        db.session_factory, CartSelection(SHOP, cart_ids=("c-go",)), "nope", now=T0
    )
    assert why(removed) == why(unknown) == {"c-go": ("not_sent", "reminder_removed")}
    await write_carts(db, a_cart("c-elsewhere", shop="shop-2"))
    elsewhere = await check_carts(
        db.session_factory, CartSelection("shop-2", cart_ids=("c-elsewhere",)), "winback", now=T0
    )
    assert why(elsewhere) == {"c-elsewhere": ("not_sent", "campaign_disabled")}
    # a request the workflow would refuse whatever the cart: refused here, for all at once
    with pytest.raises(CartkeeperError) as invalid:
        await check_carts(
            db.session_factory, CartSelection(SHOP, cart_ids=("c-go",)), "no good!", now=T0
        )
    assert invalid.value.code is ErrorCode.INVALID_REMINDER
    with pytest.raises(CartkeeperError) as nobody:
        await check_carts(
            db.session_factory, CartSelection(SHOP, cart_ids=("c-go",)), "winback", admin=" "
        )
    assert nobody.value.code is ErrorCode.INVALID_INPUT


async def test_the_selection_pages_through_every_matching_cart(db: ScratchDatabase) -> None:
    await a_campaign(db, quiet_start_minute=0, quiet_end_minute=0)
    many = [a_cart(f"m-{n:03d}", abandoned_at=ABANDONED - timedelta(minutes=n)) for n in range(130)]
    await write_carts(
        db,
        *many,
        a_cart("old", abandoned_at=T0 - timedelta(days=3)),
        a_cart("active", state=CartState.ACTIVE, abandoned_at=ABANDONED),
        a_cart("other-shop", shop="shop-2"),
    )

    async def ids(selection: CartSelection, page_size: int = 100) -> list[str]:
        return [
            cart_id
            async for cart_id, _cart in select_carts(
                db.session_factory, selection, page_size=page_size
            )
        ]

    since = T0 - timedelta(days=1)
    everything = await ids(CartSelection(SHOP, abandoned_since=since))
    assert everything == sorted(cart.cart_id for cart in many), "all 130, past the first 100"
    assert await ids(CartSelection(SHOP, abandoned_since=since), page_size=7) == everything
    assert await ids(CartSelection(SHOP)) == [*everything, "old"]
    assert await ids(CartSelection(SHOP, state=CartState.ACTIVE)) == ["active"]
    assert await ids(CartSelection(SHOP, state=None, abandoned_since=ABANDONED)) == [
        "active",
        "m-000",
    ]
    assert await ids(CartSelection(SHOP, abandoned_since=ABANDONED - timedelta(minutes=2))) == [
        "m-000",
        "m-001",
        "m-002",
    ]
    named = CartSelection(SHOP, state=CartState.ACTIVE, cart_ids=("old", "nope", "m-005"))
    assert await ids(named, page_size=2) == ["old", "nope", "m-005"], "named: state ignored"
    with pytest.raises(ValueError):
        CartSelection(SHOP, abandoned_since=datetime(2026, 12, 1))

    report = await check_carts(
        db.session_factory, CartSelection(SHOP, abandoned_since=since), "winback", now=T0
    )
    assert len(report.results) == 130
    assert report.counts() == {"would_send": 130}


# --------------------------------------------------------------------------- the CLI's dry run

Cartkeeper = Callable[..., Result]


@pytest.fixture
def cartkeeper(db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    """The CLI in-process on ``db`` (its own event loop: the tests using it are not async)."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db.url,
        default_shop=SHOP,
        secret_key=SecretStr(KEY),
    )
    monkeypatch.setattr("activities.settings.get_settings", lambda: settings)
    if db.schema is not None:
        schema = db.schema

        def read_model(_settings: Settings) -> tuple[Any, Any]:
            engine = make_engine(db.url, schema=schema)
            return engine, make_session_factory(engine)

        monkeypatch.setattr(cli_reminders, "read_model", read_model)

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return run


@pytest.fixture
async def now_carts(db: ScratchDatabase) -> datetime:
    """Carts abandoned an hour before the real now (the CLI checks at the real time), a
    campaign without quiet hours."""
    now = datetime.now(UTC)
    await a_campaign(db, quiet_start_minute=0, quiet_end_minute=0)
    hour_ago = now - timedelta(hours=1)
    await write_carts(
        db,
        a_cart("c-go", abandoned_at=hour_ago, created_at=now - timedelta(hours=3)),
        a_cart("c-guest", address=None, abandoned_at=hour_ago, created_at=now - timedelta(hours=3)),
        a_cart("c-old", abandoned_at=now - timedelta(days=5), created_at=now - timedelta(days=6)),
    )
    return now


def test_cli_dry_run(cartkeeper: Cartkeeper, now_carts: datetime) -> None:
    named = cartkeeper(
        "reminders", "send", "winback", "--cart", "c-go", "--cart", "c-guest", "--dry-run"
    )
    assert named.exit_code == 0, (named.stdout, named.stderr)
    out = named.stdout
    assert "reminder winback, shop shop-1 (dry run, nothing sent): 1 of 2 carts would get it" in out
    assert "c-go@example.com" in out and "would send" in out and "5.00 EUR off for 7 days" in out
    assert "no_address: the cart has no customer e-mail address" in out
    assert "by reason: no_address 1" in out and named.stderr == ""

    since = (now_carts - timedelta(days=1)).isoformat()
    as_json = cartkeeper("reminders", "send", "winback", "--since", since, "--dry-run", "--json")
    assert as_json.exit_code == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["dry_run"] is True and data["counts"] == {"would_send": 1, "not_sent": 1}
    assert [(row["cart_id"], row["status"], row["reason"]) for row in data["results"]] == [
        ("c-go", "would_send", None),
        ("c-guest", "not_sent", "no_address"),
    ]
    # a named cart the read model lacks: shown, exit 3 with one error line
    missing = cartkeeper(
        "reminders", "send", "winback", "--cart", "c-go", "--cart", "ghost", "--dry-run"
    )
    assert missing.exit_code == 3, (missing.stdout, missing.stderr)
    assert "not found" in missing.stdout
    assert missing.stderr.startswith("error: cart_not_found: cart ghost: ")
    assert len(missing.stderr.strip().splitlines()) == 1
    # nothing selected: exit 0, saying so
    later = (now_carts + timedelta(days=1)).isoformat()
    empty = cartkeeper("reminders", "send", "winback", "--since", later, "--dry-run")
    assert empty.exit_code == 0 and "no carts selected (abandoned abandoned since" in empty.stdout
    # nothing would go: without --dry-run, nothing is asked of Temporal (none configured)
    nothing = cartkeeper("reminders", "send", "winback", "--cart", "c-guest")
    assert nothing.exit_code == 0, (nothing.stdout, nothing.stderr)
    assert "reminder winback, shop shop-1: 1 not sent" in nothing.stdout


def test_cli_usage_errors(cartkeeper: Cartkeeper) -> None:
    for args, text in (
        ((), "give --cart CART ... or --since TIME"),
        (("--state", "abandoned"), "give --cart CART ... or --since TIME"),
        (("--cart", "c-1", "--since", "2026-11-22"), "not both"),
        (("--since", "yesterday"), "'yesterday' is not an ISO 8601 time"),
        (("--since", "2026-11-22", "--state", "lost"), "'lost' is not one of"),
    ):
        result = cartkeeper("reminders", "send", "winback", *args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert text in result.stderr, (args, result.stderr)
    refused = cartkeeper("reminders", "send", "no good!", "--cart", "c-1", "--dry-run")
    assert refused.exit_code == 1 and refused.stderr.startswith("error: invalid_reminder: ")


# --------------------------------------------------------------------------- real sending


@dataclass
class Live:
    db: ScratchDatabase
    relay: Handler
    settings: Settings
    carts: CartkeeperClient
    #: carts that stay active for an hour
    patient: CartkeeperClient
    env: WorkflowEnvironment
    shop: str


@pytest.fixture
async def live(
    db: ScratchDatabase, dev_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Live]:
    """A worker on a task queue of its own, on ``db`` and a relay on this loop; carts
    abandoned after a second and projected at once; a campaign without quiet hours."""
    from worker import build_worker

    handler = Handler()
    async with smtp_server(handler) as port:
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=db.url,
            task_queue=new_id("reminders"),
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_timeout_seconds=5,
            secret_key=SecretStr(KEY),
            public_url="https://shop.example.com",
            mail_domain="mail.example.com",
        )
        client = dev_env.client
        worker = build_worker(client, CartActivities(db.session_factory, client), settings)
        shop = new_id("shop")
        await a_campaign(db, shop, quiet_start_minute=0, quiet_end_minute=0)
        fast = CartPolicy(abandon_after_seconds=1, projection_interval_seconds=0)
        slow = CartPolicy(projection_interval_seconds=0)
        async with worker:
            yield Live(
                db=db,
                relay=handler,
                settings=settings,
                carts=CartkeeperClient(
                    client, task_queue=settings.task_queue, policy_for=lambda _s: fast
                ),
                patient=CartkeeperClient(
                    client, task_queue=settings.task_queue, policy_for=lambda _s: slow
                ),
                env=dev_env,
                shop=shop,
            )


async def eventually(check: Callable[[], Any], within: float = 20.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within}s (last: {value!r})")
        await asyncio.sleep(0.1)


async def a_live_cart(
    live: Live, cart_id: str, *, customer: bool = True, patient: bool = False
) -> None:
    client = live.patient if patient else live.carts
    await client.update_cart(live.shop, cart_id, LINES, "EUR")
    if customer:
        await client.identify_customer(
            live.shop,
            cart_id,
            CustomerInfo(
                email=f"{cart_id}@example.com",
                name="Ann",
                time_zone="Europe/Berlin",
                marketing_consent=True,
            ),
        )


async def projected(live: Live, cart_id: str, state: CartState) -> Cart:
    async def check() -> Cart | None:
        record = await get_cart_record(live.db.session_factory, live.shop, cart_id)
        return record if record is not None and record.state is state else None

    found: Cart = await eventually(check)
    return found


async def test_sending_to_the_carts_that_pass(live: Live) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    go, guest, unsub, stale, active = (
        new_id(name) for name in ("go", "guest", "unsub", "stale", "active")
    )
    await asyncio.gather(
        a_live_cart(live, go),
        a_live_cart(live, guest, customer=False),
        a_live_cart(live, unsub),
        a_live_cart(live, stale),
        a_live_cart(live, active, patient=True),
    )
    async with write_session(live.db.session_factory) as session:
        session.add(
            Suppression(
                shop_id=live.shop,
                email=f"{unsub}@example.com",
                reason="unsubscribed",
                source="link",
                created_at=start,
            )
        )
    for cart_id in (go, guest, unsub, stale):
        await projected(live, cart_id, CartState.ABANDONED)
    await projected(live, active, CartState.ACTIVE)
    # ``stale`` was deleted since; the read model still shows it abandoned (a lag)
    abandoned = await get_cart_record(live.db.session_factory, live.shop, stale)
    assert abandoned is not None
    await live.carts.delete(live.shop, stale, admin="bob")
    await projected(live, stale, CartState.DELETED)
    async with write_session(live.db.session_factory) as session:
        await session.execute(
            update(CartRecord)
            .where(CartRecord.shop_id == live.shop, CartRecord.cart_id == stale)
            .values(state="abandoned", snapshot=encode_cart(abandoned))
        )

    # ``ghost`` is in the read model only (its workflow is gone)
    ghost = new_id("ghost")
    now = datetime.now(UTC)
    await write_carts(
        live.db,
        a_cart(ghost, shop=live.shop, abandoned_at=now, created_at=now - timedelta(hours=1)),
    )

    selection = CartSelection(live.shop, abandoned_since=start)
    dry = await check_carts(live.db.session_factory, selection, "winback", admin="ann")
    assert why(dry) == {
        go: ("would_send", None),
        guest: ("not_sent", "no_address"),
        unsub: ("not_sent", "unsubscribed"),
        stale: ("would_send", None),
        ghost: ("would_send", None),
    }, "active carts are not selected"
    assert live.relay.received == [], "a dry run sends nothing"

    report = await send_checked(live.carts, dry, admin="ann", note="black friday", outcome_wait=20)
    assert not report.dry_run
    results = by_cart(report)
    assert why(report) == {
        go: ("sent", None),
        guest: ("not_sent", "no_address"),
        unsub: ("not_sent", "unsubscribed"),
        stale: ("refused", "cart_deleted"),
        ghost: ("failed", "cart_not_found"),
    }, "one cart's refusal or failure stops no other"
    sent = results[go]
    assert sent.message_id and sent.message_id.endswith("@mail.example.com>")
    assert sent.coupon_code and len(sent.coupon_code) == 9
    assert exit_status(report.results) == (1, results[stale]), "a refusal before a lost cart"
    assert exit_status([results[go], results[ghost]]) == (3, results[ghost])

    # one e-mail, to the cart that passed, with its coupon
    assert [envelope.rcpt_tos for envelope in live.relay.received] == [[f"{go}@example.com"]]
    content = live.relay.received[0].content
    assert isinstance(content, bytes)
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert message["Subject"] == "We kept your cart" and message["Message-ID"] == sent.message_id
    assert sent.coupon_code in content.decode()
    # the ledger and the cart say the same
    async with live.db.session_factory() as session:
        keys = [(live.shop, cart_id) for cart_id in (go, guest, unsub, stale)]
        rows = {
            (row.cart_id, row.reminder_id): row
            for row in (await session.execute(ReminderSend.__table__.select())).all()
            if (row.shop_id, row.cart_id) in keys
        }
    assert list(rows) == [(go, "winback")]
    row = rows[(go, "winback")]
    assert row.status == "sent" and row.manual and row.message_id == sent.message_id
    cart = await live.carts.get_cart(live.shop, go)
    (step,) = [item for item in cart.reminders if item.reminder_id == "winback"]
    assert step.status is ReminderStatus.SENT and step.manual and step.requested_by == "ann"
    assert any(entry.kind is JournalKind.REMINDER_SENT for entry in cart.journal)

    # once per cart: the dry run says so, and the workflow refuses a second request
    again = await check_carts(
        live.db.session_factory, CartSelection(live.shop, cart_ids=(go,)), "winback"
    )
    assert why(again) == {go: ("not_sent", "reminder_already_sent")}
    with pytest.raises(CartkeeperError) as twice:
        await live.carts.send_reminder(live.shop, go, "winback", admin="ann")
    assert twice.value.code is ErrorCode.REMINDER_ALREADY_SENT
    assert len(live.relay.received) == 1


@pytest.mark.parametrize("db", [pytest.param("sqlite", id="sqlite")], indirect=True)
async def test_cli_sends_and_reports_per_cart(live: Live, tmp_path: Path) -> None:
    go, guest = new_id("go"), new_id("guest")
    await asyncio.gather(a_live_cart(live, go), a_live_cart(live, guest, customer=False))
    for cart_id in (go, guest):
        await projected(live, cart_id, CartState.ABANDONED)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "CARTKEEPER_")) and key != "DATABASE_URL"
    }
    env.update(
        TEMPORAL_ADDRESS=live.env.client.service_client.config.target_host,
        TEMPORAL_NAMESPACE=live.env.client.namespace,
        DATABASE_URL=live.db.url,
        CARTKEEPER_TASK_QUEUE=live.settings.task_queue,
        CARTKEEPER_DATA_DIR=str(tmp_path / "cli-data"),
        PYTHONUNBUFFERED="1",
    )
    args = (
        "reminders",
        "send",
        "winback",
        "--shop",
        live.shop,
        "--cart",
        go,
        "--cart",
        guest,
        "--admin",
        "ann",
    )
    run = await run_cli(env, *args)
    assert run.code == 0, (run.out, run.err)
    assert f"reminder winback, shop {live.shop}: 1 sent, 1 not sent" in run.out
    assert "no_address" in run.out and "coupon " in run.out
    assert [envelope.rcpt_tos for envelope in live.relay.received] == [[f"{go}@example.com"]]

    # the same again: nothing goes, the reason is shown, exit 0
    await eventually(lambda: _has_sent_step(live, go))
    again = await run_cli(env, *args, "--json")
    assert again.code == 0, (again.out, again.err)
    data = again.json()
    assert [(row["cart_id"], row["reason"]) for row in data["results"]] == [
        (go, "reminder_already_sent"),
        (guest, "no_address"),
    ]
    assert len(live.relay.received) == 1


async def _has_sent_step(live: Live, cart_id: str) -> bool:
    record = await get_cart_record(live.db.session_factory, live.shop, cart_id)
    return record is not None and any(
        step.reminder_id == "winback" and step.status is ReminderStatus.SENT
        for step in record.reminders
    )
