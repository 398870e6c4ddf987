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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.read_model import get_cart_record
from activities.settings import Settings
from starter.client import CartkeeperClient
from tests.conftest import new_id
from workflows.contract import (
    Cart,
    CartLine,
    CartState,
    CustomerInfo,
    LockReason,
    workflow_id,
)

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
    return Run(process.returncode, out.decode(), err.decode(), time.monotonic() - started)


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


async def locked_cart(carts: CartkeeperClient, session_factory: Any, shop: str) -> str:
    """A cart locked at once: its gateway reported the payment pending."""
    cart_id = new_id()
    await carts.update_cart(shop, cart_id, LINES, "EUR")
    await carts.identify_customer(
        shop, cart_id, CustomerInfo(email="ann.example@example.com", name="Ann Example")
    )
    await carts.start_checkout(shop, cart_id)
    attempt = f"pay-{cart_id}"
    await carts.start_payment(
        shop, cart_id, attempt_id=attempt, method="online", gateway="stripe", amount=TOTAL
    )
    await carts.report_payment_result(
        shop,
        cart_id,
        attempt_id=attempt,
        status="pending",
        amount=TOTAL,
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
    (): ("--address", "--namespace", "dev", "worker", "simulate", "carts"),
    ("dev",): ("--simulate", "--no-simulate", "--port", "--ui-port", "--speed"),
    ("worker",): ("TEMPORAL_*", "CARTKEEPER_TASK_QUEUE", "same task queue"),
    ("simulate",): ("--carts", "--shop", "--seed", "--speed", "--wait"),
    ("carts",): ("list", "show", "confirm", "unlock", "delete"),
    ("carts", "list"): ("--state", "--shop", "--needs-admin", "--limit", "--json", "locked"),
    ("carts", "show"): ("CART", "--shop", "--json", "--journal"),
    ("carts", "confirm"): ("CART", "--shop", "--admin", "--note", "--status", "P", "O"),
    ("carts", "unlock"): ("CART", "--shop", "--admin", "--note"),
    ("carts", "delete"): ("CART", "--shop", "--admin", "--note"),
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


async def test_unknown_cart_exits_3(cartkeeper: Cartkeeper) -> None:
    shop, cart_id = new_id("shop"), new_id()
    commands = ("show", "confirm", "unlock", "delete")
    runs = await asyncio.gather(
        *(cartkeeper("carts", command, cart_id, "--shop", shop) for command in commands)
    )
    for command, run in zip(commands, runs, strict=True):
        assert run.code == 3, (command, run.err)
        one_error_line(run, "cart_not_found")
        assert run.out == ""


async def test_invalid_cart_id_is_refused(cartkeeper: Cartkeeper) -> None:
    run = await cartkeeper("carts", "show", "no spaces allowed")
    assert run.code == 1
    one_error_line(run, "invalid_id")


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
    match = re.fullmatch(rf"cart {re.escape(cart_id)} confirmed: order (\d+) \(P\)\n", run.out)
    assert match, run.out
    cart = await carts.get_cart(shop, cart_id)
    assert cart.state is CartState.ORDERED and cart.order is not None
    assert cart.order.number == int(match.group(1)) and cart.order.paid
    assert any(
        entry.actor == "admin:ann" and entry.detail == "paid by phone" for entry in cart.journal
    )

    again = await cartkeeper("carts", "confirm", cart_id, "--shop", shop)
    assert again.code == 1
    one_error_line(again, "already_ordered")


async def test_confirm_as_open_order(
    cartkeeper: Cartkeeper, carts: CartkeeperClient, session_factory: Any
) -> None:
    shop = new_id("shop")
    cart_id = await locked_cart(carts, session_factory, shop)
    run = await cartkeeper("carts", "confirm", cart_id, "--shop", shop, "--status", "O", "--json")
    assert run.code == 0, run.err
    data = run.json()
    assert data["state"] == "ordered" and data["order"]["status"] == "O"
    assert data["order"]["paid"] is False and isinstance(data["order"]["number"], int)


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
    for args in (("carts", "show", "c-1"), ("carts", "confirm", "c-1"), ("simulate",)):
        run = await cartkeeper("--address", "127.0.0.1:1", *args, within=30)
        assert run.code == 4, (args, run.err)
        assert "127.0.0.1:1" in one_error_line(run, "temporal_unavailable")
        assert run.seconds < 20, run.seconds  # no retrying for minutes

    by_env = await cartkeeper("carts", "show", "c-1", env={"TEMPORAL_ADDRESS": "127.0.0.1:1"})
    assert by_env.code == 4
    one_error_line(by_env, "temporal_unavailable")


async def test_no_worker_on_the_task_queue_exits_4(
    cartkeeper: Cartkeeper, carts: CartkeeperClient, session_factory: Any
) -> None:
    shop = new_id("shop")
    cart_id = await locked_cart(carts, session_factory, shop)
    nobody = {"CARTKEEPER_TASK_QUEUE": new_id("nobody")}
    run = await cartkeeper("carts", "confirm", cart_id, "--shop", shop, env=nobody)
    assert run.code == 4
    one_error_line(run, "no_worker")


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
