"""``cartkeeper orders set-status | delivery | lines | pay | note | show`` end to end: the
CLI in-process (click's ``CliRunner``, in a thread: the worker lives on this event loop)
against the session's dev server, served by a worker of this module on its own task
queue and read model (SQLite, and PostgreSQL with ``TEST_DATABASE_URL``).

An order goes Open -> A (Awaiting) -> new lines and delivery -> S (Shipped, tracking
code) -> V (Delivered); refusals where the status forbids; payments and refunds; a not
finished order (a locked cart) gets its number when its status is set."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

import starter.cli.order_actions as cli_order_actions
import starter.cli.orders as cli_orders
from activities.cart_activities import CartActivities
from activities.orders_query import OrdersQueryRefused
from activities.settings import Settings
from starter.catalog import CatalogClient
from starter.client import CartkeeperClient
from starter.order_actions import order_cart
from tests.cli_fixtures import Cartkeeper, failed, in_process_cli, ok
from tests.conftest import FAST, new_id
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_cli import eventually, locked_cart
from workflows.codes import JournalKind

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@dataclass
class Stack:
    db: ScratchDatabase
    task_queue: str
    carts: CartkeeperClient
    address: str
    namespace: str


@pytest.fixture(scope="module", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest,
    dev_env: WorkflowEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """A read model of ``request.param`` and a worker of the real ``build_worker`` on it."""
    from worker import build_worker

    tmp = tmp_path_factory.mktemp("order-actions")
    async with scratch_database(request.param, tmp) as db:
        task_queue = new_id("orders-queue")
        settings = Settings(
            data_dir=tmp / "data",
            database_url=db.url,
            task_queue=task_queue,
            secret_key=SecretStr("s" * 40),
        )
        client = dev_env.client
        activities = CartActivities(db.session_factory, client)
        async with build_worker(client, activities, settings):
            yield Stack(
                db,
                task_queue,
                CartkeeperClient(client, task_queue=task_queue, policy_for=lambda _s: FAST),
                client.service_client.config.target_host,
                client.namespace,
            )


@pytest.fixture
def shop() -> str:
    return new_id("shop")


@pytest.fixture
def cli(stack: Stack, shop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    monkeypatch.setenv("CARTKEEPER_TASK_QUEUE", stack.task_queue)
    return in_process_cli(
        stack.db,
        tmp_path,
        monkeypatch,
        [cli_orders, cli_order_actions],
        shop=shop,
        prefix=("--address", stack.address, "--namespace", stack.namespace),
    )


async def run(cli: Cartkeeper, *args: str, input: str | None = None) -> Result:
    """``cartkeeper orders ARGS`` in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(cli, "orders", *args, input=input)


async def an_order(stack: Stack, shop: str, status: str = "O") -> tuple[str, int]:
    """A locked cart (21.00 EUR) confirmed as an order of ``status``, and its number once
    the read model has it."""
    cart_id = await locked_cart(stack.carts, stack.db.session_factory, shop)
    await stack.carts.confirm(shop, cart_id, admin="ann", status=status)
    number = (await stack.carts.await_order(shop, cart_id)).order_number
    assert number is not None
    assert await numbered(stack, shop, number) == cart_id
    return cart_id, number


async def numbered(stack: Stack, shop: str, number: int) -> str:
    """The cart of order ``number`` once the read model has it (``order_cart``)."""

    async def found() -> str | None:
        try:
            return await order_cart(stack.db.session_factory, shop, number)
        except OrdersQueryRefused:
            return None

    cart_id: str = await eventually(found)
    return cart_id


def state_line(number: int, status: str, total: str, paid: str, balance: str) -> str:
    return f"order {number}: {status}, total {total} EUR, paid {paid} EUR, balance {balance} EUR"


async def test_an_order_from_open_to_delivered(stack: Stack, shop: str, cli: Cartkeeper) -> None:
    await CatalogClient(stack.db.session_factory).add_shipping_method(
        shop, "courier", name="Courier", cost=490, currency="EUR"
    )
    cart_id, n = await an_order(stack, shop)
    number = str(n)

    out = ok(await run(cli, "set-status", number, "a", "--admin", "ann", "--note", "checked"))
    assert out == state_line(n, "A Awaiting", "21.00", "0.00", "21.00") + "\n"

    out = ok(
        await run(cli, "lines", number, "--line", "tea:3:450:Green tea", "--line", "mug:1:800")
    )
    assert out == state_line(n, "A Awaiting", "21.50", "0.00", "21.50") + "\n"
    out = ok(
        await run(
            cli,
            "delivery",
            number,
            "--method",
            "courier",
            "--recipient-name",
            "Ann Example",
            "--address",
            "Main st 1",
            "--postal-code",
            "10115",
            "--city",
            "Berlin",
            "--country",
            "de",
        )
    )
    assert out == state_line(n, "A Awaiting", "26.40", "0.00", "26.40") + "\n"
    out = ok(
        await run(cli, "pay", number, "--amount", "2640", "--currency", "eur", "--admin", "ann")
    )
    assert out == state_line(n, "A Awaiting", "26.40", "26.40", "0.00") + "\n"

    out = ok(await run(cli, "set-status", number, "S", "--admin", "bob"))
    assert out == state_line(n, "S Shipped", "26.40", "26.40", "0.00") + "\n"
    line = failed(
        await run(cli, "lines", number, "--line", "mug:2:800"), 1, "contents_not_editable"
    )
    assert "S (Shipped)" in line
    failed(await run(cli, "delivery", number, "--city", "Hamburg"), 1, "contents_not_editable")
    data = json.loads(
        ok(await run(cli, "delivery", number, "--tracking-code", "JJD0001", "--json"))
    )
    assert data["delivery"]["tracking_code"] == "JJD0001" and data["delivery"]["cost"] == 490
    assert (data["status"], data["total"], data["balance"]) == ("S", 2640, 0)

    out = ok(await run(cli, "set-status", number, "V", "--admin", "carl"))
    assert out == state_line(n, "V Delivered (final)", "26.40", "26.40", "0.00") + "\n"
    ok(await run(cli, "note", number, "the customer is happy", "--admin", "ann"))

    cart = await stack.carts.get_cart(shop, cart_id)
    assert cart.order is not None
    assert [(e.letter, e.by) for e in cart.order.statuses] == [
        ("O", "system"),
        ("A", "admin:ann"),
        ("S", "admin:bob"),
        ("V", "admin:carl"),
    ]
    assert cart.order.statuses[1].note == "checked"
    assert [(line.sku, line.quantity) for line in cart.lines] == [("tea", 3), ("mug", 1)]
    assert cart.lines[1].name == "Mug"  # no NAME: the order's name of the SKU
    assert any(
        entry.kind is JournalKind.ORDER_NOTE_ADDED and entry.detail == "the customer is happy"
        for entry in cart.journal
    )

    async def shown() -> str | None:
        out = ok(await run(cli, "show", number))
        return out if "tracking JJD0001" in out and "V " in out else None

    out = await eventually(shown)
    assert "method courier, cost 4.90 EUR, tracking JJD0001, recipient Ann Example" in out
    assert "country DE" in out and "balance    0.00 EUR" in out
    history = out.split("status history\n")[1].split("\n\n")[0].splitlines()
    assert [row.split()[1] for row in history[1:]] == ["O", "A", "S", "V"]
    assert "checked" in history[2] and "admin:bob" in history[3]
    assert "payment by ann" in out
    assert "stock moves" in out and "status e-mails" in out

    failed(await run(cli, "set-status", number, "N"), 1, "status_hidden")
    failed(await run(cli, "set-status", number, "X"), 1, "unknown_status")


async def test_payments_refunds_and_paid_statuses(stack: Stack, shop: str, cli: Cartkeeper) -> None:
    _, n = await an_order(stack, shop)
    number = str(n)
    line = failed(await run(cli, "set-status", number, "C"), 1, "payment_required")
    assert "0 of 2100" in line

    out = ok(await run(cli, "pay", number, "--amount", "1000", "--currency", "EUR"))
    assert out.startswith(state_line(n, "O Open", "21.00", "10.00", "11.00"))
    failed(
        await run(cli, "pay", number, "--amount", "1500", "--currency", "EUR", "--refund"),
        1,
        "refund_exceeds_paid",
    )
    failed(
        await run(cli, "pay", number, "--amount", "100", "--currency", "USD"),
        1,
        "currency_mismatch",
    )
    out = ok(
        await run(
            cli,
            "pay",
            number,
            "--amount",
            "400",
            "--currency",
            "EUR",
            "--refund",
            "--reference",
            "broken mug",
        )
    )
    assert out.startswith(state_line(n, "O Open", "21.00", "6.00", "15.00"))
    data = json.loads(
        ok(await run(cli, "pay", number, "--amount", "1500", "--currency", "EUR", "--json"))
    )
    assert (data["amount_paid"], data["balance"], data["paid"]) == (2100, 0, True)
    # the payments cover an Open order: it becomes P Processed
    assert data["status"] == "P" or data["wanted_status"] == "P"
    out = ok(await run(cli, "set-status", number, "C", "--note", "all paid"))
    assert out == state_line(n, "C Complete (final)", "21.00", "21.00", "0.00") + "\n"

    async def shown() -> dict[str, Any] | None:
        data = json.loads(ok(await run(cli, "show", number, "--json")))
        return data if data["status"] == "C" else None

    details = (await eventually(shown))["details"]
    manual = [p for p in details["payments"] if p["method"] == "manual"]
    assert [(p["refund"], p["succeeded_amount"]) for p in manual] == [
        (False, 1000),
        (True, 400),
        (False, 1500),
    ]
    assert manual[1]["reference"] == "broken mug" and details["balance"] == 0
    assert [s["letter"] for s in details["statuses"]][-1] == "C"


async def test_a_not_finished_order_gets_its_number(
    stack: Stack, shop: str, cli: Cartkeeper
) -> None:
    text_cart = await locked_cart(stack.carts, stack.db.session_factory, shop)
    json_cart = await locked_cart(stack.carts, stack.db.session_factory, shop)

    out = ok(await run(cli, "set-status", "--cart", text_cart, "A", "--admin", "ann"))
    match = re.fullmatch(
        rf"cart {re.escape(text_cart)}: order (\d+): A Awaiting, total 21\.00 EUR,"
        r" paid 0\.00 EUR, balance 21\.00 EUR\n",
        out,
    )
    assert match, out
    data = json.loads(ok(await run(cli, "set-status", "--cart", json_cart, "A", "--json")))
    assert data["cart_id"] == json_cart and data["state"] == "ordered"
    assert isinstance(data["number"], int) and data["number"] != int(match.group(1))
    assert (data["status"], data["status_name"]) == ("A", "Awaiting")

    cart = await stack.carts.get_cart(shop, text_cart)
    assert cart.order is not None and cart.order.number == int(match.group(1))
    assert [(e.letter, e.by) for e in cart.order.statuses] == [("A", "admin:ann")]
    assert await numbered(stack, shop, data["number"]) == json_cart
    ok(await run(cli, "note", str(data["number"]), "called the customer"))

    other = await locked_cart(stack.carts, stack.db.session_factory, shop)
    failed(await run(cli, "set-status", "--cart", other, "Q"), 1, "unknown_status")
    failed(await run(cli, "set-status", "--cart", other, "C"), 1, "payment_required")
    failed(await run(cli, "set-status", "--cart", new_id(), "A"), 3, "cart_not_found")


async def test_shipping_method_refusals(stack: Stack, shop: str, cli: Cartkeeper) -> None:
    await CatalogClient(stack.db.session_factory).add_shipping_method(
        shop, "usps", name="USPS", cost=700, currency="USD"
    )
    _, n = await an_order(stack, shop)
    failed(await run(cli, "delivery", str(n), "--method", "pigeon"), 1, "shipping_method_not_found")
    line = failed(await run(cli, "delivery", str(n), "--method", "usps"), 1, "currency_mismatch")
    assert "give --cost" in line
    # an order that is not Awaiting: its delivery's method and cost are not editable
    failed(
        await run(cli, "delivery", str(n), "--method", "usps", "--cost", "650"),
        1,
        "contents_not_editable",
    )
    data = json.loads(
        ok(await run(cli, "delivery", str(n), "--comment", "leave at the door", "--json"))
    )
    assert data["delivery"]["comment"] == "leave at the door"
