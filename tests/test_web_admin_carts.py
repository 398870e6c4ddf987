"""The console's dashboard and carts on the real dev server: a locked cart first on the
dashboard, confirmed through its page into a numbered order with the admin's name in the
journal; unlock, delete, resolve and send reminder; refusals shown as the workflow gave
them; CSRF and viewers changing nothing; the carts list's filters and keyset paging."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.db import write_session
from activities.models import CartRecord
from activities.read_model import cart_values, get_cart_record
from activities.settings import Settings
from starter.client import CartkeeperClient
from starter.web import admin_users
from starter.web.admin_cart_query import CartFilters, list_cart_page
from starter.web.app import create_app
from tests.admin_fixtures import PASSWORD, browser, page_token, sign_in
from tests.conftest import TASK_QUEUE, new_id
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_web_links import FakeSignaller
from tests.test_workflow_dev import LINES, TOTAL, eventually
from workflows.contract import (
    Attention,
    AttentionKind,
    Cart,
    CartLine,
    CartPolicy,
    CartState,
    CustomerInfo,
    JournalKind,
    LockReason,
    Order,
    OrderSource,
)

FAST_LOCK = CartPolicy(projection_interval_seconds=0)
QUICK_ABANDON = CartPolicy(abandon_after_seconds=1, projection_interval_seconds=0)


@dataclass
class Console:
    app: FastAPI
    admin: str
    viewer: str
    shop: str
    sessions: Any


@pytest.fixture
async def console(
    dev_env: WorkflowEnvironment, dev_worker: Worker, session_factory: Any, tmp_path: Path
) -> Console:
    """The app on the dev server and the dev worker's read model, with an admin and a
    viewer of their own, and a shop of the test's own."""

    async def temporal() -> Client:
        return dev_env.client

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        task_queue=TASK_QUEUE,
        secret_key=SecretStr("c" * 40),
    )
    app = create_app(settings, temporal_client_factory=temporal, session_factory=session_factory)
    admin, viewer = new_id("ann"), new_id("vic")
    await admin_users.add_user(session_factory, admin, PASSWORD, role="admin")
    await admin_users.add_user(session_factory, viewer, PASSWORD, role="viewer")
    return Console(app, admin, viewer, new_id("shop"), session_factory)


@pytest.fixture
async def signed_in(console: Console) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(console.app) as client:
        assert (await sign_in(client, console.admin)).status_code == 303
        yield client


def client_with(dev_env: WorkflowEnvironment, policy: CartPolicy) -> CartkeeperClient:
    return CartkeeperClient(dev_env.client, task_queue=TASK_QUEUE, policy_for=lambda _s: policy)


async def locked_cart(carts: CartkeeperClient, shop: str, *, last4: str = "4242") -> str:
    """A cart locked by a pending payment result (seed 004's PayPal case)."""
    cart_id = new_id()
    await carts.update_cart(shop, cart_id, LINES, "EUR")
    await carts.start_checkout(shop, cart_id)
    await carts.start_payment(
        shop, cart_id, attempt_id="att-1", method="online", gateway="paypal", amount=TOTAL
    )
    await carts.report_payment_result(
        shop, cart_id, attempt_id="att-1", status="pending", amount=TOTAL, card_last4=last4
    )
    return cart_id


async def projected(console: Console, shop: str, cart_id: str, state: CartState) -> None:
    async def there() -> bool:
        record = await get_cart_record(console.sessions, shop, cart_id)
        return record is not None and record.state is state

    await eventually(there)


def section(html: str, anchor: str) -> str:
    """The HTML of ``<section ... id="anchor">`` up to its end."""
    start = html.index(f'id="{anchor}"')
    return html[start : html.index("</section>", start)]


def flash(html: str) -> tuple[str, str]:
    found = re.search(r'<p class="flash (ok|error)" role="status">(.*?)</p>', html, re.S)
    assert found is not None, "no flash message on the page"
    return found.group(1), found.group(2).strip()


async def act(client: httpx.AsyncClient, path: str, action: str, **fields: str) -> tuple[str, str]:
    """Post an action's form as the cart's page has it; follow the redirect: the flash."""
    token = await page_token(client, path)
    response = await client.post(f"{path}/{action}", data={"csrf_token": token, **fields})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == path
    return flash((await client.get(path)).text)


# --------------------------------------------------------------------------- seed 004


async def test_a_locked_cart_is_first_on_the_dashboard_and_becomes_an_order(
    console: Console, signed_in: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    carts = client_with(dev_env, FAST_LOCK)
    shop = console.shop
    cart_id = await locked_cart(carts, shop)
    await carts.update_cart(shop, "abandoned-one", LINES[:1], "EUR")
    await projected(console, shop, cart_id, CartState.LOCKED)

    board = await signed_in.get("/admin", params={"shop": shop})
    assert board.status_code == 200
    html = board.text
    widgets = [
        html.index(f'id="{name}"') for name in ("locked-carts", "attention", "orders", "abandoned")
    ]
    assert widgets == sorted(widgets), "locked carts come first"
    assert cart_id in section(html, "locked-carts")
    assert "€21.00" in section(html, "locked-carts")

    path = f"/admin/carts/{shop}/{cart_id}"
    page = await signed_in.get(path)
    assert page.status_code == 200
    payments = section(page.text, "payments")
    assert "att-1" in payments and "paypal" in payments and "•••• 4242" in payments
    assert "€21.00" in payments and "pending" in payments
    assert f"/namespaces/default/workflows/cart%3A{shop}%3A{cart_id}" in page.text
    assert "Confirm order" in page.text and "Unlock cart" in page.text

    kind, message = await act(signed_in, path, "confirm", status="P", note="PayPal shows it")
    assert kind == "ok", message
    number = int(re.fullmatch(r"Confirmed: order (\d+) \(P\), paid", message).group(1))  # type: ignore[union-attr]

    cart = await carts.get_cart(shop, cart_id)
    assert cart.state is CartState.ORDERED and cart.order is not None
    assert cart.order.number == number and cart.order.paid
    confirmed = [e for e in cart.journal if e.kind is JournalKind.CART_CONFIRMED]
    assert [e.actor for e in confirmed] == [f"admin:{console.admin}"]
    after = await signed_in.get(path)
    assert f"Order {number}" in after.text
    assert console.admin in section(after.text, "journal")
    assert "Confirm order" not in after.text  # an order is not confirmed twice


# --------------------------------------------------------------------------- guards


async def test_no_csrf_token_or_a_viewer_changes_nothing(
    console: Console, signed_in: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    carts = client_with(dev_env, FAST_LOCK)
    cart_id = await locked_cart(carts, console.shop)
    path = f"/admin/carts/{console.shop}/{cart_id}"
    before = await carts.get_cart(console.shop, cart_id)
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "f" * 64}):
        response = await signed_in.post(f"{path}/confirm", data={**data, "status": "P"})
        assert response.status_code == 403, data
    async with browser(console.app) as viewer:
        assert (await sign_in(viewer, console.viewer)).status_code == 303
        page = await viewer.get(path)
        assert page.status_code == 200 and "Confirm order" not in page.text
        token = await page_token(viewer, path)
        for action in ("confirm", "unlock", "delete", "resolve", "remind"):
            response = await viewer.post(f"{path}/{action}", data={"csrf_token": token})
            assert response.status_code == 403, action
    after = await carts.get_cart(console.shop, cart_id)
    assert after.state is CartState.LOCKED and after.version == before.version


async def test_a_refusal_is_shown_with_its_code(
    console: Console, signed_in: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    carts = client_with(dev_env, FAST_LOCK)
    cart_id = new_id()
    await carts.update_cart(console.shop, cart_id, LINES, "EUR")
    path = f"/admin/carts/{console.shop}/{cart_id}"
    kind, message = await act(signed_in, path, "unlock")
    assert kind == "error" and message.startswith("not_locked: ")
    kind, message = await act(signed_in, path, "remind", reminder_id="first")
    assert kind == "error" and message.startswith("not_abandoned: ")
    kind, message = await act(signed_in, path, "confirm", status="X")
    assert kind == "error" and message.startswith("invalid_status: ")
    assert (await carts.get_cart(console.shop, cart_id)).state is CartState.ACTIVE
    missing = await signed_in.get(f"/admin/carts/{console.shop}/no-such-cart")
    assert missing.status_code == 404 and "No such cart" in missing.text


# --------------------------------------------------------------------------- actions


async def test_unlock_delete_resolve_and_remind_record_the_admin(
    console: Console, signed_in: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    shop, admin = console.shop, console.admin
    carts = client_with(dev_env, FAST_LOCK)

    unlocked = await locked_cart(carts, shop)
    kind, message = await act(signed_in, f"/admin/carts/{shop}/{unlocked}", "unlock", note="called")
    assert (kind, message.split(":")[0]) == ("ok", "Unlocked")
    cart = await carts.get_cart(shop, unlocked)
    assert cart.state is CartState.ACTIVE
    assert [e.actor for e in cart.journal if e.kind is JournalKind.CART_UNLOCKED] == [
        f"admin:{admin}"
    ]

    deleted = new_id()
    await carts.update_cart(shop, deleted, LINES, "EUR")
    kind, message = await act(signed_in, f"/admin/carts/{shop}/{deleted}", "delete")
    assert (kind, message.split(":")[0]) == ("ok", "Deleted")
    cart = await carts.get_cart(shop, deleted)
    assert cart.state is CartState.DELETED
    assert [e.actor for e in cart.journal if e.kind is JournalKind.CART_DELETED] == [
        f"admin:{admin}"
    ]

    short = new_id()  # paid 1.00 EUR short: an attention item on the order
    await carts.update_cart(shop, short, LINES, "EUR")
    await carts.start_checkout(shop, short)
    await carts.start_payment(
        shop, short, attempt_id="att-1", method="online", gateway="stripe", amount=TOTAL
    )
    await carts.report_payment_result(
        shop, short, attempt_id="att-1", status="succeeded", amount=TOTAL - 100
    )

    async def flagged() -> Any:
        found = await carts.get_cart(shop, short)
        return found.open_attention

    item = (await eventually(flagged))[0]
    path = f"/admin/carts/{shop}/{short}"
    page = await signed_in.get(path)
    assert f"Resolve #{item.id}" in page.text and str(item.kind) in section(page.text, "attention")
    kind, message = await act(
        signed_in, path, "resolve", item=str(item.id), note="refunded <b>1.00</b>"
    )
    assert (kind, message) == ("ok", f"Resolved item #{item.id}")
    cart = await carts.get_cart(shop, short)
    resolved = next(i for i in cart.attention if i.id == item.id)
    assert resolved.resolved_by == admin
    assert resolved.resolution == "refunded <b>1.00</b>"
    shown = (await signed_in.get(path)).text
    assert "refunded &lt;b&gt;1.00&lt;/b&gt;" in shown and "<b>1.00</b>" not in shown

    quiet = client_with(dev_env, QUICK_ABANDON)
    gone = new_id()
    await quiet.update_cart(shop, gone, [CartLine("sku-1", "<script>x</script>", 1, 450)], "EUR")
    await quiet.identify_customer(shop, gone, CustomerInfo(email="ann@example.com"))

    async def abandoned() -> bool:
        return (await quiet.get_cart(shop, gone)).state is CartState.ABANDONED

    await eventually(abandoned)
    path = f"/admin/carts/{shop}/{gone}"
    page = await signed_in.get(path)
    assert "<script>x</script>" not in page.text and "&lt;script&gt;x&lt;/script&gt;" in page.text
    kind, message = await act(signed_in, path, "remind", reminder_id="first", note="by hand")
    assert (kind, message.split(":")[0]) == ("ok", "Reminder first requested")
    cart = await quiet.get_cart(shop, gone)
    step = next(s for s in cart.reminders if s.reminder_id == "first")
    assert step.manual and step.requested_by == admin


# --------------------------------------------------------------------------- the list


async def test_the_carts_list_filters_and_pages_by_keyset(
    console: Console, signed_in: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    shop = console.shop
    carts = client_with(dev_env, FAST_LOCK)
    locked = await locked_cart(carts, shop)
    others = [new_id() for _ in range(4)]
    for cart_id in others:
        await carts.update_cart(shop, cart_id, LINES[:1], "EUR")
    await carts.identify_customer(shop, others[0], CustomerInfo(email="Bea@Example.com"))
    everything = {locked, *others}

    async def listed() -> bool:
        page = await list_cart_page(console.sessions, CartFilters(shop_id=shop), limit=50)
        return {row.cart_id for row in page.rows} == everything

    await eventually(listed)

    only_locked = await signed_in.get("/admin/carts", params={"shop": shop, "state": "locked"})
    assert only_locked.status_code == 200
    assert locked in only_locked.text and not any(c in only_locked.text for c in others)
    by_email = await signed_in.get(
        "/admin/carts", params={"shop": shop, "email": "bea@example.COM"}
    )
    assert others[0] in by_email.text and locked not in by_email.text
    tomorrow = (await carts.get_cart(shop, locked)).created_at
    assert tomorrow is not None
    day = tomorrow.date().isoformat()
    today = await signed_in.get(
        "/admin/carts", params={"shop": shop, "created_from": day, "created_to": day}
    )
    assert all(c in today.text for c in everything)
    none = await signed_in.get("/admin/carts", params={"shop": shop, "updated_to": "2000-01-01"})
    assert none.status_code == 200 and "No carts match." in none.text

    seen: list[str] = []
    url: str | None = f"/admin/carts?shop={shop}&limit=2"
    while url is not None:
        page = await signed_in.get(url)
        assert page.status_code == 200
        seen += [c for c in re.findall(rf'href="/admin/carts/{shop}/([^"]+)"', page.text)]
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert sorted(seen) == sorted(everything) and len(seen) == len(everything)

    for params in (
        {"state": "nope"},
        {"created_from": "31.12.2026"},
        {"after": "garbage"},
        {"limit": "0"},
    ):
        refused = await signed_in.get("/admin/carts", params={"shop": shop, **params})
        assert refused.status_code == 400, params
        assert "could not be read" in refused.text


def test_the_filters_read_dates_as_whole_utc_days() -> None:
    from starter.web.admin_carts import read_filters

    filters, problems = read_filters(
        {"created_from": "2026-11-01", "created_to": "2026-11-30", "state": "locked", "shop": "s"}
    )
    assert problems == []
    assert (
        filters.created_from is not None
        and filters.created_from.isoformat() == "2026-11-01T00:00:00+00:00"
    )
    assert (
        filters.created_until is not None
        and filters.created_until.isoformat() == "2026-12-01T00:00:00+00:00"
    )
    assert filters.state is CartState.LOCKED and filters.shop_id == "s"
    _, problems = read_filters({"shop": "no spaces", "updated_to": "9999-12-31", "state": "x"})
    assert len(problems) == 2  # the last day of the calendar is read, not refused


# --------------------------------------------------------------------------- both backends

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


def row_of(
    cart_id: str,
    state: CartState,
    updated: datetime,
    *,
    shop: str = "shop-1",
    email: str | None = None,
    created: datetime | None = None,
) -> Cart:
    cart = Cart(
        shop_id=shop,
        cart_id=cart_id,
        state=state,
        version=1,
        currency="EUR",
        lines=[CartLine("sku-1", "Tea", 2, 450)],
        customer=CustomerInfo(email=email) if email else None,
        created_at=created or updated,
        updated_at=updated,
        lineage=f"run-{cart_id}",
    )
    if state is CartState.LOCKED:
        cart.locked_at, cart.lock_reason = updated, LockReason.NO_PAYMENT_RESULT
    if state is CartState.ABANDONED:
        cart.abandoned_at = updated
    if state is CartState.ORDERED:
        cart.ordered_at = updated
        cart.order = Order(
            status="P",
            source=OrderSource.ONLINE_PAYMENT,
            total=900,
            currency="EUR",
            created_at=updated,
            paid=True,
            number=7,
            amount_paid=900,
        )
    return cart


async def test_the_list_and_the_dashboard_on_each_backend(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    hour = timedelta(hours=1)
    rows = [
        row_of("a-2", CartState.LOCKED, T0 + hour),
        row_of("A-1", CartState.ACTIVE, T0 + hour),  # the same time: ids by code point
        row_of("b", CartState.ABANDONED, T0 + 2 * hour, email="Bea@Example.com"),
        row_of("c", CartState.ACTIVE, T0 - 72 * hour, created=T0 - 120 * hour),
        row_of("d", CartState.ORDERED, T0 + 3 * hour),
        row_of("e", CartState.LOCKED, T0 - hour),
        row_of("a-2", CartState.LOCKED, T0 + hour, shop="shop-2"),
        row_of("r", CartState.ORDERED, T0 + 3 * hour),  # recovered by a reminder's link
        row_of("p", CartState.PAYMENT_PENDING, T0 - 2 * hour),  # a payment for an admin
    ]
    rows[-2].recovered_via = "saved-cart"
    rows[-1].attention = [
        Attention(kind=AttentionKind.AMOUNT_MISMATCH, at=T0, id=1, amount=100, expected_amount=900)
    ]
    async with write_session(db.session_factory) as session:
        for cart in rows:
            session.add(CartRecord(**cart_values(cart, T0)))
    expected = [
        (c.shop_id, c.cart_id)
        for c in sorted(rows, key=lambda c: (-c.updated_at.timestamp(), c.shop_id, c.cart_id))  # type: ignore[union-attr]
    ]
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        page = await list_cart_page(db.session_factory, CartFilters(), limit=2, after=after)
        seen += [(row.shop_id, row.cart_id) for row in page.rows]
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert seen == expected

    async def ids(**filters: Any) -> list[str]:
        page = await list_cart_page(db.session_factory, CartFilters(shop_id="shop-1", **filters))
        return [row.cart_id for row in page.rows]

    assert await ids(state=CartState.LOCKED) == ["a-2", "e"]
    assert await ids(email="bea@EXAMPLE.com") == ["b"]
    assert await ids(created_until=T0 - 100 * hour) == ["c"]
    assert await ids(updated_from=T0, updated_until=T0 + 2 * hour) == ["A-1", "a-2"]
    assert await ids(needs_admin=True) == ["a-2", "e", "p"]

    await admin_users.add_user(db.session_factory, "ann", PASSWORD)
    app = create_app(
        Settings(
            data_dir=tmp_path / "data",
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
            secret_key=SecretStr("c" * 40),
            default_shop="shop-1",
        ),
        signaller=FakeSignaller(),
        session_factory=db.session_factory,
        now=lambda: T0 + 4 * hour,
    )
    async with browser(app) as client:
        assert (await sign_in(client, "ann")).status_code == 303
        board = (await client.get("/admin")).text
        locked = section(board, "locked-carts")
        assert locked.index("/admin/carts/shop-1/e") < locked.index("/admin/carts/shop-1/a-2")
        assert "/admin/carts/shop-1/b" in section(board, "abandoned")
        assert "Processed" in section(board, "orders")
        # the payment that needs an admin, and the order a reminder recovered this month
        attention = section(board, "attention")
        assert "/admin/carts/shop-1/p" in attention and "/admin/carts/shop-1/e" not in attention
        recovered = section(board, "recovered")
        assert "1 paid of 1 recovered orders" in recovered and "9.00" in recovered
        assert 'href="/admin?shop=shop-2"' in board and "1 locked" in board
        listed = await client.get("/admin/carts", params={"state": "locked"})
        assert listed.text.count('href="/admin/carts/shop-') == 3
        stale = await client.get("/admin/carts/shop-1/b")  # no Temporal: the read model's
        assert stale.status_code == 200 and "read model's last record" in stale.text
