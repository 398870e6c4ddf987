"""The admin's order actions without a Temporal server: what the client sends for each
(``starter.order_actions``) and what it refuses before sending, how the CLI reads its
options (``starter.cli.order_input``) and refuses before reading or sending anything,
and how an order is printed (``starter.cli.order_details``). End to end:
``tests/test_order_actions_cli.py``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import click
import pytest

import starter.cli.order_actions as cli_order_actions
import starter.cli.orders as cli_orders
from starter.cli.order_details import (
    describe_summary,
    details_json,
    order_summary,
    render_details,
    view_summary,
)
from starter.cli.order_input import (
    check_changes,
    delivery_changes,
    lines_from_json,
    parse_line_spec,
    with_names,
)
from starter.client import CartkeeperClient, CartkeeperError
from starter.order_actions import check_letter
from tests.cli_fixtures import Cartkeeper, failed, in_process_cli
from tests.conftest_db import ScratchDatabase, scratch_database
from workflows.codes import CartState, OrderSource, PaymentMethod, PaymentStatus
from workflows.events import CartLine
from workflows.order_state import Delivery, OrderStatusEntry, StatusMail, StockMove, StockQuantity
from workflows.state import Cart, CartView, Order, PaymentAttempt

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class Recording(CartkeeperClient):
    """A client whose updates are recorded, never sent (no Temporal client at all)."""

    def __init__(self) -> None:
        super().__init__(cast(Any, None))
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    async def _admin_once(
        self, shop_id: str, cart_id: str, update: str, payload: dict[str, Any]
    ) -> CartView:
        self.sent.append((cart_id, update, payload))
        return CartView("s", cart_id, CartState.ORDERED, 1, 0, "EUR", 0)


# --------------------------------------------------------------------------- the client


async def test_the_client_sends_the_contracts_payloads() -> None:
    carts = Recording()
    await carts.set_order_status("s", "c", "a", admin="ann", note="stock checked")
    await carts.edit_delivery("s", "c", admin="ann", method="dhl", cost=500, comment=None)
    await carts.edit_order_lines("s", "c", [CartLine("tea", "Green tea", 3, 450)], admin="ann")
    await carts.record_payment(
        "s", "c", admin="ann", kind="refund", amount=500, currency="EUR", reference="r-1"
    )
    await carts.add_order_note("s", "c", "called the customer", admin="ann")
    assert carts.sent == [
        ("c", "set_order_status", {"admin": "ann", "note": "stock checked", "status": "a"}),
        (
            "c",
            "edit_delivery",
            {
                "admin": "ann",
                "note": None,
                "delivery": {"method": "dhl", "cost": 500, "comment": None},
            },
        ),
        (
            "c",
            "edit_order_lines",
            {
                "admin": "ann",
                "note": None,
                "lines": [{"sku": "tea", "name": "Green tea", "quantity": 3, "unit_price": 450}],
            },
        ),
        (
            "c",
            "record_payment",
            {
                "admin": "ann",
                "note": None,
                "kind": "refund",
                "amount": 500,
                "currency": "EUR",
                "reference": "r-1",
            },
        ),
        ("c", "add_order_note", {"admin": "ann", "note": "called the customer"}),
    ]


REFUSED_AT_THE_EDGE: list[tuple[str, dict[str, Any], str]] = [
    ("set_order_status", {"letter": "N"}, "status_hidden"),
    ("set_order_status", {"letter": "n"}, "status_hidden"),
    ("set_order_status", {"letter": "AB"}, "invalid_status"),
    ("set_order_status", {"letter": "É"}, "invalid_status"),
    ("set_order_status", {"letter": ""}, "invalid_status"),
    ("set_order_status", {"letter": "A", "admin": " "}, "invalid_input"),
    ("set_order_status", {"letter": "A", "note": "x" * 1001}, "invalid_input"),
    ("set_order_status", {"letter": "A", "cart_id": "no spaces"}, "invalid_id"),
    ("edit_delivery", {}, "invalid_delivery"),
    ("edit_delivery", {"email": "not-an-address"}, "invalid_delivery"),
    ("edit_delivery", {"country": "de"}, "invalid_delivery"),
    ("edit_delivery", {"phone": "call me"}, "invalid_delivery"),
    ("edit_delivery", {"cost": -1}, "invalid_delivery"),
    ("edit_delivery", {"cost": None}, "invalid_delivery"),
    ("edit_delivery", {"cost": "5.00"}, "invalid_delivery"),
    ("edit_delivery", {"method": "no spaces"}, "invalid_delivery"),
    ("edit_delivery", {"address": "x" * 501}, "invalid_delivery"),
    ("edit_delivery", {"colour": "red"}, "invalid_delivery"),
    ("edit_order_lines", {"lines": []}, "cart_empty"),
    ("edit_order_lines", {"lines": [CartLine("tea", "Tea", 0, 450)]}, "invalid_quantity"),
    ("edit_order_lines", {"lines": [CartLine("tea", "Tea", 1, -5)]}, "invalid_price"),
    ("edit_order_lines", {"lines": [CartLine("", "Tea", 1, 5)]}, "invalid_line"),
    ("record_payment", {"amount": 0}, "invalid_amount"),
    ("record_payment", {"amount": True}, "invalid_amount"),
    ("record_payment", {"currency": "eur"}, "invalid_currency"),
    ("record_payment", {"kind": "chargeback"}, "invalid_payment"),
    ("record_payment", {"reference": ""}, "invalid_payment"),
    ("add_order_note", {"note": ""}, "invalid_input"),
    ("add_order_note", {"note": "x" * 1001}, "invalid_input"),
]


@pytest.mark.parametrize(("method", "arguments", "code"), REFUSED_AT_THE_EDGE)
async def test_the_client_refuses_before_sending(
    method: str, arguments: dict[str, Any], code: str
) -> None:
    carts = Recording()
    cart_id = arguments.pop("cart_id", "c")
    call: Any
    if method == "set_order_status":
        call = carts.set_order_status("s", cart_id, arguments.pop("letter"), **arguments)
    elif method == "edit_delivery":
        call = carts.edit_delivery("s", cart_id, admin="ann", **arguments)
    elif method == "edit_order_lines":
        call = carts.edit_order_lines("s", cart_id, arguments["lines"], admin="ann")
    elif method == "record_payment":
        payment = {"amount": 100, "currency": "EUR", **arguments}
        call = carts.record_payment("s", cart_id, admin="ann", **payment)
    else:
        call = carts.add_order_note("s", cart_id, arguments["note"], admin="ann")
    with pytest.raises(CartkeeperError) as refused:
        await call
    assert str(refused.value.code) == code
    assert carts.sent == []


def test_check_letter() -> None:
    assert check_letter("s") == "S"
    for bad in ("N", "1", "ä", "AA", None):
        with pytest.raises(CartkeeperError):
            check_letter(bad)


# --------------------------------------------------------------------------- the options


def test_line_specs() -> None:
    assert parse_line_spec("tea:3:450") == ("tea", 3, 450, None)
    assert parse_line_spec("tea:3:450:Green tea: loose") == ("tea", 3, 450, "Green tea: loose")
    assert parse_line_spec("tea: 3 :450:") == ("tea", 3, 450, None)
    for bad in ("tea", "tea:3", "tea:three:450", "tea:3:4.50"):
        with pytest.raises(ValueError):
            parse_line_spec(bad)


def test_lines_as_json() -> None:
    line = {"sku": "tea", "quantity": 2, "unit_price": 450}
    assert lines_from_json(json.dumps([line])) == [line]
    assert lines_from_json(json.dumps({"lines": [line]})) == [line]
    for bad in ("[", '{"sku": "tea"}', "[1, 2]", '{"lines": [], "more": 1}'):
        with pytest.raises(ValueError):
            lines_from_json(bad)


def test_lines_without_a_name_take_the_orders() -> None:
    current = [CartLine("tea", "Green tea", 1, 450)]
    raw: list[dict[str, Any]] = [
        {"sku": "tea", "name": None, "quantity": 2, "unit_price": 450},
        {"sku": "mug", "quantity": 1, "unit_price": 800},
        {"sku": "cup", "name": "Cup", "quantity": 1, "unit_price": 300},
    ]
    assert [line["name"] for line in with_names(raw, current)] == ["Green tea", "mug", "Cup"]


def test_delivery_changes() -> None:
    given = {"method": "dhl", "cost": None, "country": "de", "city": None, "comment": None}
    assert delivery_changes(given, ("comment", "tracking-code")) == {
        "method": "dhl",
        "tracking_code": None,
        "country": "DE",
        "comment": None,
    }
    assert delivery_changes({"cost": 0}, ()) == {"cost": 0}
    with pytest.raises(click.UsageError, match="--clear city and --city"):
        delivery_changes({"city": "Berlin"}, ("city",))
    check_changes({"tracking_code": "JJD0001"})
    for bad in ({}, {"email": "ann"}, {"postal_code": "1" * 21}):
        with pytest.raises(CartkeeperError) as refused:
            check_changes(bad)
        assert refused.value.code == "invalid_delivery"


# --------------------------------------------------------------------------- the CLI's refusals


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database("sqlite", tmp_path) as database:
        yield database


@pytest.fixture
def cartkeeper(db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    """The CLI on an empty read model, Temporal out of reach (nothing may be sent)."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    return in_process_cli(db, tmp_path, monkeypatch, [cli_orders, cli_order_actions], shop="shop-1")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["set-status", "7", "N"], "status_hidden"),
        (["set-status", "7", "7"], "invalid_status"),
        (["set-status", "--cart", "c-1", "AB"], "invalid_status"),
        (["set-status", "7", "A", "--admin", " "], "invalid_input"),
        (["delivery", "7"], "invalid_delivery"),
        (["delivery", "7", "--email", "ann@"], "invalid_delivery"),
        (["delivery", "7", "--country", "Germany"], "invalid_delivery"),
        (["delivery", "7", "--cost", "-5"], "invalid_delivery"),
        (["lines", "7", "--line", "tea:0:450"], "invalid_quantity"),
        (["lines", "7", "--line", "tea:1:-450"], "invalid_price"),
        (["lines", "7", "--line", ":1:450"], "invalid_line"),
        (["lines", "7", "--line", "tea:1:450", "--line", "tea:2:450"], "duplicate_sku"),
        (["pay", "7", "--amount", "0", "--currency", "EUR"], "invalid_amount"),
        (["pay", "7", "--amount", "100", "--currency", "EURO"], "invalid_currency"),
        (["pay", "7", "--amount", "1", "--currency", "EUR", "--reference", ""], "invalid_payment"),
        (["note", "7", " "], "invalid_input"),
    ],
)
def test_refused_before_anything_is_read_or_sent(
    cartkeeper: Cartkeeper, args: list[str], code: str
) -> None:
    failed(cartkeeper("orders", *args), 1, code)


def test_an_unknown_order_number_exits_3(cartkeeper: Cartkeeper) -> None:
    for args in (
        ["set-status", "41", "A"],
        ["delivery", "41", "--tracking-code", "JJD1"],
        ["lines", "41", "--line", "tea:1:450"],
        ["pay", "41", "--amount", "100", "--currency", "EUR"],
        ["note", "41", "hello"],
    ):
        line = failed(cartkeeper("orders", *args), 3, "order_not_found")
        assert "no order number 41" in line


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["set-status", "7"], "NUMBER LETTER"),
        (["set-status", "7", "A", "B"], "NUMBER LETTER"),
        (["set-status", "--cart", "c-1", "7", "A"], "only LETTER"),
        (["set-status", "x", "A"], "not an order number"),
        (["lines", "7"], "--line"),
        (["lines", "7", "--line", "tea:1"], "SKU:QTY:UNIT_PRICE"),
        (["lines", "7", "--json-file", "-"], "not valid JSON"),
        (["delivery", "7", "--city", "Berlin", "--clear", "city"], "--clear city"),
        (["delivery", "7", "--clear", "cost"], "--clear"),
        (["pay", "7", "--amount", "1.50", "--currency", "EUR"], "--amount"),
        (["pay", "7", "--amount", "150"], "--currency"),
    ],
)
def test_usage_errors_exit_2(cartkeeper: Cartkeeper, args: list[str], text: str) -> None:
    result = cartkeeper("orders", *args, input="[")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert text in result.stderr


# --------------------------------------------------------------------------- printing


def an_order() -> Cart:
    lines = [CartLine("tea", "Green tea", 2, 450), CartLine("mug", "Mug\x1b[2J", 1, 800)]
    order = Order(
        status="S",
        source=OrderSource.ADMIN_STATUS,
        total=2190,
        currency="EUR",
        created_at=T0,
        paid=False,
        number=12,
        amount_paid=1500,
        managed=True,
        status_name="Shipped",
        statuses=[
            OrderStatusEntry(
                1, "A", T0, "admin:ann", name="Awaiting", note="checked", resolved=True
            ),
            OrderStatusEntry(2, "S", T0, "admin:bob", name="Shipped", resolved=True),
            OrderStatusEntry(3, "Q", T0, "system"),
        ],
        delivery=Delivery(method="courier", cost=490, tracking_code="JJD1", country="DE"),
        stock_held=[StockQuantity("tea", 2)],
        stock_moves=[StockMove("order:l:1", "take", [StockQuantity("tea", 2)], 1, "done", T0)],
        mails=[StatusMail(2, "customer", "S", "sent", T0), StatusMail(2, "department", "S")],
    )
    payments = [
        PaymentAttempt(
            "payment-5",
            PaymentStatus.SUCCEEDED,
            2000,
            method=PaymentMethod.MANUAL,
            gateway="admin",
            currency="EUR",
            result_at=T0,
            succeeded_amount=2000,
            succeeded_currency="EUR",
            confirmed_by="ann",
            reference="bank 42",
        ),
        PaymentAttempt(
            "refund-6",
            PaymentStatus.SUCCEEDED,
            500,
            method=PaymentMethod.MANUAL,
            currency="EUR",
            succeeded_amount=500,
            succeeded_currency="EUR",
            confirmed_by="ann",
            refund=True,
        ),
    ]
    return Cart(
        "s", "c", CartState.ORDERED, currency="EUR", lines=lines, order=order, payments=payments
    )


def test_the_summary_of_an_order() -> None:
    cart = an_order()
    summary = order_summary(cart)
    assert (summary["number"], summary["total"], summary["balance"]) == (12, 2190, 690)
    assert summary["delivery"]["tracking_code"] == "JJD1"
    assert describe_summary(summary) == (
        "order 12: S Shipped, total 21.90 EUR, paid 15.00 EUR, balance 6.90 EUR"
    )
    assert cart.order is not None
    cart.order.final, cart.order.wanted_status, cart.order.number = True, "O", None
    assert describe_summary(order_summary(cart)) == (
        "order (number pending): S Shipped (final), total 21.90 EUR, paid 15.00 EUR,"
        " balance 6.90 EUR (becoming O)"
    )
    view = CartView("s", "c", CartState.ORDERED, 3, 1700, "EUR", 3, order_number=12)
    assert view_summary(view)["balance"] == 1700


def test_the_details_of_an_order() -> None:
    cart = an_order()
    text = render_details(cart)
    assert "Mug\\x1b[2J" in text and "\x1b" not in text
    history = text.split("status history\n")[1].split("\n\n")[0].splitlines()
    assert history[1].split()[:3] == ["1", "A", "Awaiting"] and "checked" in history[1]
    assert "admin:bob" in history[2] and "(not read yet)" in history[3]
    assert "payment by ann" in text and "bank 42" in text and "-5.00 EUR" in text
    assert "take  tea x2" in text and "sent" in text and "pending" in text
    data = details_json(cart)
    assert data["balance"] == 690 and data["delivery"]["cost"] == 490
    assert [p["refund"] for p in data["payments"]] == [False, True]
    assert [s["letter"] for s in data["statuses"]] == ["A", "S", "Q"]
    assert len(data["stock_moves"]) == 1 and len(data["status_mails"]) == 2

    locked = Cart("s", "n", CartState.LOCKED, currency="EUR", lines=cart.lines)
    assert "status history" not in render_details(locked)
    assert details_json(locked)["balance"] is None
