"""The ``cartkeeper`` console script end to end: a real subprocess against the session's
dev server, served by the session's worker (so the subprocess must run asynchronously:
the worker lives on this event loop)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
    DescribeTaskQueueRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.cart_activities import CartActivities
from activities.read_model import get_cart_record
from activities.settings import Settings
from starter.client import CartkeeperClient, CartkeeperError
from tests.conftest import FAST, new_id
from workflows import machine
from workflows.contract import (
    Cart,
    CartLine,
    CartState,
    CartUpdated,
    CustomerIdentified,
    CustomerInfo,
    JournalKind,
    LockReason,
    ProjectCartInput,
    workflow_id,
)
from workflows.validation import legacy_text

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "cartkeeper"
CLI = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "starter.cli"]

LINES = [CartLine("tea-earl-grey", "Earl Grey tea", 2, 650), CartLine("mug", "Mug", 1, 800)]
TOTAL = 2100  # 21.00 EUR


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float
    #: stdout as written, before decoding
    raw: bytes = b""

    def json(self) -> Any:
        return json.loads(self.out)


Cartkeeper = Callable[..., Any]


@pytest.fixture
def cli_env(
    dev_env: WorkflowEnvironment, dev_worker: Any, settings: Settings, session_factory: Any
) -> dict[str, str]:
    """The environment of the subprocess: our dev server, read model and task queue."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "CARTKEEPER_")) and key != "DATABASE_URL"
    }
    env.update(
        TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
        TEMPORAL_NAMESPACE=dev_env.client.namespace,
        DATABASE_URL=settings.resolved_database_url(),
        CARTKEEPER_TASK_QUEUE=settings.task_queue,
        CARTKEEPER_DATA_DIR=str(settings.data_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


async def run_cli(env: dict[str, str], *args: str, within: float = 60) -> Run:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        env=env,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(
            f"cartkeeper {' '.join(args)} did not finish within {within}s"
        ) from None
    assert process.returncode is not None
    seconds = time.monotonic() - started
    return Run(process.returncode, out.decode(), err.decode(), seconds, raw=out)


@pytest.fixture
def cartkeeper(cli_env: dict[str, str]) -> Cartkeeper:
    async def run(*args: str, within: float = 60, env: dict[str, str] | None = None) -> Run:
        return await run_cli({**cli_env, **(env or {})}, *args, within=within)

    return run


async def eventually(check: Callable[[], Any], within: float = 15.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within}s (last: {value!r})")
        await asyncio.sleep(0.1)


async def projected(session_factory: Any, shop: str, cart_id: str, state: CartState) -> Cart:
    """Wait until the read model shows the cart in ``state``."""

    async def check() -> Cart | None:
        record = await get_cart_record(session_factory, shop, cart_id)
        return record if record is not None and record.state is state else None

    result: Cart = await eventually(check)
    return result


async def active_cart(carts: CartkeeperClient, session_factory: Any, shop: str) -> str:
    cart_id = new_id()
    await carts.update_cart(shop, cart_id, LINES, "EUR")
    await projected(session_factory, shop, cart_id, CartState.ACTIVE)
    return cart_id


async def locked_cart(
    carts: CartkeeperClient, session_factory: Any, shop: str, *, amount: int = TOTAL
) -> str:
    """A cart locked at once: its gateway reported the payment (of ``amount``) pending."""
    cart_id = new_id()
    await carts.update_cart(shop, cart_id, LINES, "EUR")
    await carts.identify_customer(
        shop, cart_id, CustomerInfo(email="ann.example@example.com", name="Ann Example")
    )
    await carts.start_checkout(shop, cart_id)
    attempt = f"pay-{cart_id}"
    await carts.start_payment(
        shop, cart_id, attempt_id=attempt, method="online", gateway="stripe", amount=amount
    )
    await carts.report_payment_result(
        shop,
        cart_id,
        attempt_id=attempt,
        status="pending",
        amount=amount,
        currency="EUR",
        card_last4="4242",
    )
    await projected(session_factory, shop, cart_id, CartState.LOCKED)
    return cart_id


def one_error_line(run: Run, code: str) -> str:
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith(f"error: {code}: "), run.err
    return lines[0]


# --------------------------------------------------------------------------- help


HELP: dict[tuple[str, ...], tuple[str, ...]] = {
    (): (
        "--address",
        "--namespace",
        "dev",
        "worker",
        "simulate",
        "carts",
        "mail",
        "campaigns",
        "reminders",
        "coupons",
        "statuses",
        "orders",
        "order-numbers",
        "shipping-methods",
        "stock",
        "stats",
        "digest",
        "journal",
        "web",
    ),
    ("dev",): ("--simulate", "--no-simulate", "--port", "--ui-port", "--speed"),
    ("worker",): ("TEMPORAL_*", "CARTKEEPER_TASK_QUEUE", "same task queue"),
    ("simulate",): ("--carts", "--shop", "--seed", "--speed", "--wait"),
    ("carts",): ("list", "show", "confirm", "unlock", "delete", "resolve"),
    ("carts", "list"): ("--state", "--shop", "--needs-admin", "--limit", "--json", "locked"),
    ("carts", "show"): ("CART", "--shop", "--json", "--journal"),
    ("carts", "confirm"): ("CART", "--shop", "--admin", "--note", "--status", "P", "O"),
    ("carts", "unlock"): ("CART", "--shop", "--admin", "--note"),
    ("carts", "delete"): ("CART", "--shop", "--admin", "--note"),
    ("carts", "resolve"): ("CART", "--shop", "--admin", "--note", "--item", "--json", "#N"),
    ("mail",): ("list", "show", "open", "data/mail"),
    ("mail", "list"): ("--json",),
    ("mail", "show"): ("ID", "--html"),
    ("mail", "open"): ("ID", "--output", "HTML"),
    ("campaigns",): ("show", "set", "reminder-set", "reminder-remove", "load", "dump", "init"),
    ("campaigns", "show"): ("--shop", "--json"),
    ("campaigns", "set"): ("--shop", "--quiet-hours", "--cap", "--restart-rule"),
    ("campaigns", "reminder-set"): ("ID", "--delay", "--coupon", "--subject", "--template"),
    ("campaigns", "reminder-remove"): ("ID", "--shop"),
    ("campaigns", "load"): ("FILE", "removed"),
    ("campaigns", "dump"): ("--shop",),
    ("campaigns", "init"): ("--shop",),
    ("reminders",): ("preview", "send"),
    ("reminders", "preview"): ("REMINDER", "--cart", "--variant", "--html"),
    ("reminders", "send"): (
        "REMINDER",
        "--cart",
        "--state",
        "--since",
        "--shop",
        "--admin",
        "--dry-run",
        "--json",
    ),
    ("coupons",): ("check", "redeem"),
    ("coupons", "check"): ("CODE", "--cart", "--shop", "--json", "coupon_expired"),
    ("coupons", "redeem"): ("CODE", "--cart", "--shop", "exactly once", "coupon_used"),
    ("statuses",): ("list", "add", "edit", "delete", "26", "status_limit_reached", "N Incomplete"),
    ("statuses", "list"): ("--shop", "--json", "FLAGS", "contents-editable"),
    ("statuses", "add"): (
        "LETTER",
        "NAME",
        "--colour",
        "--paid",
        "--no-paid",
        "--final",
        "--notify-customer",
        "--notify-department",
        "--inventory",
        "--contents-editable",
        "--position",
        "--shop",
        "--json",
        "status_letter_taken",
    ),
    ("statuses", "edit"): (
        "LETTER",
        "--name",
        "--letter",
        "--colour",
        "--no-final",
        "--inventory",
        "status_builtin",
        "status_hidden",
    ),
    ("statuses", "delete"): ("LETTER", "--shop", "status_builtin", "unknown_status"),
    ("shipping-methods",): ("list", "add", "edit", "delete", "records", "shipping_method_exists"),
    ("shipping-methods", "list"): ("--enabled-only", "--shop", "--json"),
    ("shipping-methods", "add"): (
        "ID",
        "--name",
        "--cost",
        "MINOR",
        "--currency",
        "--position",
        "--disabled",
        "--shop",
        "--json",
    ),
    ("shipping-methods", "edit"): (
        "ID",
        "--name",
        "--cost",
        "--currency",
        "--position",
        "--enable",
        "--disable",
        "--shop",
        "--json",
    ),
    ("shipping-methods", "delete"): ("ID", "--shop", "--json", "keep"),
    ("orders",): (
        "list",
        "show",
        "counts",
        "not finished",
        "Incomplete",
        "set-status",
        "delivery",
        "lines",
        "pay",
        "note",
    ),
    ("orders", "list"): (
        "--status",
        "--since",
        "--until",
        "--email",
        "--number",
        "--oldest",
        "--limit",
        "--after",
        "--shop",
        "--json",
        "not_finished",
        "invalid_cursor",
    ),
    ("orders", "show"): ("N", "--shop", "--json", "order_not_found", "status history"),
    ("orders", "counts"): ("--shop", "--json", "not_finished"),
    ("orders", "set-status"): (
        "NUMBER LETTER",
        "--cart",
        "--admin",
        "--note",
        "--shop",
        "--json",
        "unknown_status",
        "status_hidden",
        "payment_required",
    ),
    ("orders", "delivery"): (
        "NUMBER",
        "--method",
        "--cost",
        "MINOR",
        "--tracking-code",
        "--recipient-name",
        "--email",
        "--phone",
        "--country",
        "--city",
        "--postal-code",
        "--address",
        "--comment",
        "--clear",
        "contents_not_editable",
        "shipping_method_not_found",
    ),
    ("orders", "lines"): (
        "NUMBER",
        "--line",
        "SKU:QTY:UNIT_PRICE[:NAME]",
        "--json-file",
        "minor units",
        "contents_not_editable",
    ),
    ("orders", "pay"): (
        "NUMBER",
        "--amount",
        "MINOR",
        "--currency",
        "--refund",
        "--reference",
        "currency_mismatch",
        "refund_exceeds_paid",
    ),
    ("orders", "note"): ("NUMBER", "TEXT", "--admin", "--shop", "--json"),
    ("journal",): (
        "--customer",
        "--cart",
        "--limit",
        "--after",
        "--shop",
        "--json",
        "reminder_sent",
        "recovery_clicked",
        "dropped",
        "invalid_cursor",
        "journal_not_found",
    ),
    ("order-numbers",): ("show", "set", "never twice", "prefix"),
    ("order-numbers", "show"): ("--shop", "--json"),
    ("order-numbers", "set"): (
        "--prefix",
        "--start",
        "--shop",
        "--json",
        "order_number_start_too_low",
    ),
    ("stock",): ("set", "show", "list", "not tracked", "Backordered", "invalid_stock_level"),
    ("stock", "set"): ("SKU", "QTY", "--shop", "--json", "invalid_stock_level"),
    ("stock", "show"): ("SKU", "--shop", "--json", "not tracked"),
    ("stock", "list"): ("--after", "--limit", "--shop", "--json"),
    ("web",): ("--host", "--port", "--log-level", "/r/TOKEN", "/readyz", "/api/v1", "/admin"),
    ("api",): ("--host", "--port", "/api/v1/carts", "/metrics", "/docs"),
    ("webhooks",): ("secret", "CARTKEEPER_WEBHOOK_SECRETS", "401"),
    ("webhooks", "secret"): ("--source", "whsec_"),
    ("keys",): ("create", "list", "revoke", "Bearer"),
    ("keys", "create"): ("--shop", "--name", "--admin", "--json", "shown this once"),
    ("keys", "list"): ("--shop", "--json", "never their secrets"),
    ("keys", "revoke"): ("PREFIX", "--json"),
    ("users",): ("add", "passwd", "remove", "list", "argon2"),
    ("users", "add"): ("NAME", "--role", "--password-stdin", "--json", "viewer"),
    ("users", "passwd"): ("NAME", "--password-stdin", "sessions end"),
    ("users", "remove"): ("NAME", "exits 3"),
    ("users", "list"): ("--json", "never their passwords"),
    ("stats",): ("recovery",),
    ("stats", "recovery"): ("--from", "--to", "--shop", "--json", "recovery link"),
    ("digest",): ("send", "schedule", "CARTKEEPER_SHOP_ADMINS"),
    ("digest", "send"): ("--shop", "--day", "--dry-run"),
    ("digest", "schedule"): ("--shop",),
}


async def test_help_of_every_command(cli_env: dict[str, str]) -> None:
    runs = await asyncio.gather(*(run_cli(cli_env, *path, "--help") for path in HELP))
    for (path, expected), run in zip(HELP.items(), runs, strict=True):
        assert run.code == 0, (path, run.err)
        assert run.out.startswith("Usage: cartkeeper"), run.out
        text = " ".join(run.out.split())
        for word in expected:
            assert word in text, (path, word)


def test_every_command_is_covered_by_the_help_test() -> None:
    import click

    from starter.cli import cli

    def paths(command: click.Command, prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        found = {prefix}
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                found |= paths(sub, (*prefix, name))
        return found

    assert paths(cli, ()) == set(HELP)


async def test_version(cartkeeper: Cartkeeper) -> None:
    run = await cartkeeper("--version")
    assert run.code == 0 and "cartkeeper" in run.out


# --------------------------------------------------------------------------- carts list


async def test_list_json_and_state_filter(
    cartkeeper: Cartkeeper, carts: CartkeeperClient, session_factory: Any
) -> None:
    shop = new_id("shop")
    active = await active_cart(carts, session_factory, shop)
    locked = await locked_cart(carts, session_factory, shop)

    listing = ("carts", "list", "--shop", shop)
    everything, only_locked, needs_admin, text, limited, empty = await asyncio.gather(
        cartkeeper(*listing, "--json"),
        cartkeeper(*listing, "--state", "locked", "--json"),
        cartkeeper(*listing, "--needs-admin", "--json"),
        cartkeeper(*listing, "--state", "locked"),
        cartkeeper(*listing, "--limit", "1", "--json"),
        cartkeeper("carts", "list", "--shop", new_id("shop")),
    )
    assert everything.code == 0, everything.err
    rows = {row["cart_id"]: row for row in everything.json()}
    assert set(rows) == {active, locked}
    assert rows[active]["state"] == "active" and rows[locked]["state"] == "locked"
    assert rows[locked]["total"] == TOTAL and rows[locked]["currency"] == "EUR"
    assert rows[locked]["needs_admin"] is True
    assert rows[locked]["lock_reason"] == LockReason.PAYMENT_PENDING
    datetime.fromisoformat(rows[locked]["updated_at"])

    assert [row["cart_id"] for row in only_locked.json()] == [locked]
    assert [row["cart_id"] for row in needs_admin.json()] == [locked]

    assert text.code == 0, text.err
    assert locked in text.out and active not in text.out
    assert "21.00 EUR" in text.out and "payment_pending" in text.out
    assert "1 cart, shop" in text.out

    assert len(limited.json()) == 1
    assert empty.code == 0 and "no carts" in empty.out


async def test_list_bad_state_is_a_usage_error(cartkeeper: Cartkeeper) -> None:
    run = await cartkeeper("carts", "list", "--state", "lost")
    assert run.code == 2
    assert "'lost' is not one of" in run.err and "locked" in run.err


async def test_list_without_a_read_model(cartkeeper: Cartkeeper, tmp_path: Path) -> None:
    missing = f"sqlite+aiosqlite:///{tmp_path / 'nothing' / 'cartkeeper.db'}"
    run = await cartkeeper("carts", "list", env={"DATABASE_URL": missing})
    assert run.code == 4
    one_error_line(run, "database_unavailable")
    assert not (tmp_path / "nothing" / "cartkeeper.db").exists()


async def test_list_with_an_unreachable_database(cartkeeper: Cartkeeper) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/cartkeeper"
    run = await cartkeeper("carts", "list", env={"DATABASE_URL": url}, within=30)
    assert run.code == 4, run.err
    one_error_line(run, "database_unavailable")


# --------------------------------------------------------------------------- carts show


async def test_show_human_and_json(
    cartkeeper: Cartkeeper, carts: CartkeeperClient, session_factory: Any
) -> None:
    shop = new_id("shop")
    cart_id = await locked_cart(carts, session_factory, shop)

    text, as_json = await asyncio.gather(
        cartkeeper("carts", "show", cart_id, "--shop", shop),
        cartkeeper("carts", "show", cart_id, "--shop", shop, "--json"),
    )
    assert text.code == 0, text.err
    for expected in (
        cart_id,
        "locked (payment_pending)",
        "needs an admin",
        "21.00 EUR",
        "Earl Grey tea",
        "6.50 EUR",
        "13.00 EUR",
        "Ann Example <ann.example@example.com>",
        f"pay-{cart_id}",
        "pending",
        "**** 4242",
        "Order     (none)",
        "expire",
        "cart_locked",
    ):
        assert expected in text.out, expected

    assert as_json.code == 0, as_json.err
    data = as_json.json()
    assert data["cart_id"] == cart_id and data["shop_id"] == shop
    assert data["state"] == "locked" and data["lock_reason"] == "payment_pending"
    assert data["total"] == TOTAL and data["item_count"] == 3
    assert data["needs_admin"] is True and data["source"] == "workflow"
    assert data["lines"][0] == {
        "sku": "tea-earl-grey",
        "name": "Earl Grey tea",
        "quantity": 2,
        "unit_price": 650,
    }
    (payment,) = data["payments"]
    assert payment["status"] == "pending" and payment["card_last4"] == "4242"
    assert payment["amount"] == TOTAL
    assert data["customer"]["email"] == "ann.example@example.com"
    assert datetime.fromisoformat(data["locked_at"]).tzinfo is not None
    assert [entry["kind"] for entry in data["journal"]][-1] == "cart_locked"


async def test_show_falls_back_to_the_read_model_when_the_workflow_is_gone(
    cartkeeper: Cartkeeper,
    carts: CartkeeperClient,
    session_factory: Any,
    dev_env: WorkflowEnvironment,
) -> None:
    shop = new_id("shop")
    cart_id = await active_cart(carts, session_factory, shop)
    client = dev_env.client
    await client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id(shop, cart_id)),
        )
    )

    async def gone() -> bool:
        try:
            await client.get_workflow_handle(workflow_id(shop, cart_id)).describe()
        except RPCError as error:
            return error.status == RPCStatusCode.NOT_FOUND
        return False

    await eventually(gone)
    text, as_json = await asyncio.gather(
        cartkeeper("carts", "show", cart_id, "--shop", shop),
        cartkeeper("carts", "show", cart_id, "--shop", shop, "--json"),
    )
    assert text.code == 0, text.err
    assert text.out.startswith("note: its workflow is gone")
    assert "read model" in text.out and "21.00 EUR" in text.out

    as_json = await cartkeeper("carts", "show", cart_id, "--shop", shop, "--json")
    assert as_json.code == 0 and as_json.json()["source"] == "read_model"
    assert "note:" in as_json.err


#: an item name that would colour the terminal, set its title, overwrite its line, forge
#: an output line and reverse the text after it, were it printed as it is
EVIL_NAME = "Tea\x1b[31m red\x1b]0;pwned\x07\rerror: forged\nline\u202eright"
#: an e-mail address the workflow's own check let through before ``invalid_text`` (a
#: storefront that sent raw JSON, not the Python client, whose validator would refuse it)
EVIL_EMAIL = "ann\x1b[2J\u202e@example.com"
RAW_CONTROLS = (b"\x1b", b"\x07", b"\r", "\u202e".encode())


async def test_control_characters_are_shown_escaped(
    cartkeeper: Cartkeeper, carts: CartkeeperClient, session_factory: Any
) -> None:
    """Text from outside is printed with its control characters escaped. `carts list`
    shows no item names: the customer's e-mail is its outside text. (click itself drops
    CSI sequences such as ``\\x1b[31m`` when stdout is not a terminal, so the name also
    carries an OSC sequence and a BEL, which it would let through.) The workflow refuses
    such text now (``invalid_text``); a cart that took it before keeps it: here its read
    model row, as the replay of its history under ``legacy_text`` writes it."""
    shop, cart_id = new_id("shop"), new_id()
    with pytest.raises(CartkeeperError, match="invalid_text"):
        await carts.update_cart(shop, cart_id, [CartLine("tea", EVIL_NAME, 1, 650)], "EUR")
    cart, now = Cart(shop_id=shop, cart_id=cart_id), datetime.now(UTC)
    with legacy_text():
        machine.apply(cart, CartUpdated([CartLine("tea", EVIL_NAME, 1, 650)], "EUR"), now)
        evil = CustomerInfo(email=EVIL_EMAIL, name=EVIL_NAME)
        machine.apply(cart, CustomerIdentified(evil), now)
    await CartActivities(session_factory).project_cart(ProjectCartInput(cart))
    show, listing, as_json = await asyncio.gather(
        cartkeeper("carts", "show", cart_id, "--shop", shop),
        cartkeeper("carts", "list", "--shop", shop),
        cartkeeper("carts", "show", cart_id, "--shop", shop, "--json"),
    )
    escaped_name = r"Tea\x1b[31m red\x1b]0;pwned\x07\rerror: forged\nline\u202eright"
    escaped_email = r"ann\x1b[2J\u202e@example.com"
    for run in (show, listing):
        assert run.code == 0, run.err
        for raw in RAW_CONTROLS:
            assert raw not in run.raw, (raw, run.raw)
        lines = run.out.splitlines()
        assert not any(line.startswith(("error:", "line")) for line in lines), run.out
        assert escaped_email in run.out
    assert escaped_name in show.out  # in the lines and after the customer's name
    assert f"{escaped_name} <{escaped_email}>" in show.out
    assert cart_id in listing.out and "1 cart, shop" in listing.out
    # JSON keeps the exact text (its own escaping makes it safe to print)
    assert as_json.json()["lines"][0]["name"] == EVIL_NAME
    assert as_json.json()["customer"]["email"] == EVIL_EMAIL
    assert b"\x1b" not in as_json.raw


async def test_unknown_cart_exits_3(cartkeeper: Cartkeeper) -> None:
    shop, cart_id = new_id("shop"), new_id()
    commands = ("show", "confirm", "unlock", "delete", "resolve")
    runs = await asyncio.gather(
        *(cartkeeper("carts", command, cart_id, "--shop", shop) for command in commands)
    )
    for command, run in zip(commands, runs, strict=True):
        assert run.code == 3, (command, run.err)
        one_error_line(run, "cart_not_found")
        assert run.out == ""


async def test_invalid_cart_id_is_refused(cartkeeper: Cartkeeper) -> None:
    commands = ("show", "confirm", "resolve")
    runs = await asyncio.gather(
        *(cartkeeper("carts", command, "no spaces\x1b[2J allowed") for command in commands)
    )
    for command, run in zip(commands, runs, strict=True):
        assert run.code == 1, (command, run.err)
        assert "\\x1b[2J" in one_error_line(run, "invalid_id")
        assert run.out == ""


# --------------------------------------------------------------------------- admin actions


async def test_confirm_a_locked_cart_prints_its_order_number(
    cartkeeper: Cartkeeper, carts: CartkeeperClient, session_factory: Any
) -> None:
    shop = new_id("shop")
    cart_id = await locked_cart(carts, session_factory, shop)
    run = await cartkeeper(
        "carts", "confirm", cart_id, "--shop", shop, "--admin", "ann", "--note", "paid by phone"
    )
    assert run.code == 0, run.err
    match = re.fullmatch(
        rf"cart {re.escape(cart_id)} confirmed: order (\d+) \(P\), paid\n", run.out
    )
    assert match, run.out
    cart = await carts.get_cart(shop, cart_id)
    assert cart.state is CartState.ORDERED and cart.order is not None
    assert cart.order.number == int(match.group(1)) and cart.order.paid
    assert cart.order.amount_paid == TOTAL
    (payment,) = cart.payments
    assert payment.confirmed_by == "ann" and payment.succeeded_amount == TOTAL
    assert any(
        entry.actor == "admin:ann" and entry.detail == "paid by phone" for entry in cart.journal
    )

    again = await cartkeeper("carts", "confirm", cart_id, "--shop", shop)
    assert again.code == 1
    assert again.out == ""
    one_error_line(again, "already_ordered")


async def test_confirm_as_open_order(
    cartkeeper: Cartkeeper, carts: CartkeeperClient, session_factory: Any
) -> None:
    shop = new_id("shop")
    text_cart, json_cart = [await locked_cart(carts, session_factory, shop) for _ in range(2)]
    text, as_json = await asyncio.gather(
        cartkeeper("carts", "confirm", text_cart, "--shop", shop, "--status", "O"),
        cartkeeper("carts", "confirm", json_cart, "--shop", shop, "--status", "O", "--json"),
    )
    assert text.code == 0, text.err
    assert re.fullmatch(
        rf"cart {re.escape(text_cart)} confirmed: order \d+ \(O\),"
        r" not fully paid: 0\.00 EUR of 21\.00 EUR\n",
        text.out,
    ), text.out

    assert as_json.code == 0, as_json.err
    view = as_json.json()  # the cart's view, as every update answers
    assert view["cart_id"] == json_cart and view["state"] == "ordered"
    assert view["order_status"] == "O" and view["order_paid"] is False
    assert view["amount_paid"] == 0 and view["total"] == TOTAL
    assert isinstance(view["order_number"], int)
    assert view["needs_admin"] is False and view["attention"] == []
    cart = await carts.get_cart(shop, json_cart)
    assert cart.order is not None and cart.order.number == view["order_number"]
    assert not cart.order.paid and cart.payments[0].confirmed_by is None


async def test_attention_items_are_shown_and_resolved(
    cartkeeper: Cartkeeper, carts: CartkeeperClient, session_factory: Any
) -> None:
    """A payment short of the total, confirmed as paid: the order is open, an
    ``amount_mismatch`` needs an admin; `carts show` lists it by number, `carts resolve`
    closes it with a note, and `carts show` then says who resolved it, when and why."""
    shop = new_id("shop")
    cart_id = await locked_cart(carts, session_factory, shop, amount=TOTAL - 100)
    confirmed = await cartkeeper("carts", "confirm", cart_id, "--shop", shop, "--admin", "ann")
    assert confirmed.code == 0, confirmed.err
    assert re.fullmatch(
        rf"cart {re.escape(cart_id)} confirmed: order \d+ \(O\), not fully paid:"
        r" 20\.00 EUR of 21\.00 EUR; needs an admin: amount_mismatch\n",
        confirmed.out,
    ), confirmed.out

    shown = await cartkeeper("carts", "show", cart_id, "--shop", shop)
    assert shown.code == 0, shown.err
    assert "** needs an admin **" in shown.out
    assert "not fully paid: 20.00 EUR paid, 1.00 EUR due" in shown.out
    assert "Attention (1 open; resolve with `cartkeeper carts resolve`)" in shown.out
    item = re.search(
        rf"^  #(\d+)  OPEN  amount_mismatch  [-0-9: ]+  attempt pay-{re.escape(cart_id)}"
        r"  20\.00 EUR  expected 21\.00 EUR  ",
        shown.out,
        re.MULTILINE,
    )
    assert item, shown.out
    number = item.group(1)

    unknown = await cartkeeper("carts", "resolve", cart_id, "--shop", shop, "--item", "99")
    assert unknown.code == 1 and unknown.out == ""
    assert "#99" in one_error_line(unknown, "nothing_to_resolve")

    note = "refunded 1.00 in the gateway"
    resolved = await cartkeeper(
        "carts", "resolve", cart_id, "--shop", shop, "--item", number, "--note", note,
        "--admin", "bob",
    )  # fmt: skip
    assert resolved.code == 0, resolved.err
    assert resolved.out == f"cart {cart_id}: attention resolved\n"

    shown, as_json = await asyncio.gather(
        cartkeeper("carts", "show", cart_id, "--shop", shop),
        cartkeeper("carts", "show", cart_id, "--shop", shop, "--json"),
    )
    assert shown.code == 0, shown.err
    assert "needs an admin" not in shown.out
    assert "Attention (0 open; " in shown.out
    assert re.search(rf"^  #{number}  resolved  amount_mismatch  ", shown.out, re.MULTILINE)
    assert re.search(
        rf"^      resolved by bob at [-0-9: ]+: {re.escape(note)}$", shown.out, re.MULTILINE
    ), shown.out
    (attention,) = as_json.json()["attention"]
    assert attention["id"] == int(number) and attention["resolved_by"] == "bob"
    assert attention["resolution"] == note and attention["resolved_at"] is not None
    kinds = [entry["kind"] for entry in as_json.json()["journal"]]
    assert kinds[-1] == JournalKind.ATTENTION_RESOLVED

    # nothing is open any more: resolving (all, or that item) again is refused
    again, item_again = await asyncio.gather(
        cartkeeper("carts", "resolve", cart_id, "--shop", shop),
        cartkeeper("carts", "resolve", cart_id, "--shop", shop, "--item", number),
    )
    for run in (again, item_again):
        assert run.code == 1 and run.out == "", run.err
        one_error_line(run, "nothing_to_resolve")


async def test_resolve_a_cart_without_attention_is_refused(
    cartkeeper: Cartkeeper, carts: CartkeeperClient, session_factory: Any
) -> None:
    shop = new_id("shop")
    cart_id = await active_cart(carts, session_factory, shop)
    run = await cartkeeper("carts", "resolve", cart_id, "--shop", shop, "--note", "checked")
    assert run.code == 1 and run.out == ""
    assert "no open attention item" in one_error_line(run, "nothing_to_resolve")
    bad_item = await cartkeeper("carts", "resolve", cart_id, "--shop", shop, "--item", "0")
    assert bad_item.code == 2


async def test_confirm_of_an_active_cart_is_refused(
    cartkeeper: Cartkeeper, carts: CartkeeperClient, session_factory: Any
) -> None:
    shop = new_id("shop")
    cart_id = await active_cart(carts, session_factory, shop)
    run = await cartkeeper("carts", "confirm", cart_id, "--shop", shop)
    assert run.code == 1
    assert run.out == ""
    assert "active" in one_error_line(run, "not_locked")

    bad_status = await cartkeeper("carts", "confirm", cart_id, "--shop", shop, "--status", "X")
    assert bad_status.code == 2


async def test_unlock_then_delete(
    cartkeeper: Cartkeeper, carts: CartkeeperClient, session_factory: Any
) -> None:
    shop = new_id("shop")
    cart_id = await locked_cart(carts, session_factory, shop)
    unlocked = await cartkeeper("carts", "unlock", cart_id, "--shop", shop, "--note", "called")
    assert unlocked.code == 0, unlocked.err
    assert unlocked.out == f"cart {cart_id} unlocked: active\n"

    deleted = await cartkeeper("carts", "delete", cart_id, "--shop", shop, "--admin", "bob")
    assert deleted.code == 0, deleted.err
    assert deleted.out == f"cart {cart_id} deleted\n"
    assert (await carts.get_cart(shop, cart_id)).state is CartState.DELETED

    locked_again = await cartkeeper("carts", "unlock", cart_id, "--shop", shop)
    assert locked_again.code == 1
    one_error_line(locked_again, "cart_deleted")


# --------------------------------------------------------------------------- unavailable


async def test_unreachable_temporal_exits_4_quickly(cartkeeper: Cartkeeper) -> None:
    commands = (
        ("carts", "show", "c-1"),
        ("carts", "confirm", "c-1"),
        ("carts", "resolve", "c-1"),
        ("simulate",),
    )
    for args in commands:
        run = await cartkeeper("--address", "127.0.0.1:1", *args, within=30)
        assert run.code == 4, (args, run.err)
        assert "127.0.0.1:1" in one_error_line(run, "temporal_unavailable")
        assert run.seconds < 20, run.seconds  # no retrying for minutes

    by_env = await cartkeeper("carts", "show", "c-1", env={"TEMPORAL_ADDRESS": "127.0.0.1:1"})
    assert by_env.code == 4
    one_error_line(by_env, "temporal_unavailable")


@asynccontextmanager
async def worker_on(
    task_queue: str, client: Client, session_factory: Any, settings: Settings
) -> AsyncIterator[None]:
    """A worker of our own on ``task_queue`` (the session's serves another queue)."""
    from worker import build_worker

    queue_settings = settings.model_copy(update={"task_queue": task_queue})
    activities = CartActivities(session_factory, client)
    async with build_worker(client, activities, queue_settings):
        yield


async def pollers(client: Client, task_queue: str) -> int:
    """How many workers Temporal lists as polling ``task_queue`` (as `ensure_worker` asks)."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(response.pollers)


async def test_an_update_no_worker_applies_exits_4_and_applies_later(
    cartkeeper: Cartkeeper, dev_env: WorkflowEnvironment, session_factory: Any, settings: Settings
) -> None:
    """The worker polled moments ago, so the CLI's `no_worker` check passes, but it is
    gone: the confirmation is sent, no worker applies it within the wait, and the CLI says
    so (exit 4) without claiming it failed. When a worker comes back, it applies it."""
    client = dev_env.client
    queue, shop = new_id("paused"), new_id("shop")
    carts = CartkeeperClient(client, task_queue=queue, policy_for=lambda _s: FAST)
    async with worker_on(queue, client, session_factory, settings):
        cart_id = await locked_cart(carts, session_factory, shop)
    assert await pollers(client, queue) > 0  # Temporal lists it for a while

    paused = {"CARTKEEPER_TASK_QUEUE": queue, "CARTKEEPER_WORKER_WAIT": "2"}
    run = await cartkeeper(
        "carts", "confirm", cart_id, "--shop", shop, "--admin", "ann", env=paused, within=40
    )
    assert run.code == 4, run.out + run.err
    assert run.out == ""
    line = one_error_line(run, "update_pending")
    assert f"the confirmation of cart {cart_id} was sent but no worker applied it" in line
    assert f"task queue {queue!r}" in line
    assert (
        "queued and may still be applied: check with"
        f" `cartkeeper carts show {cart_id} --shop {shop}` before sending it again"
    ) in line
    assert run.seconds < 20, run.seconds  # the wait is 2 s, not the default 20 s
    record = await get_cart_record(session_factory, shop, cart_id)
    assert record is not None and record.state is CartState.LOCKED  # not applied (yet)

    async def confirmed() -> Cart | None:
        cart = await carts.get_cart(shop, cart_id)
        done = cart.order is not None and cart.order.number is not None
        return cart if done else None

    async with worker_on(queue, client, session_factory, settings):
        cart = await eventually(confirmed, within=45)
        await projected(session_factory, shop, cart_id, CartState.ORDERED)
    assert cart.state is CartState.ORDERED and cart.order is not None and cart.order.paid
    assert [entry.actor for entry in cart.journal if entry.kind is JournalKind.CART_CONFIRMED] == [
        "admin:ann"
    ]


async def test_no_worker_on_the_task_queue_exits_4(
    cartkeeper: Cartkeeper, carts: CartkeeperClient, session_factory: Any
) -> None:
    shop = new_id("shop")
    cart_id = await locked_cart(carts, session_factory, shop)
    nobody = {"CARTKEEPER_TASK_QUEUE": new_id("nobody")}
    run = await cartkeeper("carts", "confirm", cart_id, "--shop", shop, env=nobody)
    assert run.code == 4
    one_error_line(run, "no_worker")


# --------------------------------------------------------------------------- settings


async def test_a_malformed_setting_exits_2_naming_the_variable(cartkeeper: Cartkeeper) -> None:
    cases = [
        ("CARTKEEPER_POLICY", '{"abandon_after_seconds": -1}', "abandon_after_seconds must be"),
        ("CARTKEEPER_POLICY", "not json", "not valid JSON"),
        ("CARTKEEPER_POLICY", '{"lock_after_seconds": "600"}', "lock_after_seconds must be"),
        ("CARTKEEPER_SHOP_POLICIES", '{"s1": {"bogus": 1}}', "unknown policy field(s) bogus"),
        ("CARTKEEPER_SHOP_POLICIES", '{"s1": {', "not valid JSON"),
        ("CARTKEEPER_WORKER_WAIT", "soon", "not a number of seconds"),
        # a field name is quoted escaped: the error stays one line
        ("CARTKEEPER_POLICY", '{"x\\ny\\u001b]0;t\\u0007": 1}', r"x\ny\x1b]0;t\x07"),
    ]
    runs = await asyncio.gather(
        *(cartkeeper("carts", "list", env={variable: value}) for variable, value, _ in cases)
    )
    for (variable, value, expected), run in zip(cases, runs, strict=True):
        assert run.code == 2, (variable, value, run.err)
        line = one_error_line(run, "invalid_settings")
        assert line.startswith(f"error: invalid_settings: {variable}: "), line
        assert expected in line, line
        assert run.out == ""
        assert b"\x1b" not in run.err.encode()

    # every command that reads the settings refuses them, before connecting to anything
    bad = {"CARTKEEPER_POLICY": '{"abandon_after_seconds": -1}'}
    commands = [
        ("carts", "show", "c-1"),
        ("carts", "confirm", "c-1"),
        ("carts", "resolve", "c-1"),
        ("simulate",),
        ("worker",),
    ]
    runs = await asyncio.gather(*(cartkeeper(*args, env=bad, within=30) for args in commands))
    for args, run in zip(commands, runs, strict=True):
        assert run.code == 2, (args, run.err)
        assert "CARTKEEPER_POLICY" in one_error_line(run, "invalid_settings")


# --------------------------------------------------------------------------- simulate


async def test_simulate_ends_with_carts_in_every_state(cartkeeper: Cartkeeper) -> None:
    shop = new_id("shop")
    run = await cartkeeper(
        "simulate", "--carts", "12", "--shop", shop, "--seed", "7", "--speed", "10", within=90
    )
    assert run.code == 0, run.out + run.err
    summary = run.out[run.out.index("carts by state") :]
    counts = {
        match.group(1): int(match.group(2))
        for match in re.finditer(r"^\s+([a-z_]+)\s+(\d+)\s", summary, re.MULTILINE)
    }
    assert set(counts) == {str(state) for state in CartState}, summary
    assert all(count >= 1 for count in counts.values()), summary
    assert sum(counts.values()) == 12
    assert "no_payment_result" in summary and "payment_pending" in summary
    assert "online_payment" in summary and "offline_payment" in summary

    listed = await cartkeeper("carts", "list", "--shop", shop, "--json")
    assert len(listed.json()) == 12
