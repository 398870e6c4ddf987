"""``cartkeeper campaigns`` and ``cartkeeper reminders preview`` end to end through click's
``CliRunner`` on a fresh read model (SQLite, and PostgreSQL with ``TEST_DATABASE_URL``),
and once through the console script: output, JSON, exit codes (1 refused, 2 usage, 3 no
such cart) and one ``error: <code>: <message>`` line per failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

import starter.cli.campaigns as cli_campaigns
from tests.cli_fixtures import Cartkeeper, in_process_cli
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_campaigns import a_cart, write_carts

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "cartkeeper"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
SHOP = "shop-1"


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        await write_carts(
            database,
            a_cart("c-1"),
            a_cart("c-guest", customer=None),
        )
        yield database


@pytest.fixture
def cartkeeper(db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    """The CLI in-process on ``db``."""
    return in_process_cli(db, tmp_path, monkeypatch, [cli_campaigns], shop=SHOP)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def failed(result: Result, exit_code: int, code: str) -> str:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {code}: "), result.stderr
    return lines[0]


def usage(result: Result, text: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert text in result.stderr, result.stderr


def shown(cartkeeper: Cartkeeper, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(cartkeeper("campaigns", "show", "--json", *args)))
    return data


def test_init_is_idempotent_and_show_prints_the_campaign(cartkeeper: Cartkeeper) -> None:
    failed(cartkeeper("campaigns", "show"), 1, "campaign_not_found")
    failed(cartkeeper("campaigns", "dump"), 1, "campaign_not_found")
    first = ok(cartkeeper("campaigns", "init", "--admin", "ann"))
    assert first.startswith(f"shop {SHOP}: default campaign written (version 1):")
    assert "saved-cart after 1h, coupon-24h after 24h, last-chance after 3d" in first
    again = ok(cartkeeper("campaigns", "init"))
    assert "has a campaign already (version 1): nothing changed" in again
    text = ok(cartkeeper("campaigns", "show"))
    assert f"campaign of shop {SHOP}: enabled, version 1" in text
    assert "quiet hours    21:00-08:00" in text and "3 reminders per customer in 7 days" in text
    for expected in ("saved-cart", "coupon-24h", "10%, 7d", "500 minor units, 7d", "3 reminders"):
        assert expected in text
    data = shown(cartkeeper)
    assert data["version"] == 1 and data["shop_id"] == SHOP
    assert [(item["id"], item["removed"]) for item in data["reminders"]] == [
        ("saved-cart", False),
        ("coupon-24h", False),
        ("last-chance", False),
    ]
    other = json.loads(ok(cartkeeper("campaigns", "init", "--shop", "shop-2", "--json")))
    assert other["shop_id"] == "shop-2" and other["version"] == 1


def test_set_changes_the_given_settings_only(cartkeeper: Cartkeeper) -> None:
    ok(cartkeeper("campaigns", "init"))
    line = ok(cartkeeper("campaigns", "set", "--disable", "--cap", "2/14d"))
    assert line.strip() == f"shop {SHOP}: settings saved (version 2)"
    ok(
        cartkeeper(
            "campaigns",
            "set",
            "--shop-name",
            "Tea & Mugs",
            "--sender",
            "hello@shop.example.com",
            "--restore-url",
            "https://shop.example/c/{cart_id}?k={coupon}",
            "--consent-required",
            "--restart-rule",
            "once",
            "--quiet-hours",
            "22:00-07:30",
            "--time-zone",
            "Europe/Berlin",
        )
    )
    data = shown(cartkeeper)
    assert {key: data[key] for key in list(data)[:13]} == {
        "shop_id": SHOP,
        "version": 3,
        "enabled": False,
        "shop_name": "Tea & Mugs",
        "sender": "hello@shop.example.com",
        "restore_url": "https://shop.example/c/{cart_id}?k={coupon}",
        "requires_consent": True,
        "restart_rule": "once",
        "quiet_start_minute": 22 * 60,
        "quiet_end_minute": 7 * 60 + 30,
        "default_time_zone": "Europe/Berlin",
        "cap_count": 2,
        "cap_period_days": 14,
    }
    ok(cartkeeper("campaigns", "set", "--enable", "--quiet-hours", "none"))
    data = shown(cartkeeper)
    assert data["enabled"] and data["quiet_start_minute"] == data["quiet_end_minute"]
    assert "quiet hours    none" in ok(cartkeeper("campaigns", "show"))
    # refusals (exit 1) and usage errors (exit 2) change nothing
    failed(cartkeeper("campaigns", "set", "--sender", "nope"), 1, "invalid_sender")
    failed(cartkeeper("campaigns", "set", "--time-zone", "Mars/Base"), 1, "invalid_time_zone")
    failed(cartkeeper("campaigns", "set", "--cap", "0/7d"), 1, "invalid_cap")
    failed(
        cartkeeper("campaigns", "set", "--restore-url", "https://x.example/{cart}"),
        1,
        "invalid_restore_url",
    )
    usage(cartkeeper("campaigns", "set"), "nothing to set")
    usage(cartkeeper("campaigns", "set", "--quiet-hours", "25:00-01:00"), "00:00 to 23:59")
    usage(cartkeeper("campaigns", "set", "--quiet-hours", "evenings"), "21:00-08:00 or none")
    usage(cartkeeper("campaigns", "set", "--cap", "three"), "3/7d")
    usage(cartkeeper("campaigns", "set", "--restart-rule", "always"), "'always' is not one of")
    assert shown(cartkeeper)["version"] == 4


def test_reminder_set_and_remove(cartkeeper: Cartkeeper) -> None:
    base = ["campaigns", "reminder-set", "nudge", "--name", "Nudge", "--subject", "Still there?"]
    line = ok(cartkeeper(*base, "--position", "0", "--delay", "90m", "--template", "reminder"))
    assert line.strip() == f"shop {SHOP}: reminder nudge saved (version 1)"
    data = json.loads(
        ok(
            cartkeeper(
                *base,
                "--position",
                "3",
                "--delay",
                "1h30m",
                "--template",
                "reminder",
                "--manual",
                "--coupon",
                "10%",
                "--coupon-days",
                "3",
                "--b-subject",
                "5.00 off",
                "--b-coupon",
                "500",
                "--json",
            )
        )
    )
    assert data["version"] == 2
    assert data["reminders"] == [
        {
            "id": "nudge",
            "position": 3,
            "name": "Nudge",
            "delay_seconds": 5400,
            "automatic": False,
            "subject": "Still there?",
            "template": "reminder",
            "coupon": {"kind": "percent", "amount": 10, "expiry_days": 3},
            "b": {
                "subject": "5.00 off",
                "template": "reminder",
                "coupon": {"kind": "fixed", "amount": 500, "expiry_days": 3},
            },
            "removed": False,
        }
    ]
    other = ["campaigns", "reminder-set", "other", "--name", "O", "--subject", "S"]
    other += ["--template", "reminder"]
    failed(cartkeeper(*other, "--position", "3", "--delay", "2d"), 1, "duplicate_position")
    failed(cartkeeper(*other, "--position", "4", "--delay", "30s"), 1, "invalid_delay")
    failed(cartkeeper(*other, "--position", "-1", "--delay", "1h"), 1, "invalid_position")
    failed(
        cartkeeper(*other, "--position", "4", "--delay", "1h", "--coupon", "101%"),
        1,
        "invalid_coupon",
    )
    failed(
        cartkeeper(
            *other, "--position", "4", "--delay", "1h", "--coupon", "5", "--coupon-days", "0"
        ),
        1,
        "invalid_coupon_expiry",
    )
    failed(
        cartkeeper(*other[:-1], "nope", "--position", "4", "--delay", "1h"), 1, "unknown_template"
    )
    failed(
        cartkeeper(*other, "--position", "4", "--delay", "1h", "--b-subject", "S"),
        1,
        "invalid_variant",
    )
    failed(
        cartkeeper("campaigns", "reminder-set", "bad id", "--name", "N", "--subject", "S",
                   "--template", "reminder", "--position", "4", "--delay", "1h"),
        1,
        "invalid_reminder_id",
    )  # fmt: skip
    usage(
        cartkeeper(*other, "--position", "4", "--delay", "1h", "--coupon", "5.00"),
        "minor units",
    )
    usage(
        cartkeeper(*other, "--position", "4", "--delay", "1h", "--b-coupon", "5.00"),
        "minor units",
    )
    usage(cartkeeper(*other, "--position", "4", "--delay", "soon"), "is not a duration")
    usage(cartkeeper(*other, "--position", "4", "--delay", "1h", "--coupon-days", "3"), "needs")
    usage(cartkeeper(*other, "--position", "4"), "Missing option '--delay'")
    assert shown(cartkeeper)["version"] == 2
    removed = ok(cartkeeper("campaigns", "reminder-remove", "nudge"))
    assert removed.strip() == f"shop {SHOP}: reminder nudge removed (version 3)"
    failed(cartkeeper("campaigns", "reminder-remove", "nudge"), 1, "reminder_not_found")
    data = shown(cartkeeper)
    assert [(item["id"], item["removed"]) for item in data["reminders"]] == [("nudge", True)]
    assert "removed" in ok(cartkeeper("campaigns", "show"))
    # the removed reminder's position is free
    ok(cartkeeper(*other, "--position", "3", "--delay", "2d"))


def test_b_coupon_none_is_not_the_option_left_out(cartkeeper: Cartkeeper) -> None:
    base = ["campaigns", "reminder-set", "r1", "--name", "R", "--subject", "S", "--json"]
    base += ["--template", "reminder", "--position", "0", "--delay", "1h", "--coupon", "10%"]
    given = json.loads(ok(cartkeeper(*base, "--b-subject", "B", "--b-coupon", "none")))
    assert given["reminders"][0]["b"]["coupon"] is None
    left_out = json.loads(ok(cartkeeper(*base, "--b-subject", "B")))
    assert left_out["reminders"][0]["b"]["coupon"] == {
        "kind": "percent",
        "amount": 10,
        "expiry_days": 7,
    }, "variant b keeps a's coupon"


def test_dump_and_load(cartkeeper: Cartkeeper, tmp_path: Path) -> None:
    ok(cartkeeper("campaigns", "init"))
    dumped = ok(cartkeeper("campaigns", "dump"))
    document = json.loads(dumped)
    assert document["shop_id"] == SHOP and "removed" not in document["reminders"][0]
    document["reminders"] = document["reminders"][1:]
    document["shop_name"] = "Loaded"
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps(document))
    line = ok(cartkeeper("campaigns", "load", str(path), "--admin", "ann"))
    assert line.strip() == (
        f"shop {SHOP}: campaign loaded (version 2), 2 reminders; removed: saved-cart"
    )
    after = shown(cartkeeper)
    assert after["shop_name"] == "Loaded"
    assert [(item["id"], item["removed"]) for item in after["reminders"]] == [
        ("saved-cart", True),
        ("coupon-24h", False),
        ("last-chance", False),
    ]
    # stdin, into another shop: --shop wins over the document's shop_id
    copied = ok(cartkeeper("campaigns", "load", "-", "--shop", "shop-2", input=dumped))
    assert copied.startswith("shop shop-2: campaign loaded (version 1), 3 reminders")
    # no --shop: the document's shop
    document["shop_id"] = "shop-3"
    path.write_text(json.dumps(document))
    assert ok(cartkeeper("campaigns", "load", str(path))).startswith("shop shop-3: ")
    assert json.loads(ok(cartkeeper("campaigns", "dump", "--shop", "shop-3"))) == {
        **document,
        "version": 1,
    }
    path.write_text("{not json")
    failed(cartkeeper("campaigns", "load", str(path)), 1, "invalid_document")
    path.write_text(json.dumps({**document, "reminders": "none"}))
    failed(cartkeeper("campaigns", "load", str(path)), 1, "invalid_document")
    usage(cartkeeper("campaigns", "load", str(tmp_path / "missing.json")), "missing.json")
    assert shown(cartkeeper)["version"] == 2


def test_reminders_preview(cartkeeper: Cartkeeper, tmp_path: Path) -> None:
    ok(cartkeeper("campaigns", "init"))
    html = tmp_path / "preview.html"
    text = ok(
        cartkeeper("reminders", "preview", "coupon-24h", "--cart", "c-1", "--html", str(html))
    )
    lines = text.splitlines()
    assert lines[:3] == [
        "From: Shop <shop@example.com>",
        "To: Ann <ann@example.com>",
        "Subject: 10 % off the cart you left",
    ]
    assert "variant a, template reminder, locale de" in lines[3]
    assert "coupon 10 % for 7 days (sample code XXXX-XXXX; none is issued)" in lines[3]
    assert "Blue mug" in text and "XXXX-XXXX" in text
    assert "http://127.0.0.1:8080/r/" in text
    assert lines[-1] == f"HTML: {html.resolve()}"
    assert "Blue mug" in html.read_text(encoding="utf-8")
    as_json = json.loads(
        ok(cartkeeper("reminders", "preview", "coupon-24h", "--cart", "c-1", "--variant", "b",
                      "--json"))
    )  # fmt: skip
    assert as_json["variant"] == "b" and as_json["subject"] == "A discount on the cart you left"
    assert as_json["coupon"] == {"kind": "fixed", "amount": 500, "expiry_days": 7}
    assert as_json["html_file"] is None and "html" not in as_json
    preview = ["reminders", "preview"]
    failed(cartkeeper(*preview, "saved-cart", "--cart", "c-guest"), 1, "no_address")
    failed(cartkeeper(*preview, "nope", "--cart", "c-1"), 1, "reminder_not_found")
    failed(cartkeeper(*preview, "saved-cart", "--cart", "c-1", "--variant", "b"), 1, "no_variant_b")
    failed(cartkeeper(*preview, "saved-cart", "--cart", "c-nope"), 3, "cart_not_found")
    failed(
        cartkeeper(*preview, "saved-cart", "--cart", "c-1", "--shop", "shop-2"),
        1,
        "campaign_not_found",
    )
    usage(cartkeeper(*preview, "saved-cart"), "Missing option '--cart'")


def test_help_texts_have_examples(cartkeeper: Cartkeeper) -> None:
    for args, expected in (
        (["campaigns"], "Examples:"),
        (["campaigns", "set"], "--quiet-hours 22:00-07:30"),
        (["campaigns", "reminder-set"], "MINOR units of the cart's currency: 500 is 5.00 EUR"),
        (["campaigns", "load"], "REMINDERS THAT THE DOCUMENT DOES NOT"),
        (["campaigns", "init"], "changes nothing"),
        (["reminders", "preview"], "--variant b --html b.html"),
    ):
        assert expected in " ".join(ok(cartkeeper(*args, "--help")).split()), args


def test_the_console_script(db: ScratchDatabase, tmp_path: Path) -> None:
    """The installed ``cartkeeper`` registers the commands and keeps their exit codes."""
    if db.schema is not None:
        pytest.skip("the console script reaches PostgreSQL's default schema only")
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "starter.cli"]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "CARTKEEPER_")) and key != "DATABASE_URL"
    }
    env.update(DATABASE_URL=db.url, CARTKEEPER_DATA_DIR=str(tmp_path / "data"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )

    created = run("campaigns", "init", "--shop", "cli")
    assert created.returncode == 0, created.stderr
    data = json.loads(run("campaigns", "show", "--shop", "cli", "--json").stdout)
    assert len(data["reminders"]) == 3
    refused = run("campaigns", "reminder-remove", "nope", "--shop", "cli")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: reminder_not_found: ") and not refused.stdout
