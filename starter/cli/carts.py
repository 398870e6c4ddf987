"""``cartkeeper carts``: list, show and act on carts (confirm, unlock, delete, resolve)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from starter.cli.common import (
    CONTEXT_SETTINGS,
    WORKER_WAIT,
    Options,
    connect_carts,
    echo,
    ensure_worker,
    json_option,
    load_settings,
    no_worker,
    read_model,
    run,
    shop_filter,
    shop_option,
    shop_or_default,
)
from starter.cli.root import cli
from starter.errors import EXIT_UNAVAILABLE, Failure, exit_code_for
from workflows.contract import ADMIN_CONFIRM_STATUSES, CartState

if TYPE_CHECKING:
    from activities.read_model import CartRow
    from activities.settings import Settings
    from starter.client import CartkeeperClient
    from workflows.contract import Cart, CartView

STATES = [str(state) for state in CartState]
CONFIRM_STATUSES = sorted(ADMIN_CONFIRM_STATUSES, key="PO".find)


@cli.group(context_settings=CONTEXT_SETTINGS)
def carts() -> None:
    """List, inspect and act on carts (confirm, unlock, delete, resolve).

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
    interval (5 s by default; at once for ordered, locked, expired and deleted carts and
    carts that need an admin).

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
        shop_filter(shop_id)
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
        refusal = no_worker(carts_client.task_queue, f"no worker answered within {WORKER_WAIT:g}s")
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
    action: Callable[[CartkeeperClient, str], Awaitable[CartView]],
    describe: Callable[[CartView], str],
    verb: str,
) -> None:
    """Run an admin update and print what the cart's workflow answered.

    An update that no worker applies within the wait exits 4 and says so: Temporal keeps
    it, and a worker may still apply it later."""
    from starter.client import CartkeeperError
    from starter.output import dumps, safe
    from workflows.contract import ErrorCode

    settings = load_settings()
    shop_id = shop_or_default(shop, settings)

    async def main() -> int:
        client = await connect_carts(options, settings)
        await ensure_worker(client)
        try:
            result = await asyncio.wait_for(action(client, shop_id), WORKER_WAIT + 15)
        except (TimeoutError, CartkeeperError) as error:
            if isinstance(error, CartkeeperError) and error.code is not ErrorCode.UPDATE_PENDING:
                raise
            check = f"cartkeeper carts show {cart}" + (f" --shop {shop_id}" if shop else "")
            raise Failure(
                str(ErrorCode.UPDATE_PENDING),
                f"the {verb} of cart {safe(cart)} was sent but no worker applied it within"
                f" {WORKER_WAIT:g}s (is a worker running on task queue"
                f" {client.task_queue!r}?). It is queued and may still be applied: check with"
                f" `{check}` before sending it again",
                EXIT_UNAVAILABLE,
            ) from None
        echo(dumps(result) if as_json else safe(describe(result)))
        return 0

    run(click.get_current_context(), main)


async def confirm_and_number(
    client: CartkeeperClient,
    shop_id: str,
    cart: str,
    admin: str,
    note: str | None,
    status: str,
    number_wait: float = 10,
) -> CartView:
    """Confirm, then wait (briefly) for the order's number. A confirmation that was
    applied is reported as such even when its number is not known yet."""
    from starter.client import CartkeeperError
    from workflows.contract import ErrorCode

    confirmed = await client.confirm(shop_id, cart, admin=admin, note=note, status=status)
    try:
        return await asyncio.wait_for(
            client.await_order(shop_id, cart, timeout_seconds=number_wait), number_wait * 1.5 + 1
        )
    except (TimeoutError, CartkeeperError) as error:
        if isinstance(error, CartkeeperError) and error.code is not ErrorCode.UPDATE_PENDING:
            raise
        return confirmed  # "(number pending)"


def attention_note(view: CartView) -> str:
    return f"; needs an admin: {', '.join(view.attention)}" if view.attention else ""


@carts.command(context_settings=CONTEXT_SETTINGS)
@admin_options
@click.option(
    "--status",
    type=click.Choice(CONFIRM_STATUSES),
    default="P",
    show_default=True,
    help="P processed: you saw the payment (the current attempt is recorded as paid) or"
    " O open (the order awaits its payment).",
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
    know the customer paid (P) or will pay (O). With P the current payment attempt is
    recorded as paid by you; the order is paid if that covers its total. Prints the order
    number, assigned right after the confirmation.
    """

    async def action(client: CartkeeperClient, shop_id: str) -> CartView:
        return await confirm_and_number(client, shop_id, cart, admin, note, status)

    def describe(view: CartView) -> str:
        from starter.output import format_money

        number = str(view.order_number) if view.order_number is not None else "(number pending)"
        paid = (
            "paid"
            if view.order_paid
            else (
                f"not fully paid: {format_money(view.amount_paid, view.currency)} of"
                f" {format_money(view.total, view.currency)}"
            )
        )
        return f"cart {cart} confirmed: order {number} ({view.order_status}), {paid}" + (
            attention_note(view)
        )

    admin_action(options, shop, cart, as_json, action, describe, "confirmation")


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

    async def action(client: CartkeeperClient, shop_id: str) -> CartView:
        return await client.unlock(shop_id, cart, admin=admin, note=note)

    admin_action(
        options, shop, cart, as_json, action, lambda v: f"cart {cart} unlocked: {v.state}", "unlock"
    )


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

    async def action(client: CartkeeperClient, shop_id: str) -> CartView:
        return await client.delete(shop_id, cart, admin=admin, note=note)

    admin_action(
        options, shop, cart, as_json, action, lambda v: f"cart {cart} {v.state}", "deletion"
    )


@carts.command(context_settings=CONTEXT_SETTINGS)
@admin_options
@click.option(
    "--item",
    "items",
    type=click.IntRange(min=1),
    multiple=True,
    metavar="N",
    help="Resolve attention item #N (repeat for several; `carts show` lists them)."
    " Default: every open item.",
)
@click.pass_obj
def resolve(
    options: Options,
    cart: str,
    shop: str | None,
    admin: str,
    note: str | None,
    as_json: bool,
    items: tuple[int, ...],
) -> None:
    """Resolve a cart's attention items, with a note of what you did.

    Items are what needs an admin beyond the cart's state: an amount that differs from
    the order's total, a payment after the cart closed, a possible double charge, a payment
    result that could not be read ... `carts show CART` lists them with their numbers. A
    resolved item stays on the cart, with who resolved it, when and the note.

    \b
    Examples:
      cartkeeper carts resolve CART --item 2 --note "refunded 5.00 in the gateway"
      cartkeeper carts resolve CART --note "checked with the customer"
    """

    async def action(client: CartkeeperClient, shop_id: str) -> CartView:
        return await client.resolve(
            shop_id, cart, admin=admin, note=note, items=list(items) if items else None
        )

    def describe(view: CartView) -> str:
        left = f"; still open: {', '.join(view.attention)}" if view.attention else ""
        return f"cart {cart}: attention resolved{left}"

    admin_action(options, shop, cart, as_json, action, describe, "resolution")
