"""``cartkeeper journal`` (and ``starter.journal``) on a read model written by the real
projection (SQLite, and PostgreSQL with ``TEST_DATABASE_URL``) through click's
``CliRunner``: a customer's and a cart's table, the next page's command walked to the
end, JSON, dropped entries, control characters escaped, one ``error: <code>: <message>``
line with exit 1 (refused) or 3 (no such cart), usage errors (exit 2)."""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

import starter.cli.journal as cli_journal
from activities.cart_activities import CartActivities
from starter.journal import JournalClient, JournalQueryRefused
from tests.cli_fixtures import Cartkeeper, failed, in_process_cli, ok
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_journal_query import ANN, browsing_cart, identified, seed
from tests.test_orders_query import SHOP, T0, project
from tests.test_read_model import LINEAGE, line
from workflows import machine
from workflows.contract import Cart, CartPolicy, CartUpdated, CustomerVisited
from workflows.validation import legacy_text

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    """``test_journal_query.seed``'s carts, a cart whose visited page holds control
    characters, and a cart whose journal dropped entries (shop-evil, eve)."""
    async with scratch_database(request.param, tmp_path) as database:
        acts = CartActivities(database.session_factory)
        await seed(database, acts)
        evil = browsing_cart("shop-evil", "c-evil", "eve@example.com", T0)
        with legacy_text():  # a cart from before ``invalid_text`` (its replay keeps it)
            visit = CustomerVisited(page="/x\x1b[2J\nForged")
            machine.apply(evil, visit, T0 + timedelta(hours=1))
        await project(acts, evil)
        long = Cart(
            shop_id="shop-evil",
            cart_id="c-long",
            policy=CartPolicy(journal_limit=2),
            lineage=LINEAGE,
        )
        for minute in range(4):
            machine.apply(
                long, CartUpdated([line(f"s{minute}")], "EUR"), T0 + timedelta(minutes=minute)
            )
        identified(long, "EVE@example.com", T0 + timedelta(minutes=9))
        await project(acts, long)
        yield database


@pytest.fixture
def cartkeeper(db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    return in_process_cli(db, tmp_path, monkeypatch, [cli_journal], shop=SHOP)


def test_a_customers_journal_is_a_table_newest_first(cartkeeper: Cartkeeper) -> None:
    out = ok(cartkeeper("journal", "--customer", "ANN@Example.com"))
    lines = out.splitlines()
    assert lines[0].endswith("of customer ANN@Example.com in shop shop-1 (3 carts), newest first")
    assert lines[1].split() == ["TIME", "(UTC)", "CART", "KIND", "ACTOR", "DETAIL"]
    body = lines[2:]
    assert not any(row.startswith("more:") for row in body)
    carts = {row.split()[2] for row in body}
    assert carts == {"a-ordered", "a-reminded", "a-browsing"}
    assert any("reminder_sent" in row and "reminder first, variant a" in row for row in body)
    assert any("recovery_clicked" in row and "customer" in row for row in body)
    assert any("checkout_started" in row for row in body)
    assert not any("bob" in row or "x-ann" in row for row in body)


def test_pages_end_with_the_next_command(cartkeeper: Cartkeeper) -> None:
    everything = json.loads(
        ok(cartkeeper("journal", "--customer", ANN, "--json", "--limit", "500"))
    )
    expected = [(i["at"], i["cart_id"], i["kind"], i["source"]) for i in everything["items"]]
    seen: list[tuple[str, ...]] = []
    args = ["journal", "--customer", ANN, "--limit", "4"]
    for _ in range(50):
        out = ok(cartkeeper(*args))
        lines = out.splitlines()
        more = lines[-1] if lines[-1].startswith("more: ") else None
        body = lines[2:-1] if more else lines[2:]
        assert len(body) <= 4
        page = json.loads(ok(cartkeeper(*args, "--json")))
        seen += [(i["at"], i["cart_id"], i["kind"], i["source"]) for i in page["items"]]
        if more is None:
            assert page["next_cursor"] is None
            break
        command = shlex.split(more.removeprefix("more: "))
        assert command[:6] == ["cartkeeper", "journal", "--customer", ANN, "--limit", "4"]
        assert command[6:8] == ["--shop", SHOP] and command[8] == "--after"
        assert command[9] == page["next_cursor"]
        args = command[1:]
    else:
        raise AssertionError("too many pages")
    assert seen == expected


def test_a_carts_journal_oldest_first(cartkeeper: Cartkeeper) -> None:
    out = ok(cartkeeper("journal", "--cart", "a-reminded"))
    lines = out.splitlines()
    assert lines[0] == (
        "journal of cart a-reminded (shop shop-1, active, ANN@example.com): "
        f"{len(lines) - 2} entries, oldest first"
    )
    kinds = [row.split()[3] for row in lines[2:]]
    assert kinds[0] == "cart_created"
    assert kinds[-4:] == [
        "recovery_clicked",
        "recovery_link_clicked",
        "customer_returned",
        "reminder_skipped",
    ]
    assert kinds.count("reminder_sent") == 2  # the cart's and the ledger's


def test_json_answers(cartkeeper: Cartkeeper) -> None:
    cart = json.loads(ok(cartkeeper("journal", "--cart", "a-reminded", "--json")))
    assert cart["cart_id"] == "a-reminded" and cart["dropped"] == 0
    assert cart["state"] == "active" and cart["customer_email"] == "ANN@example.com"
    first = cart["items"][0]
    assert set(first) == {"at", "shop_id", "cart_id", "kind", "actor", "detail", "source"}
    assert first["kind"] == "cart_created" and first["source"] == "journal"
    page = json.loads(ok(cartkeeper("journal", "--customer", ANN, "--json")))
    assert page["email"] == ANN and page["next_cursor"] is None
    assert page["dropped"] == {"a-browsing": 0, "a-ordered": 0, "a-reminded": 0}
    ats = [item["at"] for item in page["items"]]
    assert ats == sorted(ats, reverse=True)


def test_dropped_entries_and_control_characters(cartkeeper: Cartkeeper) -> None:
    out = ok(cartkeeper("journal", "--customer", "eve@example.com", "--shop", "shop-evil"))
    assert "\x1b" not in out and "Forged" in out
    assert "/x\\x1b[2J\\nForged" in out
    assert "older journal entries dropped (the cart keeps the newest): c-long " in out
    cart = ok(cartkeeper("journal", "--cart", "c-long", "--shop", "shop-evil"))
    assert cart.splitlines()[1].startswith("older journal entries dropped")
    assert len(cart.splitlines()) == 2 + 1 + 2  # title, dropped, header, two entries


def test_no_entries(cartkeeper: Cartkeeper) -> None:
    out = ok(cartkeeper("journal", "--customer", "nobody@example.com"))
    assert out == "no journal entries for customer nobody@example.com in shop shop-1\n"


def test_refusals(cartkeeper: Cartkeeper) -> None:
    failed(cartkeeper("journal", "--cart", "nope"), 3, "journal_not_found")
    failed(cartkeeper("journal", "--cart", "bad cart"), 1, "invalid_filter")
    failed(cartkeeper("journal", "--customer", "no-address"), 1, "invalid_filter")
    failed(cartkeeper("journal", "--customer", ANN, "--shop", "bad shop"), 1, "invalid_filter")
    failed(cartkeeper("journal", "--customer", ANN, "--after", "garbage"), 1, "invalid_cursor")
    for args in (
        (),
        ("--customer", ANN, "--cart", "a-ordered"),
        ("--cart", "a-ordered", "--limit", "3"),
        ("--cart", "a-ordered", "--after", "x"),
        ("--customer", ANN, "--limit", "0"),
    ):
        result = cartkeeper("journal", *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stdout == ""


async def test_the_client(db: ScratchDatabase) -> None:
    client = JournalClient(db.session_factory)
    cart = await client.cart(SHOP, "a-ordered")
    assert cart.items[0].kind == "cart_created"
    page = await client.customer(SHOP, "Ann@Example.com", limit=2)
    assert len(page.items) == 2 and page.next_cursor is not None
    more = await client.customer(SHOP, ANN, limit=2, after=page.next_cursor)
    assert not set(more.items) & set(page.items)
    with pytest.raises(JournalQueryRefused) as refused:
        await client.cart(SHOP, "nope")
    assert refused.value.code == "journal_not_found"
