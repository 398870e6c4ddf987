"""The journal per cart and per customer (``activities.journal_query``) on SQLite and
PostgreSQL (``TEST_DATABASE_URL``): carts made by the state machine and written by the
real projection (``CartActivities.project_cart``), with the reminder ledger's rows and
recovery clicks as the sending and the web endpoint write them. A customer with three
carts (one ordered, one reminded and recovered by a click, one browsing) under e-mails
of different case; another customer's cart and another shop's never show; keyset pages
neither skip nor repeat while entries are added; capped journals say what they dropped;
refusals; the customer query reads the e-mail index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from activities.cart_activities import CartActivities
from activities.db import write_session
from activities.journal_query import (
    FROM_CLICKS,
    FROM_JOURNAL,
    FROM_LEDGER,
    RECOVERY_CLICKED,
    REMINDER_SENT,
    REMINDER_SKIPPED,
    JournalItem,
    JournalQueryRefused,
    cart_journal,
    cursor_scope,
    customer_journal,
    customer_statement,
    encode_cursor,
)
from activities.models import CartRecord, RecoveryClick, ReminderSend
from activities.read_model import cart_values
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_orders_query import OTHER, SHOP, T0, explain, paid_order, project
from tests.test_read_model import LINEAGE, POLICY, line, new_cart
from workflows import machine
from workflows.codes import ReminderStatus
from workflows.contract import (
    Cart,
    CartPolicy,
    CartUpdated,
    CheckoutStarted,
    CustomerIdentified,
    CustomerInfo,
    CustomerVisited,
    PlannedReminder,
    RecoveryLinkClicked,
    ReminderOutcome,
    RemindersPlanned,
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
ANN = "ann@example.com"
#: the reminded cart: abandoned an hour after T0 + 2 h, reminded 30 minutes later
REMINDED_AT = T0 + timedelta(hours=3, minutes=30)
CLICKED_AT = REMINDED_AT + timedelta(minutes=5)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
def acts(db: ScratchDatabase) -> CartActivities:
    return CartActivities(db.session_factory)


# --------------------------------------------------------------------------- carts


def identified(cart: Cart, email: str, at: datetime) -> None:
    machine.apply(cart, CustomerIdentified(CustomerInfo(email=email, name="Ann")), at)


def reminded_cart(shop_id: str, cart_id: str, email: str) -> Cart:
    """A cart abandoned at T0 + 3 h, sent reminder ``first`` (variant a, coupon SAVE10) at
    ``REMINDED_AT``, brought back by its recovery link at ``CLICKED_AT``."""
    at = T0 + timedelta(hours=2)
    cart = new_cart(shop_id, cart_id, at=at)
    identified(cart, email, at)
    abandoned = at + timedelta(seconds=POLICY.abandon_after_seconds)
    machine.tick(cart, abandoned)
    plan = [PlannedReminder("first", 1, "First", REMINDED_AT, "a")]
    machine.apply(cart, RemindersPlanned(cart.reminder_sequence, 1, plan), abandoned)
    machine.tick(cart, REMINDED_AT)
    sent = ReminderOutcome(
        "first",
        cart.reminder_sequence,
        ReminderStatus.SENT,
        REMINDED_AT,
        message_id="<m1@example.com>",
        coupon_code="SAVE10",
    )
    machine.apply(cart, sent, REMINDED_AT)
    machine.apply(cart, RecoveryLinkClicked("first", "SAVE10"), CLICKED_AT)
    return cart


def browsing_cart(shop_id: str, cart_id: str, email: str, at: datetime) -> Cart:
    """A cart whose customer visited, removed a line and started the checkout."""
    cart = new_cart(shop_id, cart_id, at=at)
    identified(cart, email, at + timedelta(minutes=1))
    machine.apply(cart, CustomerVisited(page="/cart"), at + timedelta(minutes=2))
    machine.apply(cart, CartUpdated([line("a", 2)], "EUR"), at + timedelta(minutes=3))
    machine.apply(cart, CheckoutStarted(), at + timedelta(minutes=4))
    return cart


def ledger(
    shop_id: str, cart_id: str, reminder_id: str, status: str, at: datetime, **values: Any
) -> ReminderSend:
    """A ledger row as ``reminder_ledger`` leaves it."""
    return ReminderSend(
        shop_id=shop_id,
        cart_id=cart_id,
        lineage=values.pop("lineage", LINEAGE),
        reminder_id=reminder_id,
        status=status,
        reason=values.pop("reason", None),
        detail=values.pop("detail", None),
        variant=values.pop("variant", None),
        manual=values.pop("manual", False),
        email=values.pop("email", ANN),
        message_id=values.pop("message_id", None),
        coupon_code=values.pop("coupon_code", None),
        currency="EUR",
        due_at=at,
        created_at=at,
        updated_at=at,
        sent_at=at if status == "sent" else None,
    )


def click(shop_id: str, cart_id: str, reminder_id: str, at: datetime, **values: Any) -> Any:
    return RecoveryClick(
        shop_id=shop_id,
        cart_id=cart_id,
        lineage=values.pop("lineage", LINEAGE),
        reminder_id=reminder_id,
        clicked_at=at,
    )


async def add(db: ScratchDatabase, *rows: Any) -> None:
    async with write_session(db.session_factory) as session:
        session.add_all(rows)


async def seed(db: ScratchDatabase, acts: CartActivities) -> dict[str, Cart]:
    """Ann's three carts in shop-1 (e-mails in three cases), Bob's cart, Ann's cart in
    shop-2; the ledger and the clicks of the reminded cart, and of the others."""
    carts = {
        "a-ordered": paid_order(SHOP, "a-ordered", T0 + timedelta(hours=1), email=ANN),
        "a-reminded": reminded_cart(SHOP, "a-reminded", "ANN@example.com"),
        "a-browsing": browsing_cart(SHOP, "a-browsing", "Ann@Example.COM", T0 + timedelta(hours=5)),
        "b-bob": browsing_cart(SHOP, "b-bob", "bob@example.com", T0 + timedelta(hours=2)),
        "x-ann": browsing_cart(OTHER, "x-ann", ANN, T0 + timedelta(hours=2)),
    }
    for cart in carts.values():
        await project(acts, cart)
    await add(
        db,
        ledger(SHOP, "a-reminded", "first", "sent", REMINDED_AT, variant="a", coupon_code="SAVE10"),
        ledger(
            SHOP,
            "a-reminded",
            "second",
            "skipped",
            CLICKED_AT + timedelta(minutes=1),
            reason="cart_active",
        ),
        ledger(SHOP, "a-reminded", "third", "sending", REMINDED_AT),  # not decided: left out
        click(SHOP, "a-reminded", "first", CLICKED_AT),
        ledger(SHOP, "b-bob", "first", "sent", REMINDED_AT, email="bob@example.com"),
        click(SHOP, "b-bob", "first", CLICKED_AT),
        ledger(OTHER, "x-ann", "first", "sent", REMINDED_AT),
        click(OTHER, "x-ann", "first", CLICKED_AT),
    )
    return carts


async def all_pages(
    db: ScratchDatabase, email: str, limit: int, between: Any = None
) -> list[JournalItem]:
    seen: list[JournalItem] = []
    cursor: str | None = None
    for turn in range(200):
        page = await customer_journal(db.session_factory, SHOP, email, limit=limit, after=cursor)
        assert len(page.items) <= limit
        seen += page.items
        if page.next_cursor is None:
            return seen
        assert len(page.items) == limit
        cursor = page.next_cursor
        if between is not None:
            await between(turn, seen[-1])
    raise AssertionError("too many pages")


# --------------------------------------------------------------------------- a cart


async def test_a_carts_journal_with_its_ledger_rows_and_clicks(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    carts = await seed(db, acts)
    found = await cart_journal(db.session_factory, SHOP, "a-reminded")
    assert (found.shop_id, found.cart_id, found.state) == (SHOP, "a-reminded", "active")
    assert found.customer_email == "ANN@example.com" and found.dropped == 0
    times = [item.at for item in found.items]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)
    from_journal = [item for item in found.items if item.source == FROM_JOURNAL]
    expected = [(e.at, str(e.kind), e.actor, e.detail) for e in carts["a-reminded"].journal]
    assert [(i.at, i.kind, i.actor, i.detail) for i in from_journal] == expected
    others = [(i.kind, i.at, i.source) for i in found.items if i.source != FROM_JOURNAL]
    assert others == [
        (REMINDER_SENT, REMINDED_AT, FROM_LEDGER),
        (RECOVERY_CLICKED, CLICKED_AT, FROM_CLICKS),
        (REMINDER_SKIPPED, CLICKED_AT + timedelta(minutes=1), FROM_LEDGER),
    ]
    sent = next(i for i in found.items if i.source == FROM_LEDGER and i.kind == REMINDER_SENT)
    assert sent.actor == "system"
    assert sent.detail == "reminder first, variant a, coupon SAVE10"
    skipped = next(i for i in found.items if i.kind == REMINDER_SKIPPED)
    assert skipped.detail == "reminder second, skipped cart_active"
    kinds = {item.kind for item in found.items}
    assert {"cart_created", "item_added", "cart_abandoned", "recovery_link_clicked"} <= kinds
    assert all(item.cart_id == "a-reminded" and item.shop_id == SHOP for item in found.items)


async def test_an_ordered_carts_journal_has_its_payment_attempts(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    await seed(db, acts)
    found = await cart_journal(db.session_factory, SHOP, "a-ordered")
    kinds = [item.kind for item in found.items]
    assert kinds.count("payment_started") == 2
    assert "payment_failed" in kinds and "payment_succeeded" in kinds
    assert "order_created" in kinds
    assert found.state == "ordered"


async def test_a_cart_the_shop_does_not_have(db: ScratchDatabase, acts: CartActivities) -> None:
    await seed(db, acts)
    for shop, cart in ((SHOP, "nope"), (OTHER, "a-ordered"), ("shop-none", "a-ordered")):
        with pytest.raises(JournalQueryRefused) as refused:
            await cart_journal(db.session_factory, shop, cart)
        assert refused.value.code == "journal_not_found"


async def test_a_reused_cart_id_does_not_inherit_the_old_carts_rows(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    await seed(db, acts)
    await add(
        db,
        ledger(SHOP, "a-browsing", "first", "sent", T0, lineage="run-old", email="old@x.io"),
        click(SHOP, "a-browsing", "first", T0, lineage="run-old"),
        click(SHOP, "a-browsing", "first", T0 + timedelta(hours=6), lineage=""),
    )
    found = await cart_journal(db.session_factory, SHOP, "a-browsing")
    extra = [(i.kind, i.at) for i in found.items if i.source != FROM_JOURNAL]
    assert extra == [(RECOVERY_CLICKED, T0 + timedelta(hours=6))]  # no lineage: the cart's


# --------------------------------------------------------------------------- a customer


async def test_a_customers_journal_merges_their_carts_newest_first(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    carts = await seed(db, acts)
    for email in (ANN, "ANN@EXAMPLE.COM", "  Ann@example.com "):
        page = await customer_journal(db.session_factory, SHOP, email)
        assert page.next_cursor is None
        assert set(page.dropped) == {"a-ordered", "a-reminded", "a-browsing"}
        assert set(page.dropped.values()) == {0}
        assert {item.cart_id for item in page.items} == set(page.dropped)
        positions = [item.position for item in page.items]
        assert positions == sorted(positions, reverse=True)
        assert all(item.shop_id == SHOP for item in page.items)
        journal_count = sum(len(carts[c].journal) for c in page.dropped)
        assert len(page.items) == journal_count + 3  # sent, skipped, one click
        ledger_rows = [(i.cart_id, i.kind) for i in page.items if i.source != FROM_JOURNAL]
        assert ledger_rows == [
            ("a-reminded", REMINDER_SKIPPED),
            ("a-reminded", RECOVERY_CLICKED),
            ("a-reminded", REMINDER_SENT),
        ]
    assert page.email == "Ann@example.com"
    # (the projection's order number is journalled at the activity's clock: left aside)
    story = [(i.cart_id, i.kind) for i in page.items if i.kind != "order_number_assigned"]
    assert story[0] == ("a-browsing", "checkout_started")
    assert ("a-browsing", "item_removed") in story and ("a-browsing", "customer_visited") in story
    assert story[-1] == ("a-ordered", "cart_created")


async def test_another_customer_and_another_shop_never_show(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    await seed(db, acts)
    bob = await customer_journal(db.session_factory, SHOP, "bob@example.com")
    assert {item.cart_id for item in bob.items} == {"b-bob"}
    assert {i.kind for i in bob.items if i.source != FROM_JOURNAL} == {
        REMINDER_SENT,
        RECOVERY_CLICKED,
    }
    other = await customer_journal(db.session_factory, OTHER, ANN)
    assert {item.cart_id for item in other.items} == {"x-ann"}
    assert all(item.shop_id == OTHER for item in other.items)
    nobody = await customer_journal(db.session_factory, SHOP, "nobody@example.com")
    assert nobody.items == () and nobody.next_cursor is None and nobody.dropped == {}


async def test_ledger_rows_of_the_address_whose_cart_is_gone_still_show(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    """The ledger outlives carts: a reminder sent to Ann for a cart no longer in
    ``carts`` (and its click) is in her journal, not in Bob's."""
    await seed(db, acts)
    gone = T0 - timedelta(days=3)
    await add(
        db,
        ledger(SHOP, "a-gone", "first", "sent", gone, email=ANN),
        click(SHOP, "a-gone", "first", gone + timedelta(hours=1)),
        ledger(SHOP, "b-gone", "first", "sent", gone, email="bob@example.com"),
    )
    page = await customer_journal(db.session_factory, SHOP, "Ann@example.com")
    tail = [(i.cart_id, i.kind) for i in page.items[-2:]]
    assert tail == [("a-gone", RECOVERY_CLICKED), ("a-gone", REMINDER_SENT)]
    assert "b-gone" not in {item.cart_id for item in page.items}
    assert "a-gone" not in page.dropped


async def test_pages_neither_skip_nor_repeat_while_entries_are_added(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    carts = await seed(db, acts)
    # entries at the very same time and cart: the item key orders them, across pages too
    tie = T0 + timedelta(hours=5, minutes=2)
    await add(db, *(click(SHOP, "a-ordered", "r", tie) for _ in range(3)))
    before = {i.position for i in (await customer_journal(db.session_factory, SHOP, ANN)).items}
    ahead: set[tuple[datetime, str, str]] = set()  # beyond the position: shown later
    behind: set[tuple[datetime, str, str]] = set()  # before it: never shown now
    later = T0 + timedelta(days=2)

    async def between(turn: int, last: JournalItem) -> None:
        if turn > 2:
            return
        # an older click, a click at the position's very time (its cart id and key decide
        # its side), and a newer journal entry of a cart
        older = click(SHOP, "a-reminded", f"old-{turn}", T0 - timedelta(days=1, minutes=turn))
        same = click(SHOP, "a-ordered", f"same-{turn}", last.at)
        await add(db, older, same)
        for row in (older, same):
            position = (row.clicked_at, row.cart_id, f"c{row.id:015d}")
            (ahead if position < last.position else behind).add(position)
        browsing = carts["a-browsing"]
        machine.apply(browsing, CustomerVisited(page=f"/p{turn}"), later + timedelta(minutes=turn))
        await project(acts, browsing)

    seen = [item.position for item in await all_pages(db, ANN, 4, between)]
    assert len(seen) == len(set(seen)), "an item was repeated"
    assert seen == sorted(seen, reverse=True)
    assert before <= set(seen), "an item was skipped"
    assert ahead <= set(seen), "an item added ahead was skipped"
    assert not behind & set(seen)
    assert set(seen) == before | ahead
    visits = [p for p in seen if p[1] == "a-browsing" and later <= p[0] < later + timedelta(1)]
    assert len(ahead) >= 3 and not visits, "an entry added behind the position was shown"
    assert len([p for p in seen if p[0] == tie and p[1] == "a-ordered"]) == 3


async def test_capped_journals_say_how_many_entries_they_dropped(
    db: ScratchDatabase, acts: CartActivities
) -> None:
    cart = Cart(shop_id=SHOP, cart_id="a-long", policy=CartPolicy(journal_limit=3), lineage=LINEAGE)
    for minute in range(6):
        event = CartUpdated([line(f"sku-{minute}")], "EUR", "cust-7")
        machine.apply(cart, event, T0 + timedelta(minutes=minute))
    identified(cart, ANN, T0 + timedelta(minutes=10))
    assert len(cart.journal) == 3 and cart.journal_dropped > 0
    await project(acts, cart)
    await project(acts, browsing_cart(SHOP, "a-short", ANN, T0))
    found = await cart_journal(db.session_factory, SHOP, "a-long")
    assert found.dropped == cart.journal_dropped and len(found.items) == 3
    page = await customer_journal(db.session_factory, SHOP, ANN)
    assert page.dropped == {"a-long": cart.journal_dropped, "a-short": 0}
    keys = [i.key for i in found.items]
    assert keys[0] == f"j{cart.journal_dropped:012d}"  # its number in the cart's life


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "arguments",
    [
        {"shop_id": "bad shop"},
        {"shop_id": ""},
        {"email": ""},
        {"email": "   "},
        {"email": "no-at-sign"},
        {"email": "@example.com"},
        {"email": "ann@"},
        {"email": "ann@exa mple.com"},
        {"email": "ann\n@example.com"},
        {"email": "a" * 320 + "@x.io"},
        {"email": 7},
        {"limit": 0},
        {"limit": 501},
        {"limit": True},
    ],
)
async def test_bad_filters_are_refused(db: ScratchDatabase, arguments: dict[str, Any]) -> None:
    values: dict[str, Any] = {"shop_id": SHOP, "email": ANN, **arguments}
    with pytest.raises(JournalQueryRefused) as refused:
        await customer_journal(db.session_factory, **values)
    assert refused.value.code == "invalid_filter"


async def test_a_bad_cart_id_is_refused(db: ScratchDatabase) -> None:
    with pytest.raises(JournalQueryRefused) as refused:
        await cart_journal(db.session_factory, SHOP, "bad cart")
    assert refused.value.code == "invalid_filter"


@pytest.mark.parametrize(
    "cursor",
    ["", "not-base64!", "e30", "eyJ2IjoyfQ", "x" * 3000, "eyJ2IjoxLCJ0IjoiMjAyNiIsImMiOiIifQ"],
)
async def test_a_cursor_this_journal_did_not_give_is_refused(
    db: ScratchDatabase, cursor: str
) -> None:
    with pytest.raises(JournalQueryRefused) as refused:
        await customer_journal(db.session_factory, SHOP, ANN, after=cursor)
    assert refused.value.code == "invalid_cursor"


async def test_a_naive_time_in_a_cursor_is_refused(db: ScratchDatabase) -> None:
    item = JournalItem(
        datetime(2026, 1, 1), SHOP, "c-1", "cart_created", "system", None, FROM_JOURNAL, "j1"
    )
    with pytest.raises(JournalQueryRefused) as refused:
        await customer_journal(
            db.session_factory, SHOP, ANN, after=encode_cursor(item, cursor_scope(SHOP, ANN))
        )
    assert refused.value.code == "invalid_cursor"
    aware = JournalItem(
        datetime(2026, 1, 1, tzinfo=UTC), SHOP, "c-1", "x", "system", None, FROM_JOURNAL, "j1"
    )
    page = await customer_journal(
        db.session_factory, SHOP, ANN, after=encode_cursor(aware, cursor_scope(SHOP, ANN))
    )
    assert page.items == ()
    # a cursor another customer's (or shop's) journal gave is refused
    for scope in (cursor_scope(SHOP, "bob@example.com"), cursor_scope("other-shop", ANN)):
        with pytest.raises(JournalQueryRefused) as foreign:
            await customer_journal(db.session_factory, SHOP, ANN, after=encode_cursor(aware, scope))
        assert foreign.value.code == "invalid_cursor"
    # the same customer however the address is typed: the same journal
    same = await customer_journal(
        db.session_factory,
        SHOP,
        ANN.upper(),
        after=encode_cursor(aware, cursor_scope(SHOP, ANN)),
    )
    assert same.items == ()


# --------------------------------------------------------------------------- cost


async def test_the_customer_query_reads_the_email_index(db: ScratchDatabase) -> None:
    template = browsing_cart(SHOP, "template", ANN, T0)
    rows = []
    for i in range(2_000):
        values = cart_values(template, T0)
        values.update(shop_id=f"shop-{i % 7}", cart_id=f"c-{i}", customer_email=f"u{i % 97}@x.io")
        rows.append(values)
    async with write_session(db.session_factory) as session:
        await session.execute(insert(CartRecord), rows)
    async with db.engine.begin() as connection:
        await connection.exec_driver_sql("ANALYZE")
    for before in (None, T0):
        plan = await explain(db, customer_statement("shop-1", "U3@x.io", before))
        assert "ix_carts_shop_id_email" in plan, plan
        assert "SCAN carts" not in plan and "Seq Scan" not in plan, plan
    page = await customer_journal(db.session_factory, "shop-3", "U3@X.IO")
    assert {item.cart_id for item in page.items} == {
        f"c-{i}" for i in range(2_000) if i % 7 == 3 and i % 97 == 3
    }


async def test_an_edge_of_calendar_cursor_is_refused(db: ScratchDatabase) -> None:
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1)))
    item = JournalItem(far, SHOP, "c-1", "x", "system", None, FROM_JOURNAL, "j1")
    with pytest.raises(JournalQueryRefused) as refused:
        await customer_journal(
            db.session_factory, SHOP, ANN, after=encode_cursor(item, cursor_scope(SHOP, ANN))
        )
    assert refused.value.code == "invalid_cursor"
