"""``cartkeeper orders`` (and ``starter.orders``) on a read model written by the real
projection (SQLite, and PostgreSQL with ``TEST_DATABASE_URL``) through click's
``CliRunner``: the table, the next page's command, JSON, show, counts, control characters
escaped, one ``error: <code>: <message>`` line with exit 1 (refused) or 3 (no such
order)."""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import starter.cli.orders as cli_orders
from activities.cart_activities import CartActivities
from starter.orders import NOT_FINISHED, OrderRow, OrdersClient, OrdersQueryRefused
from tests.cli_fixtures import Cartkeeper, failed, in_process_cli, ok
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_orders_query import SHOP, T0, TOTAL, not_finished, paid_order, project, seed
from workflows.validation import legacy_text

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    """A read model with ``test_orders_query.seed``'s orders, and one whose customer's
    name holds control characters."""
    async with scratch_database(request.param, tmp_path) as database:
        acts = CartActivities(database.session_factory)
        await seed(database, acts)
        with legacy_text():  # a cart from before ``invalid_text`` (its replay keeps it)
            evil = paid_order(
                "shop-evil", "c-evil", T0, email="eve@example.com", name="Eve\x1b[2J\nForged"
            )
        await project(acts, evil)
        await project(acts, not_finished("shop-evil", "n-evil", T0, "eve@example.com"))
        yield database


@pytest.fixture
def cartkeeper(db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    """The CLI in-process on ``db``."""
    return in_process_cli(db, tmp_path, monkeypatch, [cli_orders], shop="shop-1")


def test_list_shows_the_orders_table(cartkeeper: Cartkeeper) -> None:
    out = ok(cartkeeper("orders", "list"))
    lines = out.splitlines()
    assert lines[0] == "6 orders of shop shop-1"
    assert lines[1].split() == [
        "NUMBER",
        "CREATED",
        "(UTC)",
        "STATUS",
        "CUSTOMER",
        "DELIVERY",
        "TOTAL",
        "PAID",
        "METHOD",
        "FULLY",
        "PAID",
    ]
    body = lines[2:]
    assert len(body) == 6 and not any(line.startswith("more:") for line in lines)
    assert body[0].startswith("W3-4 ") and "S Shipped" in body[0]
    assert "37.50 EUR" in body[0] and "online (stripe)" in body[0] and body[0].endswith("yes")
    assert body[2].startswith("(not finished)") and "N Incomplete" in body[2]
    assert body[2].endswith("not defined")
    assert "Cy@Example.com" in body[3] and "10.00 EUR" in body[3] and body[3].endswith("no")
    assert body[5].startswith("WEB-1 ") and "Ann Example <ann@example.com>" in body[5]
    assert "2026-11-02 10:00:00" in body[5]


def test_pages_end_with_the_next_command(cartkeeper: Cartkeeper) -> None:
    first = ok(cartkeeper("orders", "list", "--limit", "4", "--email", "ANN@example.com"))
    assert "more:" not in first  # three match
    first = ok(cartkeeper("orders", "list", "--limit", "1", "--status", "o", "--oldest"))
    more = first.splitlines()[-1]
    assert more.startswith("more: cartkeeper orders list --status o --oldest --limit 1")
    args = shlex.split(more.removeprefix("more: "))[1:]
    second = ok(cartkeeper(*args))
    assert "more:" not in second and "W3-3" in second and "WEB-2" in first

    seen: list[str] = []
    args = ["orders", "list", "--limit", "2", "--json"]
    cursor = None
    while True:
        page = json.loads(ok(cartkeeper(*args, *(["--after", cursor] if cursor else []))))
        seen += [row["cart_id"] for row in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["c-ship", "c-open", "n-late", "c-part", "n-early", "c-paid"]


def test_list_json_and_filters(cartkeeper: Cartkeeper) -> None:
    data = json.loads(ok(cartkeeper("orders", "list", "--json", "--number", "1")))
    (row,) = data["orders"]
    assert data["next_cursor"] is None
    assert row["reference"] == "WEB-1" and row["number"] == 1 and row["status"] == "P"
    assert row["status_name"] == "Processed" and row["status_colour"] == "#43a047"
    assert row["created_at"] == "2026-11-02T10:00:00+00:00"
    assert (row["total"], row["amount_paid"], row["fully_paid"]) == (TOTAL, TOTAL, True)
    assert row["delivery"] is None and row["payment_status"] == "paid"

    def listed(*options: str) -> list[str]:
        rows = json.loads(ok(cartkeeper("orders", "list", "--json", *options)))["orders"]
        return [row["cart_id"] for row in rows]

    assert listed("--status", NOT_FINISHED) == ["n-late", "n-early"]
    assert listed("--since", "2026-11-02T11:00", "--until", "2026-11-02T14:00:00+00:00") == [
        "n-late",
        "c-part",
        "n-early",
    ]
    assert listed("--since", "2026-11-04") == ["c-ship"]
    assert listed("--until", "2026-11-01") == []
    assert len(listed("--until", "2026-11-02")) == 5  # a day: up to its end
    assert listed("--shop", "shop-2") == ["c-other"]


def test_show_and_counts(cartkeeper: Cartkeeper) -> None:
    out = ok(cartkeeper("orders", "show", "2"))
    assert out.splitlines()[0] == "order WEB-2 (shop shop-1)"
    assert "status     O Open (#1e88e5)" in out
    assert "paid       10.00 EUR" in out and "due        27.50 EUR" in out
    assert "payment    partially paid" in out
    data = json.loads(ok(cartkeeper("orders", "show", "4", "--json")))
    assert (data["cart_id"], data["status_name"]) == ("c-ship", "Shipped")

    counts = ok(cartkeeper("orders", "counts"))
    lines = [line.split() for line in counts.splitlines()]
    assert lines[0] == ["orders", "of", "shop", "shop-1", "per", "status"]
    assert ["O", "Open", "2"] in lines and ["P", "Processed", "1"] in lines
    assert ["C", "Complete", "0"] in lines and lines[-1] == ["-", "not", "finished", "2"]
    assert json.loads(ok(cartkeeper("orders", "counts", "--json"))) == {
        "P": 1,
        "O": 2,
        "S": 1,
        NOT_FINISHED: 2,
    }


def test_control_characters_are_escaped(cartkeeper: Cartkeeper) -> None:
    out = ok(cartkeeper("orders", "list", "--shop", "shop-evil"))
    assert "\x1b" not in out and "Eve\\x1b[2J\\nForged" in out
    assert len(out.splitlines()) == 4
    shown = ok(cartkeeper("orders", "show", "1", "--shop", "shop-evil"))
    assert "\x1b" not in shown and "Eve\\x1b[2J\\nForged <eve@example.com>" in shown
    data = json.loads(ok(cartkeeper("orders", "show", "1", "--shop", "shop-evil", "--json")))
    assert data["customer_name"] == "Eve\x1b[2J\nForged"  # JSON keeps the exact text


def test_refusals(cartkeeper: Cartkeeper) -> None:
    failed(cartkeeper("orders", "show", "99"), 3, "order_not_found")
    failed(cartkeeper("orders", "list", "--status", "PP"), 1, "invalid_filter")
    failed(cartkeeper("orders", "list", "--since", "yesterday"), 1, "invalid_filter")
    failed(
        cartkeeper("orders", "list", "--since", "2026-11-03", "--until", "2026-11-01"),
        1,
        "invalid_filter",
    )
    failed(cartkeeper("orders", "list", "--after", "garbage"), 1, "invalid_cursor")
    assert cartkeeper("orders", "list", "--limit", "0").exit_code == 2
    assert cartkeeper("orders", "show", "x").exit_code == 2


async def test_the_client(db: ScratchDatabase) -> None:
    client = OrdersClient(db.session_factory)
    page = await client.list(SHOP, limit=2, sort="oldest")
    assert [row.cart_id for row in page.rows] == ["c-paid", "n-early"]
    more = await client.list(SHOP, limit=2, sort="oldest", after=page.next_cursor)
    assert [row.cart_id for row in more.rows] == ["c-part", "n-late"]
    assert (await client.get(SHOP, 3)).cart_id == "c-open"
    assert (await client.counts(SHOP))[NOT_FINISHED] == 2
    with pytest.raises(OrdersQueryRefused):
        await client.list(SHOP, since=T0 + timedelta(days=1), until=T0)


def test_the_delivery_column_shows_method_city_and_tracking_code() -> None:
    import dataclasses

    from starter.cli.orders import delivery_label

    base = OrderRow(
        shop_id="s",
        cart_id="c",
        number=1,
        reference="1",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        status="S",
        status_name="Shipped",
        status_colour="#000000",
        customer_email=None,
        customer_name=None,
        delivery=None,
        total=100,
        currency="EUR",
        amount_paid=100,
        payment_method=None,
        payment_gateway=None,
        fully_paid=True,
        not_finished=False,
        payment_status="paid",
    )
    assert delivery_label(base) == "-"
    shipped = dataclasses.replace(
        base, delivery={"method": "dhl", "city": "Berlin", "tracking_code": "JJD1", "cost": 5}
    )
    assert delivery_label(shipped) == "dhl Berlin JJD1"
