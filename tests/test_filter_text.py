"""Text filters holding what PostgreSQL's text cannot (NUL) or what no driver can send (a
lone surrogate: a command-line argument that is not UTF-8), on SQLite and PostgreSQL:
the console's lists answer 400 with the problem, the admin JSON API 422
``invalid_filter``, the CLI ``error: invalid_filter`` (exit 1) and the queries refuse
with ``invalid_filter``; never a 5xx, a ``database_unavailable`` or an internal error,
and the same on both databases (``activities.filter_text``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import starter.cli.carts as cli_carts
import starter.cli.keys as cli_keys
import starter.cli.orders as cli_orders
from activities import orders_query
from activities.filter_text import filter_problem
from activities.orders_query import OrdersQueryRefused
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

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
#: query-string values that must be refused (NUL, another control character)
REFUSED_IN_URLS = ["%00", "a%00b", "ann%01@example.com", "ann@example.com%0A%00"]
#: what the queries refuse (a lone surrogate too: nothing in a URL decodes to one)
REFUSED_TEXT = ["\x00", "a\x00b", "ann\x01@example.com", "\udcff", "ann@\ud800.com"]


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


def test_the_helper() -> None:
    assert filter_problem("Ann@Example.com", "email") is None
    assert filter_problem("a b", "email") is None  # the ASCII space is printable
    for text in REFUSED_TEXT:
        assert filter_problem(text, "email") == "email: control characters are not allowed"


async def test_the_console_answers_400(db: ScratchDatabase, tmp_path: Path) -> None:
    async with admin_api_on(db, tmp_path) as api:
        assert (await sign_in(api.http, "ann")).status_code == 303
        for value in REFUSED_IN_URLS:
            for page in ("/admin/carts", "/admin/orders"):
                response = await api.http.get(f"{page}?email={value}")
                assert response.status_code == 400, (page, value, response.status_code)
                assert "email: control characters are not allowed" in response.text
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
