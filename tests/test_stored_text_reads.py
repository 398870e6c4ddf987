"""Carts stored before the text rules (``outside-text-checked``) holding what the rules now
refuse: a NUL, an escape sequence, a lone surrogate in a line's name, the customer's name
and an admin's note, kept in the read model (the snapshot, a JSON column, keeps them
exactly; ``\\u0000`` and ``\\ud800`` in its text) and in the cart's journal. On SQLite and
PostgreSQL every read of such a cart answers: the admin API's cart, carts and orders
lists, order and journals and the CLI's ``--json`` (JSON keeps the exact text but for a
lone surrogate, which has no UTF-8 form, written ``\\ud800``), the console's pages (HTML)
and the CLI's text (those characters escaped, ``\\x00``, ``\\x1b``, ``\\ud800``; tab and
line breaks kept).

Before, the admin API's cart (and an order, the orders list) answered 500 (a lone
surrogate has no UTF-8 form for the answer), so did the console's pages, the CLI failed
``internal``, and on PostgreSQL the cart's journal and its customer's answered 503
``database_unavailable`` for good: PostgreSQL stores such JSON text (the ``json`` type
keeps it as written) but its ``->`` operator, which reads the journal out of the
snapshot, refuses the whole document (``\\u0000 cannot be converted to text``,
``Unicode low surrogate must follow a high surrogate``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

import starter.cli.journal as cli_journal
import starter.cli.orders as cli_orders
from activities.cart_activities import CartActivities
from activities.read_model import get_cart_record
from starter.output import cart_json, dumps, render_cart
from tests.admin_fixtures import sign_in
from tests.cli_fixtures import in_process_cli, ok
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_web_admin_api import AdminApi, admin_api_on, basic
from workflows import machine
from workflows.contract import (
    Cart,
    CartLine,
    CartUpdated,
    CustomerIdentified,
    CustomerInfo,
    PaymentResultReported,
    ProjectCartInput,
)
from workflows.order_events import AddOrderNote
from workflows.validation import legacy_text

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
SHOP = "shop-1"
CART = "old-cart"
EMAIL = "ann@example.com"
#: what the cart holds, how a page or the CLI's text shows it, and JSON
LINE_NAME, LINE_SHOWN, LINE_JSON = "Te\x00a\ud800", "Te\\x00a\\ud800", "Te\x00a\\ud800"
CUSTOMER, CUSTOMER_SHOWN = "Ann\x1b[2J\udfff", "Ann\\x1b[2J\\udfff"
CUSTOMER_JSON = "Ann\x1b[2J\\udfff"
NOTE, NOTE_SHOWN = "called\x00 back\non\ud800 Friday", "called\\x00 back\non\\ud800 Friday"
NOTE_JSON = "called\x00 back\non\\ud800 Friday"
#: what no answer may hold as it is (JSON's own escapes, \u0000, are not these)
RAW = ("\x00", "\x1b", "\ud800", "\udfff")


@dataclass
class Stored:
    database: ScratchDatabase
    number: int


def legacy_cart() -> Cart:
    """An order whose texts were taken before the rules (its history replays under
    ``legacy_text``, as the workflow does for such a cart)."""
    cart = Cart(shop_id=SHOP, cart_id=CART)
    now = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    with legacy_text():
        for event in (
            CartUpdated([CartLine("tea", LINE_NAME, 1, 2100)], "EUR"),
            CustomerIdentified(CustomerInfo(email=EMAIL, name=CUSTOMER)),
            PaymentResultReported("a1", "succeeded", 2100),  # type: ignore[arg-type]
        ):
            machine.apply(cart, event, now)
    return cart


@pytest.fixture(params=BACKENDS)
async def stored(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stored]:
    """The read model (each database) with the legacy order projected as the workflow's
    projection writes it, then its admin's note (a journal entry) projected too."""
    async with scratch_database(request.param, tmp_path) as database:
        activities = CartActivities(database.session_factory)
        cart = legacy_cart()
        first = await ActivityEnvironment().run(
            activities.project_cart, ProjectCartInput(cart=cart, assign_number=True)
        )
        assert first.number is not None
        cart.order.number = first.number  # type: ignore[union-attr]
        with legacy_text():
            at = datetime(2026, 11, 30, 8, 5, tzinfo=UTC)
            machine.apply(cart, AddOrderNote(admin="ops", note=NOTE), at)
        await ActivityEnvironment().run(activities.project_cart, ProjectCartInput(cart=cart))
        record = await get_cart_record(database.session_factory, SHOP, CART)
        assert record is not None and record.lines[0].name == LINE_NAME, "kept exactly"
        assert any(entry.detail and NOTE in entry.detail for entry in record.journal)
        yield Stored(database, first.number)


def clean(text: str) -> str:
    """``text`` holds none of the raw characters: they were escaped."""
    for char in RAW:
        assert char not in text, (char, text[:300])
    return text


def readable(found: Any) -> dict[str, Any]:
    """A 200 JSON answer (UTF-8, control characters in JSON's escapes)."""
    assert found.status_code == 200, (found.status_code, found.text[:300])
    data: dict[str, Any] = json.loads(clean(found.content.decode("utf-8")))
    clean(json.dumps(data, ensure_ascii=False))
    return data


@pytest.fixture
async def api(stored: Stored, tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with admin_api_on(stored.database, tmp_path) as made:
        yield made


async def test_the_admin_api_reads_the_cart_its_order_and_journals(
    api: AdminApi, stored: Stored
) -> None:
    def get(path: str, **params: Any) -> Any:
        return api.http.get(f"/api/v1/admin{path}", params=params, headers=basic("vic"))

    cart = readable(await get(f"/carts/{SHOP}/{CART}"))  # no Temporal: the read model's
    assert cart["source"] == "read_model"
    assert cart["lines"][0]["name"] == LINE_JSON
    assert cart["customer"]["name"] == CUSTOMER_JSON
    assert any(entry["detail"] and NOTE_JSON in entry["detail"] for entry in cart["journal"])

    journal = readable(await get(f"/carts/{SHOP}/{CART}/journal"))
    assert any(item["detail"] and NOTE_JSON in item["detail"] for item in journal["items"])
    page = readable(await get(f"/shops/{SHOP}/journal", email=EMAIL))
    assert {item["cart_id"] for item in page["items"]} == {CART}
    assert any(item["detail"] and NOTE_JSON in item["detail"] for item in page["items"])

    listed = readable(await get("/carts", shop=SHOP))
    assert [row["cart_id"] for row in listed["carts"]] == [CART]
    orders = readable(await get(f"/shops/{SHOP}/orders"))
    assert [row["customer_name"] for row in orders["orders"]] == [CUSTOMER_JSON]
    order = readable(await get(f"/shops/{SHOP}/orders/{stored.number}"))
    assert order["customer_name"] == CUSTOMER_JSON


async def test_the_console_shows_the_cart_and_its_order(api: AdminApi, stored: Stored) -> None:
    assert (await sign_in(api.http, "vic")).status_code == 303
    for path in (
        f"/admin/carts/{SHOP}/{CART}",
        f"/admin/carts?shop={SHOP}",
        f"/admin/orders?shop={SHOP}",
        f"/admin/orders/{SHOP}/{stored.number}",
    ):
        page = await api.http.get(path)
        assert page.status_code == 200, (path, page.status_code, page.text[:300])
        html = clean(page.content.decode("utf-8"))
        if path.startswith("/admin/carts?"):
            assert f"/admin/carts/{SHOP}/{CART}" in html  # the list shows the e-mail
            continue
        assert CUSTOMER_SHOWN in html, path
        if "/carts/" in path:
            assert LINE_SHOWN in html and "called\\x00 back" in html


def test_the_cli_prints_the_journal_and_the_order(
    stored: Stored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cartkeeper = in_process_cli(
        stored.database, tmp_path, monkeypatch, [cli_journal, cli_orders], shop=SHOP
    )
    for args in (
        ("journal", "--cart", CART),
        ("journal", "--customer", EMAIL),
        ("orders", "list"),
        ("orders", "show", str(stored.number)),
    ):
        text = clean(ok(cartkeeper(*args)))
        data = json.loads(clean(ok(cartkeeper(*args, "--json"))))
        if args[0] == "journal":
            assert "called\\x00 back" in text
            assert any(NOTE_JSON in (item["detail"] or "") for item in data["items"])
        else:
            assert CUSTOMER_SHOWN in text
            rows = data["orders"] if args[1] == "list" else [data]
            assert [row["customer_name"] for row in rows] == [CUSTOMER_JSON]


async def test_carts_show_prints_it_as_text_and_json(stored: Stored) -> None:
    """``carts show`` (the workflow's cart, or the read model's: the same ``Cart``)."""
    record = await get_cart_record(stored.database.session_factory, SHOP, CART)
    assert record is not None
    text = clean(render_cart(record, now=datetime.now(UTC), journal_entries=20))
    assert LINE_SHOWN in text and CUSTOMER_SHOWN in text
    data = json.loads(clean(dumps(cart_json(record))))
    assert data["lines"][0]["name"] == LINE_JSON
    assert data["customer"]["name"] == CUSTOMER_JSON
