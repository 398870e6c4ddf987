"""``cartkeeper shipping-methods`` and ``cartkeeper stock`` (and ``starter.catalog``) on a
fresh read model (SQLite, and PostgreSQL with ``TEST_DATABASE_URL``) through click's
``CliRunner``: text and JSON output, control characters escaped, one ``error: <code>:
<message>`` line with exit 1 (refused) or 3 (no such shipping method), pages of stock
levels, untracked SKUs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import starter.cli.shipping as cli_shipping
import starter.cli.stock as cli_stock
from starter.catalog import CatalogClient, MethodSnapshot, ShippingMethodRefused, StockRefused
from tests.cli_fixtures import Cartkeeper, failed, in_process_cli, ok
from tests.conftest_db import ScratchDatabase, scratch_database

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
SHOP = "shop-1"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
def cartkeeper(db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    """The CLI in-process on ``db``."""
    return in_process_cli(db, tmp_path, monkeypatch, [cli_shipping, cli_stock], shop=SHOP)


# --------------------------------------------------------------------------- shipping


def test_shipping_methods_are_added_listed_edited_and_deleted(cartkeeper: Cartkeeper) -> None:
    methods = ("shipping-methods",)
    empty = ok(cartkeeper(*methods, "list"))
    assert "no shipping methods in shop shop-1" in empty
    assert json.loads(ok(cartkeeper(*methods, "list", "--json"))) == []
    added = ok(
        cartkeeper(
            *methods, "add", "courier", "--name", "Courier", "--cost", "490", "--currency", "EUR"
        )
    )
    assert added.strip() == "shipping method courier added: Courier, 4.90 EUR, position 10, enabled"
    free = json.loads(
        ok(
            cartkeeper(
                *methods,
                "add",
                "pick-up",
                "--name",
                "Pick-up in store",
                "--cost",
                "0",
                "--currency",
                "JPY",
                "--position",
                "5",
                "--disabled",
                "--json",
            )
        )
    )
    assert (free["method_id"], free["cost"], free["currency"], free["position"]) == (
        "pick-up",
        0,
        "JPY",
        5,
    )
    assert free["enabled"] is False and free["shop_id"] == SHOP
    datetime.fromisoformat(free["created_at"])

    text = ok(cartkeeper(*methods, "list"))
    assert "2 shipping methods of shop shop-1" in text
    rows = text.splitlines()[2:]
    assert rows[0].split()[:2] == ["pick-up", "Pick-up"] and rows[0].rstrip().endswith("no")
    assert "0 JPY" in rows[0] and "4.90 EUR" in rows[1] and rows[1].rstrip().endswith("yes")
    enabled = json.loads(ok(cartkeeper(*methods, "list", "--enabled-only", "--json")))
    assert [m["method_id"] for m in enabled] == ["courier"]

    edited = ok(cartkeeper(*methods, "edit", "courier", "--cost", "590", "--disable"))
    assert edited.strip() == "shipping method courier: Courier, 5.90 EUR, position 10, disabled"
    renamed = json.loads(
        ok(cartkeeper(*methods, "edit", "courier", "--name", "DHL", "--enable", "--json"))
    )
    assert (renamed["name"], renamed["cost"], renamed["enabled"]) == ("DHL", 590, True)

    deleted = ok(cartkeeper(*methods, "delete", "courier"))
    assert "shipping method courier (DHL, 5.90 EUR, position 10, enabled) deleted" in deleted
    gone = json.loads(ok(cartkeeper(*methods, "delete", "pick-up", "--json")))
    assert gone["method_id"] == "pick-up"
    assert json.loads(ok(cartkeeper(*methods, "list", "--json"))) == []


def test_shipping_refusals_and_exit_codes(cartkeeper: Cartkeeper) -> None:
    methods = ("shipping-methods",)
    add = (*methods, "add", "courier", "--name", "Courier", "--currency", "EUR")
    ok(cartkeeper(*add, "--cost", "490"))
    line = failed(cartkeeper(*add, "--cost", "490"), 1, "shipping_method_exists")
    assert "'courier'" in line
    assert "cost" in failed(
        cartkeeper(*methods, "add", "x", "--name", "X", "--cost", "-1", "--currency", "EUR"),
        1,
        "invalid_shipping_method",
    )
    assert "currency" in failed(
        cartkeeper(*methods, "add", "x", "--name", "X", "--cost", "1", "--currency", "eur"),
        1,
        "invalid_shipping_method",
    )
    assert "method id" in failed(
        cartkeeper(*methods, "add", "Bad Id", "--name", "X", "--cost", "1", "--currency", "EUR"),
        1,
        "invalid_shipping_method",
    )
    assert "position" in failed(
        cartkeeper(*methods, "edit", "courier", "--position", "10000"),
        1,
        "invalid_shipping_method",
    )
    failed(cartkeeper(*methods, "edit", "courier"), 1, "invalid_shipping_method")
    # a byte that is not UTF-8 in an argument is a lone surrogate (no database takes one)
    assert "lone surrogates" in failed(
        cartkeeper(*methods, "edit", "courier", "--name", "Caf\udce9"),
        1,
        "invalid_shipping_method",
    )
    failed(cartkeeper(*methods, "edit", "sea", "--cost", "1"), 3, "shipping_method_not_found")
    failed(cartkeeper(*methods, "delete", "sea"), 3, "shipping_method_not_found")
    failed(cartkeeper(*methods, "list", "--shop", "bad shop"), 1, "invalid_shop_id")
    usage = cartkeeper(*methods, "add", "x", "--name", "X", "--cost", "4.90", "--currency", "EUR")
    assert usage.exit_code == 2 and "--cost" in usage.stderr
    missing = cartkeeper(*methods, "add", "x", "--name", "X")
    assert missing.exit_code == 2 and "--cost" in missing.stderr
    # nothing of that changed the method
    text = ok(cartkeeper(*methods, "list"))
    assert "4.90 EUR" in text and "1 shipping method of shop shop-1" in text


def test_shipping_text_output_escapes_control_characters(cartkeeper: Cartkeeper) -> None:
    # control and invisible format characters in a name are refused, and the refusal
    # quotes nothing raw (a name cannot reorder or hide what is printed)
    refused = failed(
        cartkeeper(
            "shipping-methods",
            "add",
            "courier",
            "--name",
            "Courier\u202eevil",
            "--cost",
            "1",
            "--currency",
            "EUR",
        ),
        1,
        "invalid_shipping_method",
    )
    assert "\u202e" not in refused
    line = failed(
        cartkeeper(
            "shipping-methods",
            "add",
            "x",
            "--name",
            "a\x1b[2Jb",
            "--cost",
            "1",
            "--currency",
            "EUR",
        ),
        1,
        "invalid_shipping_method",
    )
    assert "\x1b" not in line


# --------------------------------------------------------------------------- stock


def test_stock_is_set_shown_and_listed(cartkeeper: Cartkeeper) -> None:
    untracked = ok(cartkeeper("stock", "show", "mug"))
    assert untracked.strip() == "stock of mug in shop shop-1: not tracked (unlimited)"
    data = json.loads(ok(cartkeeper("stock", "show", "mug", "--json")))
    assert data == {
        "shop_id": SHOP,
        "sku": "mug",
        "tracked": False,
        "level": None,
        "updated_at": None,
    }
    assert "no stock levels in shop shop-1" in ok(cartkeeper("stock", "list"))

    assert ok(cartkeeper("stock", "set", "mug", "12")).startswith("stock of mug in shop shop-1: 12")
    set_json = json.loads(ok(cartkeeper("stock", "set", "tea", "0", "--json")))
    assert (set_json["tracked"], set_json["level"]) == (True, 0)
    shown = json.loads(ok(cartkeeper("stock", "show", "mug", "--json")))
    assert (shown["tracked"], shown["level"]) == (True, 12)
    datetime.fromisoformat(shown["updated_at"])
    assert "stock of tea in shop shop-1: 0 (set " in ok(cartkeeper("stock", "show", "tea"))
    assert "not tracked" in ok(cartkeeper("stock", "show", "mug", "--shop", "shop-2"))

    for sku in ("b", "a", "c b"):
        ok(cartkeeper("stock", "set", sku, "1"))
    text = ok(cartkeeper("stock", "list", "--limit", "2"))
    lines = text.splitlines()
    assert lines[0] == "2 stock levels of shop shop-1"
    assert [line.split()[0] for line in lines[2:4]] == ["a", "b"]
    assert lines[-1] == "more: cartkeeper stock list --after b --limit 2"
    page = json.loads(ok(cartkeeper("stock", "list", "--after", "b", "--limit", "2", "--json")))
    assert [level["sku"] for level in page["levels"]] == ["c b", "mug"]
    assert page["next_after"] == "mug"
    second = ok(cartkeeper("stock", "list", "--after", "a", "--limit", "1"))
    assert second.splitlines()[-1] == "more: cartkeeper stock list --after b --limit 1"
    last = json.loads(ok(cartkeeper("stock", "list", "--after", "mug", "--json")))
    assert [level["sku"] for level in last["levels"]] == ["tea"] and last["next_after"] is None
    quoted = ok(cartkeeper("stock", "list", "--after", "b", "--limit", "1"))
    assert quoted.splitlines()[-1] == "more: cartkeeper stock list --after 'c b' --limit 1"


def test_stock_refusals_and_exit_codes(cartkeeper: Cartkeeper) -> None:
    ok(cartkeeper("stock", "set", "mug", "5"))
    for qty in ("-1", "1.5", "ten", "1e3", "99999999999999"):
        line = failed(cartkeeper("stock", "set", "mug", qty), 1, "invalid_stock_level")
        assert "'mug'" in line
    failed(cartkeeper("stock", "set", "x" * 201, "1"), 1, "invalid_sku")
    failed(cartkeeper("stock", "show", " "), 1, "invalid_sku")
    failed(cartkeeper("stock", "list", "--shop", "bad shop"), 1, "invalid_shop_id")
    for bad in ("0", "1001", "x"):
        usage = cartkeeper("stock", "list", "--limit", bad)
        assert usage.exit_code == 2 and "--limit" in usage.stderr
    assert cartkeeper("stock", "set", "mug").exit_code == 2
    assert json.loads(ok(cartkeeper("stock", "show", "mug", "--json")))["level"] == 5


def test_stock_text_output_escapes_control_characters(cartkeeper: Cartkeeper) -> None:
    sku = "mug\u202eevil"  # an invisible format character: accepted, printed escaped
    out = ok(cartkeeper("stock", "set", sku, "3"))
    assert "\u202e" not in out and "\\u202e" in out
    listed = ok(cartkeeper("stock", "list"))
    assert "\u202e" not in listed and "\\u202e" in listed
    data = json.loads(ok(cartkeeper("stock", "show", sku, "--json")))
    assert (data["sku"], data["level"]) == (sku, 3)
    # a control character is refused, and not echoed raw
    line = failed(cartkeeper("stock", "set", "mug\x1b[2J", "3"), 1, "invalid_sku")
    assert "\x1b" not in line


# --------------------------------------------------------------------------- the client


async def test_the_catalog_client_is_the_storefronts_entry_point(db: ScratchDatabase) -> None:
    catalog = CatalogClient(db.session_factory, clock=lambda: T0)
    method = await catalog.add_shipping_method(
        SHOP, "courier", name="Courier", cost=490, currency="EUR"
    )
    assert method.created_at == T0
    await catalog.add_shipping_method(
        SHOP, "sea", name="Sea", cost=90, currency="EUR", enabled=False
    )
    offer = await catalog.shipping_methods(SHOP, enabled_only=True)
    assert [m.method_id for m in offer] == ["courier"]
    snapshot = await catalog.method_snapshot(SHOP, "courier")
    assert snapshot == MethodSnapshot("courier", "Courier", 490, "EUR")
    await catalog.edit_shipping_method(SHOP, "courier", cost=590)
    assert (await catalog.shipping_method(SHOP, "courier")).cost == 590
    await catalog.delete_shipping_method(SHOP, "courier")
    with pytest.raises(ShippingMethodRefused):
        await catalog.shipping_method(SHOP, "courier")

    assert await catalog.stock_level(SHOP, "mug") is None
    level = await catalog.set_stock(SHOP, "mug", 2)
    assert (level.level, level.updated_at) == (2, T0)
    taken = await catalog.take_stock(SHOP, "order-1:take", [("mug", 2), ("ebook", 1)])
    assert taken.applied and taken.at == T0 and taken.untracked == ("ebook",)
    short = await catalog.take_stock(SHOP, "order-2:take", [("mug", 1)])
    assert short.short == ("mug",)
    given = await catalog.give_back_stock(SHOP, "order-1:back", [("mug", 2)])
    assert given.levels == (("mug", 2),)
    page = await catalog.stock_levels(SHOP, limit=1)
    assert [s.sku for s in page.levels] == ["mug"] and page.next_after is None
    with pytest.raises(StockRefused) as refused:
        await catalog.set_stock(SHOP, "mug", -3)
    assert refused.value.code == "invalid_stock_level"
