"""Text filters holding what PostgreSQL's text cannot (NUL) or what no driver can send (a
lone surrogate: a command-line argument that is not UTF-8), on SQLite and PostgreSQL:
the console's lists answer 400 with the problem, the admin JSON API 422
``invalid_filter``, the CLI ``error: invalid_filter`` (exit 1) and the queries refuse
with ``invalid_filter``; never a 5xx, a ``database_unavailable`` or an internal error,
and the same on both databases (``activities.filter_text``). Every other text a cart may
hold is a filter (a zero-width joiner in an e-mail, a no-break space ...): each list
finds the cart that holds it. Before, the filters refused whatever was not
``str.isprintable()``, so such a cart could not be searched for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import starter.cli.carts as cli_carts
import starter.cli.journal as cli_journal
import starter.cli.keys as cli_keys
import starter.cli.orders as cli_orders
from activities import journal_query, orders_query
from activities.db import write_session
from activities.filter_text import filter_problem
from activities.journal_query import JournalQueryRefused
from activities.models import CartRecord
from activities.orders_query import OrdersQueryRefused
from activities.read_model import cart_values
from starter.web.admin_cart_query import (
    CartFilters,
    CartQueryRefused,
    count_carts,
    list_cart_page,
)
from tests.admin_fixtures import sign_in
from tests.cli_fixtures import failed, in_process_cli, ok
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_web_admin_api import admin_api_on, basic
from tests.test_web_admin_carts import T0, row_of
from workflows.contract import CartState, CustomerInfo
from workflows.machine import check_customer

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
#: query-string values that must be refused (NUL, another control character)
REFUSED_IN_URLS = ["%00", "a%00b", "ann%01@example.com", "ann@example.com%0A%00"]
#: what the queries refuse (a lone surrogate too: nothing in a URL decodes to one)
REFUSED_TEXT = [
    "\x00",
    "a\x00b",
    "ann\x01@example.com",
    "ann\x7f@example.com",
    "ann\x85@example.com",  # a C1 control (NEL)
    "\udcff",
    "ann@\ud800.com",
]
#: what a cart's text may hold that ``str.isprintable()`` calls not printable: a no-break
#: space, a zero-width joiner, a soft hyphen, a right-to-left mark, a line separator, a
#: private-use and an unassigned code point
TAKEN_TEXT = ["a\u00a0b", "a\u200db", "a\u00adb", "a\u200fb", "a\u2028b", "\ue000", "\U000e0080"]
#: an e-mail a cart may hold (the workflow's rule) that is not printable
ZWJ_EMAIL = "ann\u200d@example.com"


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


def test_the_helper() -> None:
    assert filter_problem("Ann@Example.com", "email") is None
    assert filter_problem("a b", "email") is None
    for text in TAKEN_TEXT:
        assert not text.isprintable()
        assert filter_problem(text, "name") is None, text
    for text in REFUSED_TEXT:
        problem = filter_problem(text, "email")
        assert problem is not None and problem.startswith("email holds a ")
        assert "no control characters and no lone surrogates" in problem


async def test_the_console_answers_400(db: ScratchDatabase, tmp_path: Path) -> None:
    async with admin_api_on(db, tmp_path) as api:
        assert (await sign_in(api.http, "ann")).status_code == 303
        for value in REFUSED_IN_URLS:
            for page in ("/admin/carts", "/admin/orders"):
                response = await api.http.get(f"{page}?email={value}")
                assert response.status_code == 400, (page, value, response.status_code)
                assert "email holds a control character" in response.text
        # an undecodable byte is read as U+FFFD: a filter that matches nothing
        for page in ("/admin/carts", "/admin/orders"):
            assert (await api.http.get(f"{page}?email=%ED%A0%80")).status_code == 200
            assert (await api.http.get(f"{page}?email=ann%40example.com")).status_code == 200


async def test_the_admin_api_answers_422(db: ScratchDatabase, tmp_path: Path) -> None:
    async with admin_api_on(db, tmp_path) as api:
        for value in REFUSED_IN_URLS:
            for path in ("/api/v1/admin/carts", "/api/v1/admin/shops/shop-1/orders"):
                response = await api.http.get(f"{path}?email={value}", headers=basic("ann"))
                assert response.status_code == 422, (path, value, response.text)
                assert response.json()["error"]["code"] == "invalid_filter"


async def test_the_queries_refuse(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    for text in REFUSED_TEXT:
        with pytest.raises(CartQueryRefused) as carts:
            await list_cart_page(sessions, CartFilters(email=text))
        assert carts.value.code == "invalid_filter"
        with pytest.raises(CartQueryRefused):
            await count_carts(sessions, CartFilters(shop_id="shop-1", email=text))
        with pytest.raises(OrdersQueryRefused) as orders:
            await orders_query.list_orders(sessions, "shop-1", email=text)
        assert orders.value.code == "invalid_filter"
    # stripped first, as before: surrounding white space is not the filter's
    page = await list_cart_page(sessions, CartFilters(email=" \tann@example.com\n"))
    assert page.rows == ()


def test_the_cli_refuses(
    db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cartkeeper = in_process_cli(
        db, tmp_path, monkeypatch, [cli_orders, cli_carts, cli_keys], shop="shop-1"
    )
    for text in REFUSED_TEXT:
        failed(cartkeeper("orders", "list", "--email", text), 1, "invalid_filter")
        failed(cartkeeper("carts", "list", "--shop", text), 1, "invalid_filter")
        failed(cartkeeper("keys", "list", "--shop", text), 1, "invalid_filter")
    assert "no orders" in ok(cartkeeper("orders", "list", "--email", "ann@example.com"))
    ok(cartkeeper("carts", "list", "--shop", "shop-1"))
    ok(cartkeeper("keys", "list", "--shop", "shop-1"))


async def a_cart_with(db: ScratchDatabase, email: str) -> None:
    """An order of shop-1 whose customer's e-mail is ``email`` (one the cart's rules
    take), in the read model."""
    cart = row_of("zwj-cart", CartState.ORDERED, T0, email=email)
    assert cart.customer is not None
    check_customer(CustomerInfo(email=email))  # the workflow takes it
    async with write_session(db.session_factory) as session:
        session.add(CartRecord(**cart_values(cart, T0)))


async def test_every_text_a_cart_holds_can_be_searched_for(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    await a_cart_with(db, ZWJ_EMAIL)
    sessions = db.session_factory
    page = await list_cart_page(sessions, CartFilters(email=ZWJ_EMAIL))
    assert [row.cart_id for row in page.rows] == ["zwj-cart"]
    assert await count_carts(sessions, CartFilters(shop_id="shop-1", email=ZWJ_EMAIL)) == 1
    orders = await orders_query.list_orders(sessions, "shop-1", email=ZWJ_EMAIL)
    assert [row.cart_id for row in orders.rows] == ["zwj-cart"]
    journal = await journal_query.customer_journal(sessions, "shop-1", ZWJ_EMAIL)
    assert dict(journal.dropped) == {"zwj-cart": 0}
    for text in ("ann@\ud800.com", "ann\x00@example.com"):
        with pytest.raises(JournalQueryRefused) as refused:
            await journal_query.customer_journal(sessions, "shop-1", text)
        assert refused.value.code == "invalid_filter"

    async with admin_api_on(db, tmp_path) as api:
        headers = basic("ann")
        for path in ("/api/v1/admin/carts", "/api/v1/admin/shops/shop-1/orders"):
            found = await api.http.get(path, params={"email": ZWJ_EMAIL}, headers=headers)
            assert found.status_code == 200, (path, found.text)
            rows = found.json()["carts" if path.endswith("carts") else "orders"]
            assert [row["cart_id"] for row in rows] == ["zwj-cart"], path
        path = "/api/v1/admin/shops/shop-1/journal"
        found = await api.http.get(path, params={"email": ZWJ_EMAIL}, headers=headers)
        assert found.status_code == 200 and found.json()["dropped"] == {"zwj-cart": 0}
        assert (await sign_in(api.http, "ann")).status_code == 303
        for page_path, link in (
            ("/admin/carts", "/admin/carts/shop-1/zwj-cart"),
            ("/admin/orders", "/admin/orders/shop-1/7"),
        ):
            params = {"email": ZWJ_EMAIL, "shop": "shop-1"}
            shown = await api.http.get(page_path, params=params)
            assert shown.status_code == 200 and link in shown.text, page_path


def test_the_cli_searches_for_every_text_a_cart_holds(
    db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(a_cart_with_fresh_engine(db, ZWJ_EMAIL))
    cartkeeper = in_process_cli(db, tmp_path, monkeypatch, [cli_orders, cli_journal], shop="shop-1")
    listed = ok(cartkeeper("orders", "list", "--email", ZWJ_EMAIL))
    assert "1 order of shop shop-1" in listed and "ann\\u200d@example.com" in listed
    assert "zwj-cart" in ok(cartkeeper("journal", "--customer", ZWJ_EMAIL, "--json"))


async def a_cart_with_fresh_engine(db: ScratchDatabase, email: str) -> None:
    """``a_cart_with`` from a sync test (its own loop: the fixture's engine is another
    loop's)."""
    from activities.db import make_engine, make_session_factory

    engine = make_engine(db.url, schema=db.schema)
    try:
        fresh = ScratchDatabase(db.backend, db.url, db.schema, engine, make_session_factory(engine))
        await a_cart_with(fresh, email)
    finally:
        await engine.dispose()
