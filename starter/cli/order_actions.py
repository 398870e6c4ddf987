"""``cartkeeper orders set-status | delivery | lines | pay | note``: the admin's actions on
an order (Temporal updates of the order's cart, ``starter.order_actions``).

An order is named by its number (the read model finds its cart); ``set-status --cart``
names a not finished order (a locked cart has no number until its status is set). Each
command prints the order's state after the action (status, total, paid, balance), or
``--json``; a refusal is one ``error: <code>: <message>`` line (exit 1), an order the
shop does not have exits 3, an update no worker applied in time exits 4.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

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
    read_model,
    run,
    shop_option,
    shop_or_default,
)
from starter.cli.order_input import (
    CLEARABLE,
    check_admin_fields,
    check_changes,
    check_payment,
    check_raw_lines,
    delivery_changes,
    edge,
    lines_from_json,
    parse_line_spec,
    with_names,
)
from starter.cli.orders import orders
from starter.errors import EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_UNAVAILABLE, Failure

if TYPE_CHECKING:
    from activities.orders_query import OrderRow
    from starter.client import CartkeeperClient
    from workflows.state import CartView

#: how long set-status --cart waits for the new order's number
NUMBER_WAIT = 10.0
AMOUNT_HELP = "minor units of the order's currency, a whole number (2100 is 21.00 EUR)"


@dataclass
class Target:
    """The order an action is for: its cart, and its read-model row (``None`` when it was
    named by ``--cart``). ``data``: what the command prepared on the read model."""

    shop_id: str
    cart_id: str
    row: OrderRow | None = None
    data: dict[str, Any] = field(default_factory=dict)


Action = Callable[["CartkeeperClient", Target], Awaitable["CartView"]]
Prepare = Callable[[Any, Target], Awaitable[None]]


# --------------------------------------------------------------------------- running


def order_action(
    options: Options,
    shop: str | None,
    number: int | None,
    cart: str | None,
    as_json: bool,
    action: Action,
    verb: str,
    *,
    checks: Sequence[Callable[[], object]] = (),
    prepare: Prepare | None = None,
    wait_for_number: bool = False,
) -> None:
    """Run ``checks`` (the command's arguments, before anything is read or sent), find
    the order (by ``number`` on the read model, or its ``cart``), run ``prepare`` on the
    read model, then the update ``action``, and print the order."""
    from starter.client import CartkeeperError
    from starter.output import dumps, safe
    from workflows.contract import ErrorCode

    settings = load_settings()
    shop_id = shop_or_default(shop, settings)

    async def main() -> int:
        for check in checks:
            check()
        target = Target(shop_id, cart or "")
        if number is not None or prepare is not None:
            await _on_read_model(settings, target, number, prepare)
        client = await connect_carts(options, settings)
        await ensure_worker(client)
        try:
            view = await asyncio.wait_for(action(client, target), WORKER_WAIT + 15)
        except (TimeoutError, CartkeeperError) as error:
            if isinstance(error, CartkeeperError) and error.code is not ErrorCode.UPDATE_PENDING:
                raise
            name = f"order {number}" if number is not None else f"cart {safe(target.cart_id)}"
            raise Failure(
                str(ErrorCode.UPDATE_PENDING),
                f"the {verb} of {name} was sent but no worker applied it within"
                f" {WORKER_WAIT:g}s (is a worker running on task queue"
                f" {client.task_queue!r}?). It is queued and may still be applied: check with"
                f" `cartkeeper orders show` before sending it again",
                EXIT_UNAVAILABLE,
            ) from None
        summary = await _summary(client, target, view, wait_for_number)
        if as_json:
            echo(dumps(summary))
        else:
            from starter.cli.order_details import describe_summary

            text = describe_summary(summary)
            if cart is not None and view.order_status is not None:
                text = f"cart {target.cart_id}: {text}"
            echo(safe(text))
        return 0

    run(click.get_current_context(), main)


async def _on_read_model(
    settings: Any, target: Target, number: int | None, prepare: Prepare | None
) -> None:
    from activities.orders_query import OrdersQueryRefused, get_order

    engine, sessions = read_model(settings)
    try:
        if number is not None:
            try:
                target.row = await get_order(sessions, target.shop_id, number)
            except OrdersQueryRefused as refused:
                exit_code = EXIT_NOT_FOUND if refused.code == "order_not_found" else EXIT_REFUSED
                raise Failure(refused.code, refused.message, exit_code) from None
            target.cart_id = target.row.cart_id
        if prepare is not None:
            await prepare(sessions, target)
    finally:
        await engine.dispose()


async def _summary(
    client: CartkeeperClient, target: Target, view: CartView, wait_for_number: bool
) -> dict[str, Any]:
    """The order as it is after the action (the cart's workflow, asked at once); only
    the update's answer if the workflow does not answer in time."""
    from starter.cli.order_details import order_summary, view_summary
    from starter.client import CartkeeperError

    if wait_for_number and view.order_status is not None and view.order_number is None:
        with contextlib.suppress(TimeoutError, CartkeeperError):  # applied: number pending
            view = await asyncio.wait_for(
                client.await_order(target.shop_id, target.cart_id, timeout_seconds=NUMBER_WAIT),
                NUMBER_WAIT * 1.5 + 1,
            )
    try:
        cart = await asyncio.wait_for(client.get_cart(target.shop_id, target.cart_id), WORKER_WAIT)
    except (TimeoutError, CartkeeperError):
        return view_summary(view)
    return order_summary(cart)


def admin_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--admin``, ``--shop`` and ``--json`` (as ``carts confirm`` has them)."""
    func = json_option(func)
    func = shop_option(func)
    return click.option(
        "--admin",
        default=lambda: os.environ.get("USER") or "admin",
        show_default="$USER",
        metavar="NAME",
        help="Who acts (kept in the order's journal and status history).",
    )(func)


note_option = click.option(
    "--note", metavar="TEXT", help="Why (kept in the order's journal, up to 1000 chars)."
)
number_argument = click.argument("number", type=click.IntRange(min=1), metavar="NUMBER")


# --------------------------------------------------------------------------- commands


@orders.command("set-status", context_settings=CONTEXT_SETTINGS)
@click.argument("args", nargs=-1, metavar="NUMBER LETTER")
@click.option(
    "--cart",
    metavar="CART_ID",
    help="A not finished order (a locked cart, no number yet) instead of NUMBER.",
)
@note_option
@admin_options
@click.pass_obj
def set_status(
    options: Options,
    args: tuple[str, ...],
    cart: str | None,
    note: str | None,
    admin: str,
    shop: str | None,
    as_json: bool,
) -> None:
    """Set order NUMBER's status to LETTER (one of the shop's: cartkeeper statuses list).

    With --cart CART_ID LETTER a not finished order (a locked cart) becomes an order with
    that status, and gets its number (printed). The status's effects follow: stock taken
    or given back, e-mails to the customer or the orders department.

    Refused: unknown_status (a letter the shop lacks), status_hidden (N Incomplete is set
    by the checkout only), payment_required (a status that counts as paid, e.g. P or C,
    while the payments do not cover the total: record the payment first with `orders
    pay`), not_an_order. Setting the status the order has changes nothing.

    \b
    Examples:
      cartkeeper orders set-status 1042 A --note "stock checked"
      cartkeeper orders set-status 1042 S
      cartkeeper orders set-status --cart cart-7f3a A
    """
    from starter.order_actions import check_letter

    number: int | None = None
    if cart is not None:
        if len(args) != 1:
            raise click.UsageError("with --cart give only LETTER: set-status --cart CART LETTER")
        (letter,) = args
    else:
        if len(args) != 2:
            raise click.UsageError("give NUMBER LETTER (or --cart CART_ID LETTER)")
        raw_number, letter = args
        if not raw_number.isdigit() or int(raw_number) < 1:
            raise click.BadParameter(f"{raw_number!r} is not an order number", param_hint="NUMBER")
        number = int(raw_number)

    async def action(client: CartkeeperClient, target: Target) -> CartView:
        return await client.set_order_status(
            target.shop_id, target.cart_id, letter, admin=admin, note=note
        )

    order_action(
        options,
        shop,
        number,
        cart,
        as_json,
        action,
        "status change",
        checks=[lambda: check_letter(letter), lambda: check_admin_fields(admin, note)],
        wait_for_number=True,
    )


@orders.command(context_settings=CONTEXT_SETTINGS)
@number_argument
@click.option("--method", metavar="ID", help="The shipping method (its cost too, unless --cost).")
@click.option("--cost", type=int, metavar="MINOR", help=f"The delivery's cost, {AMOUNT_HELP}.")
@click.option("--tracking-code", metavar="TEXT", help="The parcel's tracking code.")
@click.option("--recipient-name", metavar="TEXT", help="Who receives it.")
@click.option("--email", metavar="EMAIL", help="The recipient's e-mail.")
@click.option("--phone", metavar="PHONE", help="The recipient's phone.")
@click.option("--country", metavar="CC", help="ISO 3166-1 alpha-2 country code (DE, FR ...).")
@click.option("--city", metavar="TEXT")
@click.option("--postal-code", metavar="TEXT")
@click.option("--address", metavar="TEXT", help="Street and number.")
@click.option("--comment", metavar="TEXT", help="A comment on the delivery.")
@click.option(
    "--clear",
    "clear",
    multiple=True,
    type=click.Choice(CLEARABLE),
    metavar="FIELD",
    help=f"Clear FIELD (repeat for several): {', '.join(CLEARABLE)}.",
)
@note_option
@admin_options
@click.pass_obj
def delivery(
    options: Options,
    /,
    number: int,
    clear: tuple[str, ...],
    note: str | None,
    admin: str,
    shop: str | None,
    as_json: bool,
    **given: Any,
) -> None:
    """Change order NUMBER's delivery: the fields given (the others stay).

    --method takes the shop's shipping method (cartkeeper shipping-methods list) and,
    without --cost, its cost (in the order's currency: a method priced in another currency
    is currency_mismatch, give --cost). The cost is added to the order's total. Amounts
    are in minor units. Only the tracking code and the comment can change once the status
    does not allow editing (after S Shipped: contents_not_editable). A malformed value is
    invalid_delivery; an unknown method shipping_method_not_found (exit 1).

    \b
    Examples:
      cartkeeper orders delivery 1042 --method courier --recipient-name "Ann Example" \\
          --address "Main st 1" --postal-code 10115 --city Berlin --country DE
      cartkeeper orders delivery 1042 --tracking-code JJD0001 --clear comment
    """
    changes = delivery_changes(given, clear)
    method = changes.get("method")
    cost_of_method = isinstance(method, str) and "cost" not in changes

    async def prepare(sessions: Any, target: Target) -> None:
        if isinstance(method, str) and cost_of_method:
            target.data["cost"] = await method_cost(sessions, target, method)

    async def action(client: CartkeeperClient, target: Target) -> CartView:
        fields = {**changes, **target.data}
        return await client.edit_delivery(
            target.shop_id, target.cart_id, admin=admin, note=note, **fields
        )

    order_action(
        options,
        shop,
        number,
        None,
        as_json,
        action,
        "delivery change",
        checks=[lambda: check_changes(changes), lambda: check_admin_fields(admin, note)],
        prepare=prepare,
    )


async def method_cost(sessions: Any, target: Target, method_id: str) -> int:
    """The cost of the shop's shipping method ``method_id``, which must be priced in the
    order's currency."""
    from activities.shipping_methods import ShippingMethodRefused, method_snapshot

    try:
        snapshot = await method_snapshot(sessions, target.shop_id, method_id)
    except ShippingMethodRefused as refused:
        raise Failure(refused.code, refused.message, EXIT_REFUSED) from None
    currency = target.row.currency if target.row is not None else None
    if currency is not None and snapshot.currency != currency:
        raise Failure(
            "currency_mismatch",
            f"shipping method {snapshot.method_id} costs {snapshot.cost} {snapshot.currency};"
            f" the order is in {currency}: give --cost",
            EXIT_REFUSED,
        )
    return snapshot.cost


@orders.command(context_settings=CONTEXT_SETTINGS)
@number_argument
@click.option(
    "--line",
    "line_specs",
    multiple=True,
    metavar="SKU:QTY:UNIT_PRICE[:NAME]",
    help="A line (repeat for each): UNIT_PRICE in minor units; without NAME the order's"
    " current name of the SKU (else the SKU).",
)
@click.option(
    "--json-file",
    type=click.File("r"),
    metavar="FILE",
    help='The lines as JSON ("-": standard input): [{"sku": "tea", "quantity": 2,'
    ' "unit_price": 450, "name": "Green tea"}, ...] or {"lines": [...]}.',
)
@note_option
@admin_options
@click.pass_obj
def lines(
    options: Options,
    number: int,
    line_specs: tuple[str, ...],
    json_file: TextIO | None,
    note: str | None,
    admin: str,
    shop: str | None,
    as_json: bool,
) -> None:
    """Replace order NUMBER's lines (its whole contents) with the lines given.

    Only while its status allows editing the contents (A Awaiting, H Awaiting with
    payments, R Preparing shipment by default; else contents_not_editable). Prices are in
    minor units of the order's currency; the total follows (plus the delivery's cost), and
    stock the order holds is given back and taken again for the new lines. A malformed
    line is invalid_line / invalid_quantity / invalid_price (exit 1).

    \b
    Examples:
      cartkeeper orders lines 1042 --line tea:3:450:"Green tea" --line mug:1:800
      cartkeeper orders lines 1042 --json-file lines.json
      echo '[{"sku": "mug", "quantity": 2, "unit_price": 800}]' | \\
          cartkeeper orders lines 1042 --json-file -
    """
    if bool(line_specs) == (json_file is not None):
        raise click.UsageError("give the lines with --line (repeated) or --json-file, not both")
    raw: list[dict[str, Any]]
    if json_file is not None:
        try:
            raw = lines_from_json(json_file.read())
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--json-file") from None
    else:
        raw = []
        for spec in line_specs:
            try:
                sku, quantity, price, name = parse_line_spec(spec)
            except ValueError as error:
                raise click.BadParameter(str(error), param_hint="--line") from None
            raw.append({"sku": sku, "name": name, "quantity": quantity, "unit_price": price})

    async def action(client: CartkeeperClient, target: Target) -> CartView:
        from workflows.parsing import parse_line

        current = []
        if any(line.get("name") is None for line in raw):
            current = (await client.get_cart(target.shop_id, target.cart_id)).lines
        named = with_names(raw, current)
        parsed = edge(lambda: [parse_line(line, i) for i, line in enumerate(named)])
        return await client.edit_order_lines(
            target.shop_id, target.cart_id, parsed, admin=admin, note=note
        )

    order_action(
        options,
        shop,
        number,
        None,
        as_json,
        action,
        "contents change",
        checks=[lambda: check_raw_lines(raw), lambda: check_admin_fields(admin, note)],
    )


@orders.command(context_settings=CONTEXT_SETTINGS)
@number_argument
@click.option(
    "--amount", required=True, type=int, metavar="MINOR", help=f"The amount, {AMOUNT_HELP}."
)
@click.option("--currency", required=True, metavar="CODE", help="ISO 4217, the order's (EUR ...).")
@click.option("--refund", is_flag=True, help="A refund (taken off what was paid), not a payment.")
@click.option("--reference", metavar="TEXT", help="The bank transfer's reference, a receipt ...")
@note_option
@admin_options
@click.pass_obj
def pay(
    options: Options,
    number: int,
    amount: int,
    currency: str,
    refund: bool,
    reference: str | None,
    note: str | None,
    admin: str,
    shop: str | None,
    as_json: bool,
) -> None:
    """Record a payment (or --refund) of order NUMBER received outside the gateways.

    The amount is in MINOR units of the currency (2100 is 21.00 EUR), which must be the
    order's (else currency_mismatch). A refund is at most what was paid
    (refund_exceeds_paid). The order's paid amount and balance follow; payments that
    cover an Open order make it P Processed, part of an Awaiting one H.

    \b
    Examples:
      cartkeeper orders pay 1042 --amount 2100 --currency EUR --reference "bank 2026-11-30"
      cartkeeper orders pay 1042 --amount 500 --currency EUR --refund --note "broken mug"
    """
    from workflows.order_contract import PAYMENT_KIND, REFUND_KIND

    kind = REFUND_KIND if refund else PAYMENT_KIND

    async def action(client: CartkeeperClient, target: Target) -> CartView:
        return await client.record_payment(
            target.shop_id,
            target.cart_id,
            admin=admin,
            kind=kind,
            amount=amount,
            currency=currency.upper(),
            reference=reference,
            note=note,
        )

    order_action(
        options,
        shop,
        number,
        None,
        as_json,
        action,
        kind,
        checks=[
            lambda: check_payment(amount, currency.upper(), reference),
            lambda: check_admin_fields(admin, note),
        ],
    )


@orders.command(context_settings=CONTEXT_SETTINGS)
@number_argument
@click.argument("text", metavar="TEXT")
@admin_options
@click.pass_obj
def note(
    options: Options, number: int, text: str, admin: str, shop: str | None, as_json: bool
) -> None:
    """Add a note TEXT (up to 1000 characters) to order NUMBER's journal.

    \b
    Examples:
      cartkeeper orders note 1042 "called the customer: delivery on Friday"
    """

    async def action(client: CartkeeperClient, target: Target) -> CartView:
        return await client.add_order_note(target.shop_id, target.cart_id, text, admin=admin)

    order_action(
        options,
        shop,
        number,
        None,
        as_json,
        action,
        "note",
        checks=[lambda: check_admin_fields(admin, text, note_required=True)],
    )
