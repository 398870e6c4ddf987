"""The console's orders: the list (seed 002's columns and colours, not finished orders,
every filter, both sorts, keyset pages, the counts per status) on SQLite and PostgreSQL
from the real projection; an order's page; and, on the real dev server, an admin moving an
order through its statuses, editing its contents, delivery and payments through the page
(the journal names the admin), refusals shown with their code and changing nothing, and a
viewer who cannot act."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.cart_activities import CartActivities
from activities.orders_query import OrdersQueryRefused, get_order
from activities.settings import Settings
from starter.catalog import CatalogClient
from starter.client import CartkeeperClient, CartkeeperError
from starter.web import admin_users
from starter.web.admin_order_actions import parse_amount
from starter.web.admin_render import plain
from starter.web.app import create_app
from tests.admin_fixtures import PASSWORD, browser, page_token, sign_in
from tests.conftest import FAST, TASK_QUEUE, new_id
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_orders_query import NEWEST, OTHER, SHOP, seed
from tests.test_web_admin_carts import flash, locked_cart, section
from tests.test_web_links import FakeSignaller
from tests.test_workflow_dev import eventually
from workflows.codes import ErrorCode, JournalKind

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


# --------------------------------------------------------------------------- amounts


def test_amounts_are_read_in_the_currencys_minor_units() -> None:
    assert parse_amount("21.50", "EUR") == 2150
    assert parse_amount(" 21,5 ", "EUR") == 2150
    assert parse_amount("21", "EUR") == 2100
    assert parse_amount("0.07", "EUR") == 7
    assert parse_amount("1500", "JPY") == 1500
    assert parse_amount("1.234", "KWD") == 1234
    for text, currency in (
        ("21.505", "EUR"),
        ("15.5", "JPY"),
        ("-1.00", "EUR"),
        ("€21", "EUR"),
        ("1,234.50", "EUR"),
        ("", "EUR"),
        ("1e3", "EUR"),
        ("١٢", "EUR"),  # Arabic-Indic digits
        ("1" * 16, "EUR"),
    ):
        with pytest.raises(CartkeeperError) as refused:
            parse_amount(text, currency)
        assert refused.value.code is ErrorCode.INVALID_AMOUNT, text
    with pytest.raises(CartkeeperError):
        parse_amount("1.00", None)
    assert [plain(a, c) for a, c in ((2150, "EUR"), (7, "EUR"), (1500, "JPY"), (0, "EUR"))] == [
        "21.50",
        "0.07",
        "1500",
        "0.00",
    ]
    assert parse_amount(plain(123456789, "EUR"), "EUR") == 123456789


# --------------------------------------------------------------------------- the list


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
async def seeded(db: ScratchDatabase, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The orders of ``test_orders_query.seed`` (written by the real projection) and an
    admin signed in to a console on them (no Temporal: ``FakeSignaller``)."""
    await seed(db, CartActivities(db.session_factory))
    await admin_users.add_user(db.session_factory, "ann", PASSWORD, role="admin")
    app = create_app(
        Settings(
            data_dir=tmp_path / "data",
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
            secret_key=SecretStr("o" * 40),
            default_shop=SHOP,
        ),
        signaller=FakeSignaller(),
        session_factory=db.session_factory,
    )
    async with browser(app) as client:
        assert (await sign_in(client, "ann")).status_code == 303
        yield client


def listed(html: str) -> list[str]:
    """The carts of the list's rows, in order."""
    return re.findall(r'<tr data-cart="([^"]+)">', html)


def row_html(html: str, cart_id: str) -> str:
    start = html.index(f'<tr data-cart="{cart_id}">')
    return html[start : html.index("</tr>", start)]


async def cart_ids(client: httpx.AsyncClient, **params: str) -> list[str]:
    response = await client.get("/admin/orders", params=params)
    assert response.status_code == 200, (params, response.text)
    return listed(response.text)


async def test_the_list_has_seed_002s_columns_and_the_counts(
    seeded: httpx.AsyncClient,
) -> None:
    page = await seeded.get("/admin/orders")
    assert page.status_code == 200
    html = page.text
    assert listed(html) == NEWEST  # the settings' default shop, newest first

    paid = row_html(html, "c-paid")
    assert 'href="/admin/orders/shop-1/1">WEB-1</a>' in paid
    assert "2026-11-02 10:00:00 UTC" in paid
    assert 'fill="#43a047"' in paid and "Processed" in paid and "(P)" in paid
    assert "Ann Example" in paid and "ann@example.com" in paid
    assert paid.count("€37.50") == 2  # total and paid
    assert "online" in paid and "stripe" in paid
    assert "<td>yes</td>" in paid

    part = row_html(html, "c-part")
    assert "WEB-2" in part and "€37.50" in part and "€10.00" in part and "<td>no</td>" in part
    assert "W3-3" in row_html(html, "c-open")
    assert "Shipped" in row_html(html, "c-ship")

    waiting = row_html(html, "n-early")  # a not finished order: no number, status N
    assert "no number" in waiting and "not defined" in waiting
    assert "Incomplete" in waiting and "(N)" in waiting
    assert 'href="/admin/carts/shop-1/n-early"' in waiting
    assert "guest (unknown)" in row_html(html, "n-late")

    counts = dict(re.findall(r'data-status="([^"]+)">(\d+)<', section(html, "counts")))
    assert counts["P"] == "1" and counts["O"] == "2" and counts["S"] == "1"
    assert counts["not_finished"] == "2" and counts["C"] == "0" and "N" not in counts
    assert 'href="/admin/orders?shop=shop-1&amp;status=not_finished"' in html


async def test_the_list_filters(seeded: httpx.AsyncClient) -> None:
    assert await cart_ids(seeded, status="P") == ["c-paid"]
    assert await cart_ids(seeded, status="o") == ["c-open", "c-part"]
    assert await cart_ids(seeded, status="not_finished") == ["n-late", "n-early"]
    assert await cart_ids(seeded, status="N") == ["n-late", "n-early"]
    assert await cart_ids(seeded, status="C") == []
    day = {"created_from": "2026-11-02", "created_to": "2026-11-02"}
    assert await cart_ids(seeded, **day) == [c for c in NEWEST if c != "c-ship"]
    assert await cart_ids(seeded, created_from="2026-11-03") == ["c-ship"]
    assert await cart_ids(seeded, email="ANN@example.com") == ["c-ship", "n-early", "c-paid"]
    assert await cart_ids(seeded, number="2") == ["c-part"]  # the number, not the reference
    assert await cart_ids(seeded, number="99") == []
    assert await cart_ids(seeded, shop=OTHER) == ["c-other"]
    assert await cart_ids(seeded, sort="oldest") == list(reversed(NEWEST))
    assert await cart_ids(seeded, status="O", sort="oldest") == ["c-part", "c-open"]
    empty = await seeded.get("/admin/orders", params={"email": "nobody@example.com"})
    assert empty.status_code == 200 and "No orders match." in empty.text


async def test_the_list_pages_by_keyset(seeded: httpx.AsyncClient) -> None:
    for sort, expected in (("newest", NEWEST), ("oldest", list(reversed(NEWEST)))):
        seen: list[str] = []
        url: str | None = f"/admin/orders?sort={sort}&limit=2"
        pages = 0
        while url is not None:
            page = await seeded.get(url)
            assert page.status_code == 200, page.text
            rows = listed(page.text)
            assert 0 < len(rows) <= 2
            seen += rows
            pages += 1
            if pages > 1:
                assert "First page" in page.text
            found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
            url = found.group(1).replace("&amp;", "&") if found else None
        assert seen == expected and pages == 3
    # the filters stay on every page
    first = await seeded.get("/admin/orders", params={"status": "O", "limit": "1"})
    link = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert link is not None and "status=O" in link.group(1)
    second = await seeded.get(link.group(1).replace("&amp;", "&"))
    assert listed(first.text) + listed(second.text) == ["c-open", "c-part"]
    assert 'rel="next"' not in second.text


async def test_filters_it_cannot_read_are_shown_not_failed(seeded: httpx.AsyncClient) -> None:
    for params in (
        {"status": "XY"},
        {"created_from": "02.11.2026"},
        {"number": "W3-3"},
        {"number": "0"},
        {"after": "garbage"},
        {"limit": "0"},
        {"sort": "up"},
        {"shop": "no spaces"},
        {"created_from": "2026-11-05", "created_to": "2026-11-01"},
    ):
        refused = await seeded.get("/admin/orders", params=params)
        assert refused.status_code == 400, params
        assert "could not be read" in refused.text and listed(refused.text) == []
    # a cursor of the other sort is refused too
    page = await seeded.get("/admin/orders", params={"limit": "2"})
    cursor = re.search(r"after=([^\"&]+)", page.text)
    assert cursor is not None
    other = await seeded.get(
        "/admin/orders", params={"limit": "2", "sort": "oldest", "after": cursor.group(1)}
    )
    assert other.status_code == 400 and "invalid_cursor" in other.text


async def test_an_orders_page_from_the_read_model(seeded: httpx.AsyncClient) -> None:
    page = await seeded.get("/admin/orders/shop-1/1")
    assert page.status_code == 200
    html = page.text
    assert "Order WEB-1" in html and "read model's last record" in html
    heading = html[: html.index('id="summary"')]
    assert "Processed" in heading and 'fill="#43a047"' in heading  # the registry's name
    assert 'href="/admin/carts/shop-1/c-paid"' in html
    payments = section(html, "payments")
    assert "att-1" in payments and "failed" in payments
    assert "att-2" in payments and "succeeded" in payments
    assert "€37.50" in section(html, "summary")
    assert "Change status" in html  # an admin: the forms (the workflow decides)
    assert 'value="N"' not in section(html, "actions")  # the hidden status is not offered
    for missing in ("/admin/orders/shop-1/99", "/admin/orders/shop-1/abc", "/admin/orders/x/0"):
        response = await seeded.get(missing)
        assert response.status_code == 404 and "No such order" in response.text
    # an action without Temporal: the refusal as a flash, never a 500
    token = await page_token(seeded, "/admin/orders/shop-1/1")
    response = await seeded.post(
        "/admin/orders/shop-1/1/note", data={"csrf_token": token, "note": "called"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/orders/shop-1/1"
    kind, message = flash((await seeded.get("/admin/orders/shop-1/1")).text)
    assert kind == "error" and message.startswith("temporal_unavailable: ")
    # ... but a bad one is refused for what it is, Temporal or not
    token = await page_token(seeded, "/admin/orders/shop-1/1")
    response = await seeded.post(
        "/admin/orders/shop-1/1/note", data={"csrf_token": token, "note": "x" * 1001}
    )
    assert response.status_code == 303
    kind, message = flash((await seeded.get("/admin/orders/shop-1/1")).text)
    assert kind == "error" and message.startswith("invalid_input: "), message


# --------------------------------------------------------------------------- the dev server


@dataclass
class Console:
    app: FastAPI
    admin: str
    viewer: str
    shop: str
    sessions: Any
    carts: CartkeeperClient


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
    carts = CartkeeperClient(dev_env.client, task_queue=TASK_QUEUE, policy_for=lambda _s: FAST)
    return Console(app, admin, viewer, new_id("shop"), session_factory, carts)


@pytest.fixture
async def signed_in(console: Console) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(console.app) as client:
        assert (await sign_in(client, console.admin)).status_code == 303
        yield client


async def an_order(console: Console, status: str = "O") -> tuple[str, int]:
    """A locked cart (21.00 EUR) confirmed as an order of ``status``; its number once the
    read model has it."""
    cart_id = await locked_cart(console.carts, console.shop)
    await console.carts.confirm(console.shop, cart_id, admin="setup", status=status)
    number = (await console.carts.await_order(console.shop, cart_id)).order_number
    assert number is not None

    async def in_the_list() -> bool:
        try:
            return (await get_order(console.sessions, console.shop, number)).cart_id == cart_id
        except OrdersQueryRefused:
            return False

    await eventually(in_the_list)
    return cart_id, number


async def act(client: httpx.AsyncClient, path: str, action: str, **fields: Any) -> tuple[str, str]:
    """Post an action's form as the order's page has it; follow the redirect: the flash."""
    token = await page_token(client, path)
    response = await client.post(f"{path}/{action}", data={"csrf_token": token, **fields})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == path
    return flash((await client.get(path)).text)


async def test_an_admin_moves_an_order_through_the_page(
    console: Console, signed_in: httpx.AsyncClient
) -> None:
    shop, carts = console.shop, console.carts
    actor = f"admin:{console.admin}"
    await CatalogClient(console.sessions).add_shipping_method(
        shop, "courier", name="Courier", cost=490, currency="EUR"
    )
    cart_id, number = await an_order(console)
    path = f"/admin/orders/{shop}/{number}"

    page = await signed_in.get(path)
    assert page.status_code == 200 and "read model's last record" not in page.text
    actions = section(page.text, "actions")
    assert '<option value="A"' in actions and 'value="N"' not in actions
    assert "Replace the contents" not in page.text  # O Open: the contents are not editable
    assert "Courier" in section(page.text, "delivery")

    kind, message = await act(signed_in, path, "status", status="P", note="no payment yet")
    assert kind == "error" and message.startswith("payment_required: "), message

    kind, message = await act(signed_in, path, "status", status="A", note="stock checked")
    assert (kind, message) == (
        "ok",
        f"Status set: order {number} is A Awaiting, total €21.00, paid €0.00, balance €21.00",
    )
    cart = await carts.get_cart(shop, cart_id)
    assert cart.order is not None and cart.order.status == "A"
    assert cart.order.statuses[-1].note == "stock checked"
    changed = [e for e in cart.journal if e.kind is JournalKind.ORDER_STATUS_CHANGED]
    assert changed and changed[-1].actor == actor
    page = await signed_in.get(path)
    assert actor in section(page.text, "journal")
    history = section(page.text, "status-history")
    assert "Awaiting" in history and "stock checked" in history and 'fill="#90caf9"' in history

    # A Awaiting: the contents can change (a quantity of 0 removes a line)
    assert "Replace the contents" in page.text
    kind, message = await act(
        signed_in,
        path,
        "lines",
        sku=["sku-1", "sku-2", "mug", ""],
        name=["Tea", "Cup", "", ""],
        quantity=["3", "0", "1", ""],
        unit_price=["4.50", "12.00", "8", ""],
        note="customer asked",
    )
    assert (kind, message.split(":")[0]) == ("ok", "Contents replaced (2 lines)"), message
    cart = await carts.get_cart(shop, cart_id)
    assert [(x.sku, x.name, x.quantity, x.unit_price) for x in cart.lines] == [
        ("sku-1", "Tea", 3, 450),
        ("mug", "mug", 1, 800),
    ]

    kind, message = await act(
        signed_in,
        path,
        "delivery",
        method="courier",
        cost="0.00",  # as the form shows it: unchanged, so the method's cost
        recipient_name="Ann Example",
        city="Berlin",
        country="de",
        tracking_code="",
        comment="",
        email="",
        phone="",
        address="Main st 1",
        postal_code="10115",
    )
    assert kind == "ok", message
    cart = await carts.get_cart(shop, cart_id)
    delivery = cart.order.delivery if cart.order else None
    assert delivery is not None and (delivery.method, delivery.cost) == ("courier", 490)
    assert (delivery.city, delivery.country, delivery.address) == ("Berlin", "DE", "Main st 1")
    assert cart.order is not None and cart.order.total == 2150 + 490

    kind, message = await act(signed_in, path, "payment", kind="payment", amount="12.345")
    assert kind == "error" and message.startswith("invalid_amount: "), message
    kind, message = await act(
        signed_in, path, "payment", kind="payment", amount="26,40", reference="bank 1"
    )
    assert kind == "ok" and "Payment of €26.40 recorded" in message, message
    kind, message = await act(signed_in, path, "payment", kind="refund", amount="99")
    assert kind == "error" and message.startswith("refund_exceeds_paid: "), message
    kind, message = await act(signed_in, path, "payment", kind="refund", amount="1")
    assert kind == "ok" and "balance €1.00" in message, message
    cart = await carts.get_cart(shop, cart_id)
    assert cart.order is not None and cart.order.amount_paid == 2540
    assert [p.reference for p in cart.payments if p.reference] == ["bank 1"]
    assert len([p for p in cart.payments if p.refund]) == 1
    payments = section((await signed_in.get(path)).text, "payments")
    assert "bank 1" in payments and "-€1.00" in payments and "€26.40" in payments

    kind, message = await act(signed_in, path, "note", note="called <b>Ann</b>")
    assert (kind, message.split(":")[0]) == ("ok", "Note added")
    notes = section((await signed_in.get(path)).text, "notes")
    assert "called &lt;b&gt;Ann&lt;/b&gt;" in notes and actor in notes


async def test_a_refused_edit_is_shown_and_changes_nothing(
    console: Console, signed_in: httpx.AsyncClient
) -> None:
    shop, carts = console.shop, console.carts
    cart_id, number = await an_order(console)
    path = f"/admin/orders/{shop}/{number}"
    kind, message = await act(signed_in, path, "status", status="S", note="sent")
    assert kind == "ok" and f"order {number} is S Shipped" in message, message
    before = await carts.get_cart(shop, cart_id)

    page = await signed_in.get(path)
    assert "Replace the contents" not in page.text
    assert "The contents cannot change while the order is S (Shipped)" in page.text
    delivery_form = section(page.text, "delivery")
    assert re.search(r'name="city"[^>]*disabled', delivery_form)
    assert not re.search(r'name="tracking_code"[^>]*disabled', delivery_form)

    # posted anyway (an old page, another tab): the workflow refuses, the page says why
    kind, message = await act(
        signed_in, path, "lines", sku=["sku-1"], name=["Tea"], quantity=["9"], unit_price=["1"]
    )
    assert kind == "error" and message.startswith("contents_not_editable: "), message
    kind, message = await act(signed_in, path, "delivery", city="Paris")
    assert kind == "error" and message.startswith("contents_not_editable: "), message
    after = await carts.get_cart(shop, cart_id)
    assert after.lines == before.lines and after.order is not None and before.order is not None
    assert after.order.total == before.order.total and after.order.delivery is None

    kind, message = await act(signed_in, path, "delivery", tracking_code="JJD0001", comment="")
    assert kind == "ok" and "tracking_code" in message, message
    kind, message = await act(signed_in, path, "delivery", tracking_code="JJD0001", comment="")
    assert (kind, message) == ("ok", "Nothing to change: the delivery is as given")
    cart = await carts.get_cart(shop, cart_id)
    assert cart.order is not None and cart.order.delivery is not None
    assert cart.order.delivery.tracking_code == "JJD0001"
    assert "JJD0001" in section((await signed_in.get(path)).text, "delivery")


async def test_a_viewer_reads_an_order_but_cannot_act(console: Console) -> None:
    shop, carts = console.shop, console.carts
    cart_id, number = await an_order(console)
    path = f"/admin/orders/{shop}/{number}"
    async with browser(console.app) as viewer:
        assert (await sign_in(viewer, console.viewer)).status_code == 303
        listed_page = await viewer.get("/admin/orders", params={"shop": shop})
        assert listed_page.status_code == 200 and cart_id in listed_page.text
        page = await viewer.get(path)
        assert page.status_code == 200 and "Change status" not in page.text
        assert "you read, an admin acts" in page.text
        token = await page_token(viewer, path)
        for action, data in (
            ("status", {"status": "A"}),
            ("lines", {"sku": "x", "name": "x", "quantity": "1", "unit_price": "1"}),
            ("delivery", {"tracking_code": "T"}),
            ("payment", {"kind": "payment", "amount": "21.00"}),
            ("note", {"note": "viewer"}),
        ):
            response = await viewer.post(f"{path}/{action}", data={"csrf_token": token, **data})
            assert response.status_code == 403 and "only an admin" in response.text, action
    after = await carts.get_cart(shop, cart_id)
    assert not [e for e in after.journal if console.viewer in e.actor]
    assert not [e for e in after.journal if e.kind is JournalKind.ORDER_NOTE_ADDED]
    assert after.order is not None and after.order.delivery is None
    assert after.order.status == "O" and after.order.amount_paid == 0
    assert [(x.sku, x.quantity) for x in after.lines] == [("sku-1", 2), ("sku-2", 1)]
