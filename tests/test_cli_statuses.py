"""``cartkeeper statuses list|add|edit|delete`` on a fresh read model (SQLite, and
PostgreSQL with ``TEST_DATABASE_URL``) through click's ``CliRunner``: the defaults table,
editing, JSON output, control characters escaped, and one ``error: <code>: <message>``
line with exit 1 (refused), 2 (usage) or 3 (no such status)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

import starter.cli.statuses as cli_statuses
from activities.db import make_engine, make_session_factory, write_session
from activities.models import OrderStatusRecord
from activities.order_statuses import DEFAULT_STATUSES, add_status
from tests.cli_fixtures import Cartkeeper, failed, in_process_cli, ok
from tests.conftest_db import ScratchDatabase, scratch_database

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
SHOP = "shop-1"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
def cartkeeper(db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    """The CLI in-process on ``db``."""
    monkeypatch.setenv("USER", "ann")
    return in_process_cli(db, tmp_path, monkeypatch, [cli_statuses], shop=SHOP, prefix=["statuses"])


def on_db(db: ScratchDatabase, work: Callable[[Any], Any]) -> Any:
    """Run ``work(sessions)`` on a fresh engine on this call's loop (from sync tests)."""

    async def main() -> Any:
        engine = make_engine(db.url, schema=db.schema)
        try:
            return await work(make_session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(main())


def listed(cartkeeper: Cartkeeper, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(cartkeeper("list", "--json", *args)))
    return data


def test_list_shows_the_defaults(cartkeeper: Cartkeeper) -> None:
    text = ok(cartkeeper("list"))
    lines = text.splitlines()
    assert lines[0] == f"14 order statuses of shop {SHOP} (the defaults, never edited)"
    assert lines[1].split() == ["LETTER", "NAME", "COLOUR", "POSITION", "INVENTORY", "FLAGS"]
    assert [line.split()[0] for line in lines[2:]] == list("OPCAHRSVBYFDIN")
    processed = next(line for line in lines if line.startswith("P "))
    assert "Processed" in processed and "#43a047" in processed and "decrease" in processed
    assert "paid, notify-customer, notify-department, default" in processed
    assert lines[-1].startswith("N ") and "hidden, default" in lines[-1]
    awaiting = next(line for line in lines if line.startswith("H "))
    assert "Awaiting (has payments)" in awaiting and "contents-editable" in awaiting

    data = listed(cartkeeper)
    assert (data["shop_id"], data["version"], data["customised"]) == (SHOP, 0, False)
    assert data["statuses"][1] == {
        "letter": "P",
        "name": "Processed",
        "colour": "#43a047",
        "position": 20,
        "paid": True,
        "final": False,
        "notify_customer": True,
        "notify_department": True,
        "inventory": "decrease",
        "contents_editable": False,
        "hidden": False,
        "builtin": True,
    }
    assert [s["letter"] for s in data["statuses"]] == [s.letter for s in DEFAULT_STATUSES]


def test_add_edit_delete(cartkeeper: Cartkeeper) -> None:
    text = ok(cartkeeper("add", "g", "Gift wrapping", "--colour", "#FF4081", "--contents-editable"))
    assert text == (
        "status G added: Gift wrapping (#ff4081, position 150, inventory none; contents-editable)\n"
    )
    added = json.loads(
        ok(
            cartkeeper(
                "add",
                "X",
                "Refunded",
                "--final",
                "--paid",
                "--notify-customer",
                "--notify-department",
                "--inventory",
                "increase",
                "--position",
                "135",
                "--shop",
                "other",
                "--json",
            )
        )
    )
    assert added == {
        "letter": "X",
        "name": "Refunded",
        "colour": "#9e9e9e",
        "position": 135,
        "paid": True,
        "final": True,
        "notify_customer": True,
        "notify_department": True,
        "inventory": "increase",
        "contents_editable": False,
        "hidden": False,
        "builtin": False,
    }
    assert "X" not in [s["letter"] for s in listed(cartkeeper)["statuses"]], "another shop"
    assert [s["letter"] for s in listed(cartkeeper, "--shop", "other")["statuses"]][-2:] == [
        "X",
        "N",
    ]

    ok(cartkeeper("edit", "G", "--name", "Gift wrap", "--position", "65", "--no-contents-editable"))
    edited = json.loads(ok(cartkeeper("edit", "g", "--color", "#00ff00", "--json")))
    assert (edited["name"], edited["position"], edited["colour"]) == ("Gift wrap", 65, "#00ff00")
    assert edited["contents_editable"] is False and edited["inventory"] == "none"
    text = ok(cartkeeper("edit", "P", "--name", "Paid", "--final"))
    assert text.startswith("status P: Paid (#43a047, position 20, inventory decrease; paid, final")

    data = listed(cartkeeper)
    assert (data["version"], data["customised"], data["updated_by"]) == (4, True, "ann")
    letters = [s["letter"] for s in data["statuses"]]
    assert letters[:8] == list("OPCAHRGS") and len(letters) == 15
    assert datetime.fromisoformat(data["updated_at"]).tzinfo is not None
    head = ok(cartkeeper("list")).splitlines()[0]
    assert head.startswith(f"15 order statuses of shop {SHOP} (version 4, edited ")
    assert head.endswith(" UTC by ann)")

    moved = json.loads(ok(cartkeeper("edit", "G", "--letter", "w", "--json")))
    assert moved["letter"] == "W" and moved["name"] == "Gift wrap"
    text = ok(cartkeeper("delete", "w"))
    assert text == "status W (Gift wrap) deleted: orders that had it keep its name\n"
    deleted = json.loads(ok(cartkeeper("delete", "X", "--shop", "other", "--json")))
    assert deleted["letter"] == "X" and deleted["name"] == "Refunded"
    assert len(listed(cartkeeper)["statuses"]) == 14


def test_refusals_and_exit_codes(cartkeeper: Cartkeeper) -> None:
    ok(cartkeeper("add", "G", "Gift"))
    line = failed(cartkeeper("add", "g", "Again"), 1, "status_letter_taken")
    assert "G is already the status 'Gift'" in line
    line = failed(cartkeeper("delete", "P"), 1, "status_builtin")
    assert "P (Processed) is a default status: it cannot be deleted" in line
    failed(cartkeeper("edit", "P", "--letter", "Q"), 1, "status_builtin")
    failed(cartkeeper("edit", "C", "--no-paid"), 1, "status_builtin")
    failed(cartkeeper("edit", "N", "--paid"), 1, "status_hidden")
    failed(cartkeeper("delete", "Q"), 3, "unknown_status")
    failed(cartkeeper("edit", "q", "--name", "Nope"), 3, "unknown_status")
    failed(cartkeeper("edit", "G"), 1, "invalid_status")  # nothing to change
    failed(cartkeeper("add", "GG", "Two letters"), 1, "invalid_status")
    failed(cartkeeper("add", "7", "A digit"), 1, "invalid_status")
    failed(cartkeeper("add", "X", ""), 1, "invalid_status")
    failed(cartkeeper("add", "X", "x" * 65), 1, "invalid_status")
    failed(cartkeeper("add", "X", "Red", "--colour", "red"), 1, "invalid_status")
    failed(cartkeeper("add", "X", "Far", "--position", "-1"), 1, "invalid_status")
    failed(cartkeeper("add", "X", "Bad shop", "--shop", "no shop!"), 1, "invalid_shop_id")
    # a byte that is not UTF-8 in an argument is a lone surrogate (no database takes one)
    failed(cartkeeper("add", "X", "Caf\udce9"), 1, "invalid_status")
    failed(cartkeeper("edit", "G", "--name", "G\udce9"), 1, "invalid_status")
    usage = cartkeeper("add", "X", "Up", "--inventory", "up")
    assert usage.exit_code == 2 and "'up' is not one of" in usage.stderr
    usage = cartkeeper("add", "X")
    assert usage.exit_code == 2 and "NAME" in usage.stderr
    assert listed(cartkeeper)["version"] == 1, "none of these changed anything"


def test_the_27th_is_refused(cartkeeper: Cartkeeper) -> None:
    for letter in "EGJKLMQTUWX":
        ok(cartkeeper("add", letter, f"Custom {letter}"))
    assert ok(cartkeeper("add", "z", "The 26th")).startswith("status Z added: The 26th")
    assert len(listed(cartkeeper)["statuses"]) == 26
    line = failed(cartkeeper("add", "E", "The 27th"), 1, "status_limit_reached")
    assert "at most 26 order statuses" in line


def test_text_from_the_database_is_escaped(cartkeeper: Cartkeeper, db: ScratchDatabase) -> None:
    """A name the checks would refuse (written by hand, or by an older version) prints as
    one harmless line; so does a colour refused with its value quoted."""

    async def write(sessions: Any) -> None:
        await add_status(sessions, SHOP, "G", "Gift", now=NOW)
        async with write_session(sessions) as session:
            await session.execute(
                update(OrderStatusRecord)
                .where(OrderStatusRecord.letter == "G")
                .values(name="Evil\x1b[2J\nforged line\u202e")
            )

    on_db(db, write)
    text = ok(cartkeeper("list"))
    assert "\x1b" not in text and "\u202e" not in text
    line = next(line for line in text.splitlines() if line.startswith("G "))
    assert "Evil\\x1b[2J\\nforged line\\u202e" in line
    assert json.loads(ok(cartkeeper("list", "--json")))["statuses"][-1]["name"] == (
        "Evil\x1b[2J\nforged line\u202e"
    )
    line = failed(cartkeeper("add", "X", "Red", "--colour", "#\x1b]0;x\x07"), 1, "invalid_status")
    assert "\x1b" not in line and "\\x1b" in line
