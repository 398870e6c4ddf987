"""The ``cartkeeper`` command line (click).

    cartkeeper dev --simulate           # Temporal dev server + worker + demo carts
    cartkeeper carts list --state locked
    cartkeeper carts confirm CART --admin ann

Every command prints one ``error: <code>: <message>`` line on failure and exits with
1 (refused), 2 (usage), 3 (no such cart) or 4 (Temporal or the database unreachable); see
``starter.errors``. Heavy modules (the Temporal SDK, SQLAlchemy) are imported only by
the commands that need them, so ``--help`` is instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from starter.errors import (
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    NO_WORKER,
    Failure,
    classify,
    exit_code_for,
)
from workflows.contract import ADMIN_CONFIRM_STATUSES, CartState

if TYPE_CHECKING:
    from activities.read_model import CartRow
    from activities.settings import Settings
    from starter.client import CartkeeperClient
    from workflows.contract import Cart

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
STATES = [str(state) for state in CartState]
#: how long a command waits for a worker to answer a query or an update
WORKER_WAIT = 20.0
CONFIRM_STATUSES = sorted(ADMIN_CONFIRM_STATUSES, key="PO".find)


@dataclass
class Options:
    """The global options, shared by every command."""

    address: str | None = None
    namespace: str | None = None


# --------------------------------------------------------------------------- plumbing


def echo(text: str = "") -> None:
    click.echo(text)


def load_settings() -> Settings:
    from pydantic import ValidationError

    from activities.settings import get_settings

    try:
        return get_settings()
    except ValidationError as error:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in error.errors()
        )
        raise Failure(
            "invalid_settings", f"check the CARTKEEPER_* variables ({detail})", EXIT_USAGE
        ) from None


def run(ctx: click.Context, main: Callable[[], Awaitable[int | None]]) -> NoReturn:
    """Run ``main`` on a fresh event loop and exit with its code (or the failure's)."""
    code = run_async(main)
    ctx.exit(code)
    raise AssertionError("unreachable")  # pragma: no cover


def run_async(main: Callable[[], Awaitable[int | None]]) -> int:
    try:
        return asyncio.run(_main(main)) or 0
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as error:
        return report(error)


async def _main(main: Callable[[], Awaitable[int | None]]) -> int | None:
    return await main()


def report(error: BaseException) -> int:
    """Print one ``error:`` line for ``error`` and return its exit code."""
    failure = classify(error)
    if failure is None:
        if os.environ.get("CARTKEEPER_DEBUG"):
            traceback.print_exception(error)
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        click.echo(
            f"error: internal: {type(error).__name__}: {detail}"
            " (set CARTKEEPER_DEBUG=1 for the traceback)",
            err=True,
        )
        return 1
    click.echo(f"error: {failure}", err=True)
    return failure.exit_code


async def connect_carts(options: Options, settings: Settings) -> CartkeeperClient:
    from starter.client import CartkeeperClient
    from starter.connect import connect

    try:
        client = await connect(options.address, options.namespace)
    except RuntimeError as error:
        raise connect_failure(error, options.address) from None
    return CartkeeperClient(client, task_queue=settings.task_queue, policy_for=settings.policy_for)


def connect_failure(error: RuntimeError, address: str | None) -> Failure | RuntimeError:
    """``Client.connect``'s "Failed client connect" as one readable line."""
    import re

    from starter.connect import DEFAULT_ADDRESS

    text = str(error)
    if not text.startswith("Failed client connect"):
        return error
    if address is None:
        from temporalio.envconfig import ClientConfig

        try:
            address = ClientConfig.load_client_connect_config().get("target_host")
        except Exception:
            address = None
    reason = re.search(r'message: "([^"]+)"', text) or re.search(
        r"Failed client connect: (.*)", text
    )
    detail = reason.group(1) if reason else text
    return Failure(
        "temporal_unavailable",
        f"cannot connect to Temporal at {address or DEFAULT_ADDRESS} ({detail.strip()[:200]})",
        EXIT_UNAVAILABLE,
    )


def read_model(settings: Settings) -> tuple[Any, Any]:
    """An engine and session factory for the read model (``DATABASE_URL``); a SQLite file
    that does not exist yet is an error, not a new empty database."""
    from sqlalchemy.engine import make_url

    from activities.db import make_engine, make_session_factory, normalize_url

    url = settings.resolved_database_url()
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        is_file = database not in ("", ":memory:") and not database.startswith("file:")
        if is_file and not Path(database).exists():
            shown = make_url(url).render_as_string(hide_password=True)
            raise Failure(
                "database_unavailable",
                f"no read model at {shown}: start `cartkeeper dev` (or `cartkeeper worker`)"
                " first, run from the project directory, or set DATABASE_URL /"
                " CARTKEEPER_DATA_DIR",
                EXIT_UNAVAILABLE,
            )
    engine = make_engine(url)
    return engine, make_session_factory(engine)


def shop_or_default(shop: str | None, settings: Settings) -> str:
    return shop or settings.default_shop


def prog_name() -> str:
    """How the user invoked us, for the commands we suggest."""
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name != "cartkeeper":
        return "cartkeeper"
    on_path = shutil.which("cartkeeper")
    if on_path and Path(on_path).resolve() == Path(argv0).resolve():
        return "cartkeeper"
    try:
        return os.path.relpath(argv0)
    except ValueError:  # pragma: no cover - another drive on Windows
        return argv0


shop_option = click.option(
    "--shop",
    metavar="SHOP",
    help="The shop id (default: $CARTKEEPER_DEFAULT_SHOP, else 'demo').",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


# --------------------------------------------------------------------------- the group


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--address",
    metavar="HOST:PORT",
    help="Temporal frontend address. Default: the SDK's environment configuration "
    "($TEMPORAL_ADDRESS, $TEMPORAL_PROFILE / temporal.toml), else localhost:7233.",
)
@click.option(
    "--namespace",
    metavar="NAME",
    help="Temporal namespace. Default: $TEMPORAL_NAMESPACE or the profile's, else 'default'.",
)
@click.version_option(package_name="cartkeeper", prog_name="cartkeeper")
@click.pass_context
def cli(ctx: click.Context, address: str | None, namespace: str | None) -> None:
    """cartkeeper: every shop cart is one durable Temporal workflow.

    Payments are never lost and carts never forgotten: carts abandon, lock when a payment
    result is missing or pending, expire, and become orders with numbers, each in its own
    workflow. This tool runs a local environment, the worker, a demo, and the admin
    actions on carts.

    \b
    Quick start:
      cartkeeper dev --simulate             # server + worker + demo carts in every state
      cartkeeper carts list --state locked  # in another terminal
      cartkeeper carts confirm CART         # a locked cart becomes an order

    Exit codes: 0 ok, 1 refused, 2 usage error, 3 no such cart, 4 Temporal or the
    database unreachable.
    """
    ctx.obj = Options(address=address, namespace=namespace)


# --------------------------------------------------------------------------- dev, worker


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--simulate/--no-simulate",
    default=False,
    show_default=True,
    help="Also run a short demo (`cartkeeper simulate`) once the worker is up.",
)
@click.option("--port", default=7233, show_default=True, help="The server's gRPC port.")
@click.option("--ui-port", default=8233, show_default=True, help="The Temporal UI's port.")
@click.option(
    "--carts", default=12, show_default=True, metavar="N", help="Demo carts with --simulate."
)
@click.option("--seed", type=int, metavar="S", help="Random seed of the demo data.")
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.1, max=100),
    help="Divide the demo's timers by this factor.",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Log level of the worker in this process.",
)
@click.pass_context
def dev(
    ctx: click.Context,
    simulate: bool,
    port: int,
    ui_port: int,
    carts: int,
    seed: int | None,
    speed: float,
    log_level: str,
) -> None:
    """Run everything locally: Temporal dev server, worker and (optionally) a demo.

    Starts `temporal server start-dev` with its state in $CARTKEEPER_DATA_DIR/temporal.db
    (default ./data, kept across runs) and our search attributes, runs the worker in this
    process against it, prints the Temporal UI and CLI examples, and keeps running until
    Ctrl-C or SIGTERM; then it stops the worker gracefully and the server.

    The read model is $DATABASE_URL, by default the SQLite file
    $CARTKEEPER_DATA_DIR/cartkeeper.db.
    """
    import logging

    from starter.dev import DevOptions, run_dev

    settings = load_settings()
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    options = DevOptions(
        port=port,
        ui_port=ui_port,
        simulate=simulate,
        carts=carts,
        seed=seed,
        speed=speed,
        prog=prog_name(),
    )
    run(ctx, lambda: run_dev(settings, options, out=echo))


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.pass_obj
@click.pass_context
def worker(ctx: click.Context, options: Options) -> None:
    """Run the worker: the cart workflows and their activities.

    Connects to Temporal as configured (--address or the TEMPORAL_* environment), migrates
    the read model ($DATABASE_URL) and polls the task queue ($CARTKEEPER_TASK_QUEUE,
    default 'cartkeeper') until SIGTERM or Ctrl-C, then shuts down gracefully. Run as many
    as you like on the same task queue.
    """
    import worker as worker_module

    load_settings()
    run(ctx, lambda: worker_module.main(options.address, options.namespace))


# --------------------------------------------------------------------------- simulate


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--carts",
    default=12,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="N",
    help="How many demo carts; 10 or more cover every state.",
)
@shop_option
@click.option("--seed", type=int, metavar="S", help="Random seed of the demo data.")
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.1, max=100),
    help="Divide the demo's timers by this factor (10: abandon after 2 s, lock after 1 s, "
    "expire after 6 s).",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until the timers have fired (about a minute at speed 1).",
)
@click.pass_obj
@click.pass_context
def simulate(
    ctx: click.Context,
    options: Options,
    carts: int,
    shop: str | None,
    seed: int | None,
    speed: float,
    wait: bool,
) -> None:
    """Drive demo storefront traffic: carts that end in every state.

    Customers browse, check out, pay by card or bank transfer, fail and retry, wait on a
    pending payment or on a gateway that never answers; an admin deletes one cart and
    confirms another. The demo carts use short timers (abandon after 20 s, lock after
    10 s, expire after 60 s; see --speed), so within about a minute there are carts
    active, in checkout, payment_pending, locked, abandoned, ordered, expired and
    deleted. Prints the count per state as the workflows report it.

    Needs a worker: `cartkeeper dev` or `cartkeeper worker`.
    """
    from starter.simulate import render_summary
    from starter.simulate import simulate as play

    settings = load_settings()
    shop_id = shop_or_default(shop, settings)

    async def main() -> int:
        client = await connect_carts(options, settings)
        await ensure_worker(client)
        result = await play(
            client.client,
            carts=carts,
            shop_id=shop_id,
            task_queue=settings.task_queue,
            seed=seed,
            speed=speed,
            wait=wait,
            out=echo,
        )
        echo()
        echo(render_summary(result))
        return 1 if result.errors or result.timed_out else 0

    run(ctx, main)


# --------------------------------------------------------------------------- carts


@cli.group(context_settings=CONTEXT_SETTINGS)
def carts() -> None:
    """List, inspect and act on carts (confirm, unlock, delete).

    `list` reads the read model (SQL, $DATABASE_URL); `show` asks the cart's workflow; the
    actions are Temporal updates, refused when the cart's state does not allow them.
    """


@carts.command("list", context_settings=CONTEXT_SETTINGS)
@click.option("--state", type=click.Choice(STATES), help="Only carts in this state.")
@shop_option
@click.option("--all-shops", is_flag=True, help="Carts of every shop (ignores --shop).")
@click.option(
    "--needs-admin", is_flag=True, help="Only carts that need an admin (locked, or attention)."
)
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="N",
    help="At most N carts, most recently updated first.",
)
@json_option
def list_command(
    state: str | None,
    shop: str | None,
    all_shops: bool,
    needs_admin: bool,
    limit: int,
    as_json: bool,
) -> None:
    """List carts from the read model, most recently updated first.

    The read model is the workflows' projection and may lag them by up to the projection
    interval (1 s by default).

    \b
    Examples:
      cartkeeper carts list --state locked
      cartkeeper carts list --needs-admin --json
    """
    from activities.read_model import list_carts
    from starter.output import dumps

    settings = load_settings()
    shop_id = None if all_shops else shop_or_default(shop, settings)

    async def main() -> int:
        engine, sessions = read_model(settings)
        try:
            rows = await list_carts(
                sessions,
                state=CartState(state) if state else None,
                shop_id=shop_id,
                needs_admin=True if needs_admin else None,
                limit=limit,
            )
        finally:
            await engine.dispose()
        if as_json:
            echo(dumps(rows))
        else:
            echo(render_rows(rows, limit=limit, shop_id=shop_id))
        return 0

    run(click.get_current_context(), main)


def render_rows(rows: list[CartRow], *, limit: int, shop_id: str | None) -> str:
    from starter.output import format_money, format_time, order_label, table

    where = f"shop {shop_id!r}" if shop_id else "any shop"
    if not rows:
        return f"no carts ({where})"
    body = []
    for row in rows:
        note = []
        if row.lock_reason:
            note.append(str(row.lock_reason))
        if row.needs_admin:
            note.append("needs admin")
        if row.customer_email:
            note.append(row.customer_email)
        body.append(
            [
                row.cart_id,
                row.shop_id,
                str(row.state),
                str(row.item_count),
                format_money(row.total, row.currency) if row.currency else "-",
                order_label(row.order_number, row.order_status),
                format_time(row.updated_at),
                ", ".join(note),
            ]
        )
    text = table(
        ["CART", "SHOP", "STATE", "ITEMS", "TOTAL", "ORDER", "UPDATED (UTC)", "NOTE"],
        body,
        right=(3, 4),
    )
    more = f" (the first {limit}: see --limit)" if len(rows) >= limit else ""
    return f"{text}\n{len(rows)} cart{'s' if len(rows) != 1 else ''}, {where}{more}"


@carts.command(context_settings=CONTEXT_SETTINGS)
@click.argument("cart")
@shop_option
@click.option(
    "--journal",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    metavar="N",
    help="How many of the last journal entries to show.",
)
@json_option
@click.pass_obj
def show(options: Options, cart: str, shop: str | None, journal: int, as_json: bool) -> None:
    """Show one cart: state, totals, lines, customer, payments, order, deadlines, journal.

    Asks the cart's workflow (the source of truth). If the workflow is gone (retired and
    removed by Temporal's retention), shows the read model's last record instead and says
    so. --json prints the whole cart with its computed total.
    """
    from starter.output import cart_json, dumps, render_cart

    settings = load_settings()
    shop_id = shop_or_default(shop, settings)

    async def main() -> int:
        found, why = await fetch_cart(options, settings, shop_id, cart)
        note = f"note: {why}; this is the cart's last record in the read model" if why else None
        if as_json:
            echo(dumps(cart_json(found, source="read_model" if why else "workflow")))
            if note:
                click.echo(note, err=True)
        else:
            if note:
                echo(note + "\n")
            echo(render_cart(found, now=datetime.now(UTC), journal_entries=journal))
        return 0

    run(click.get_current_context(), main)


async def fetch_cart(
    options: Options, settings: Settings, shop_id: str, cart_id: str
) -> tuple[Cart, str | None]:
    """The cart from its workflow, else from the read model: ``(cart, why)`` where ``why``
    says why the workflow did not answer (``None``: it did)."""
    from activities.read_model import get_cart_record
    from starter.client import CartkeeperError
    from workflows.contract import ErrorCode

    carts_client = await connect_carts(options, settings)
    refusal: Failure
    try:
        cart = await asyncio.wait_for(carts_client.get_cart(shop_id, cart_id), WORKER_WAIT)
        return cart, None
    except TimeoutError:
        refusal = no_worker(
            carts_client.task_queue, f"no worker answered within {WORKER_WAIT:.0f}s"
        )
    except CartkeeperError as error:
        if error.code is ErrorCode.CART_NOT_FOUND:
            refusal = Failure("cart_not_found", f"no cart {cart_id!r} in shop {shop_id!r}", 3)
        elif error.code is ErrorCode.TEMPORAL_UNAVAILABLE:
            raise
        else:
            refusal = Failure(str(error.code), error.message, exit_code_for(error.code))
    try:
        engine, sessions = read_model(settings)
    except Failure:
        raise refusal from None
    try:
        record = await get_cart_record(sessions, shop_id, cart_id)
    finally:
        await engine.dispose()
    if record is None:
        raise refusal
    if refusal.code == "cart_not_found":
        return record, "its workflow is gone (retired)"
    return record, f"its workflow did not answer ({refusal.message})"


def no_worker(task_queue: str, why: str) -> Failure:
    return Failure(
        NO_WORKER,
        f"{why}: is a worker running on task queue {task_queue!r}? "
        "(`cartkeeper dev` or `cartkeeper worker`)",
        EXIT_UNAVAILABLE,
    )


async def ensure_worker(carts: CartkeeperClient) -> None:
    """Fail fast when no worker polls the task queue (updates would wait for one)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.service import RPCError, RPCStatusCode

    from starter.client import CartkeeperError
    from workflows.contract import ErrorCode

    client = carts.client
    try:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=carts.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=timedelta(seconds=10),
        )
    except RPCError as error:
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise CartkeeperError(ErrorCode.TEMPORAL_UNAVAILABLE, error.message) from None
        return  # not allowed or not supported: go on, the request will tell
    if not response.pollers:
        raise no_worker(carts.task_queue, "no worker polls the task queue")


def admin_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = json_option(func)
    func = click.option(
        "--note", metavar="TEXT", help="Why (kept in the cart's journal, up to 1000 chars)."
    )(func)
    func = click.option(
        "--admin",
        default=lambda: os.environ.get("USER") or "admin",
        show_default="$USER",
        metavar="NAME",
        help="Who acts (kept in the cart's journal).",
    )(func)
    func = shop_option(func)
    return click.argument("cart")(func)


def admin_action(
    options: Options,
    shop: str | None,
    cart: str,
    as_json: bool,
    action: Callable[[CartkeeperClient, str], Awaitable[Cart]],
    describe: Callable[[Cart], str],
) -> None:
    from starter.output import cart_json, dumps

    settings = load_settings()
    shop_id = shop_or_default(shop, settings)

    async def main() -> int:
        client = await connect_carts(options, settings)
        await ensure_worker(client)
        try:
            result = await asyncio.wait_for(action(client, shop_id), WORKER_WAIT + 10)
        except TimeoutError:
            raise no_worker(client.task_queue, "no worker answered in time") from None
        echo(dumps(cart_json(result)) if as_json else describe(result))
        return 0

    run(click.get_current_context(), main)


@carts.command(context_settings=CONTEXT_SETTINGS)
@admin_options
@click.option(
    "--status",
    type=click.Choice(CONFIRM_STATUSES),
    default="P",
    show_default=True,
    help="The order's status: P processed (paid) or O open (awaiting payment).",
)
@click.pass_obj
def confirm(
    options: Options,
    cart: str,
    shop: str | None,
    admin: str,
    note: str | None,
    as_json: bool,
    status: str,
) -> None:
    """Confirm a locked cart: it becomes an order (and gets its number).

    For a cart locked because its payment is pending or its result never came, once you
    know the customer paid (P) or will pay (O). Prints the order number, assigned right
    after the confirmation.
    """

    async def action(client: CartkeeperClient, shop_id: str) -> Cart:
        await client.confirm(shop_id, cart, admin=admin, note=note, status=status)
        return await client.await_order(shop_id, cart, timeout_seconds=10)

    def describe(result: Cart) -> str:
        order = result.order
        if order is None:  # pragma: no cover - a confirmed cart has an order
            return f"cart {cart} confirmed"
        number = str(order.number) if order.number is not None else "(number pending)"
        return f"cart {cart} confirmed: order {number} ({order.status})"

    admin_action(options, shop, cart, as_json, action, describe)


@carts.command(context_settings=CONTEXT_SETTINGS)
@admin_options
@click.pass_obj
def unlock(
    options: Options, cart: str, shop: str | None, admin: str, note: str | None, as_json: bool
) -> None:
    """Unlock a locked cart: the customer can continue with the same cart.

    The cart becomes active again; its payment attempts stay on record (a late success
    still creates the order).
    """

    async def action(client: CartkeeperClient, shop_id: str) -> Cart:
        return await client.unlock(shop_id, cart, admin=admin, note=note)

    admin_action(options, shop, cart, as_json, action, lambda c: f"cart {cart} unlocked: {c.state}")


@carts.command(context_settings=CONTEXT_SETTINGS)
@admin_options
@click.pass_obj
def delete(
    options: Options, cart: str, shop: str | None, admin: str, note: str | None, as_json: bool
) -> None:
    """Delete a cart: the customer starts again with an empty one.

    Refused for ordered and expired carts. Deleting twice is one deletion. A payment
    that succeeds later is still recorded, for an admin.
    """

    async def action(client: CartkeeperClient, shop_id: str) -> Cart:
        return await client.delete(shop_id, cart, admin=admin, note=note)

    admin_action(options, shop, cart, as_json, action, lambda c: f"cart {cart} {c.state}")


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> NoReturn:
    """The console script: run the CLI, flush, and leave with exactly its exit code.

    ``os._exit``: the Temporal SDK's Rust threads can outlive the event loop and crash a
    normal interpreter shutdown, which would change the exit code.
    """
    try:
        result = cli.main(args=argv, prog_name="cartkeeper", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as done:
        code = done.exit_code
    except click.ClickException as error:
        error.show()
        code = error.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = 1
    except Failure as failure:
        click.echo(f"error: {failure}", err=True)
        code = failure.exit_code
    except Exception as error:
        code = report(error)
    code = code if code is not None else EXIT_USAGE
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
