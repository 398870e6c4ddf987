"""``cartkeeper statuses``: a shop's letter-coded order statuses in the read-model database
(list, add, edit, delete; no Temporal needed)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import click

from starter.cli.common import (
    CONTEXT_SETTINGS,
    echo,
    json_option,
    read_model,
    run_on_read_model,
    shop_option,
)
from starter.cli.root import cli

if TYPE_CHECKING:
    from activities.order_statuses import OrderStatusDef, StatusRegistry
    from starter.order_statuses import OrderStatusClient

#: refusals that name a status the shop does not have: exit 3, like a missing cart
_NOT_FOUND = {"unknown_status"}
_INVENTORY = ("decrease", "increase", "none")


def _run(work: Callable[[OrderStatusClient, str], Awaitable[None]], shop: str | None) -> None:
    """Run ``work`` (with the shop id) on the read model; a refusal is one error line
    (exit 1; ``unknown_status`` exits 3)."""
    from activities.order_statuses import StatusRefused
    from starter.order_statuses import OrderStatusClient

    run_on_read_model(
        OrderStatusClient,
        work,
        shop,
        StatusRefused,
        open_read_model=read_model,
        not_found=_NOT_FOUND,
    )


# --------------------------------------------------------------------------- output


def flags(status: OrderStatusDef) -> str:
    """The flags that are on, e.g. ``paid, final, notify-customer, default``."""
    names = [
        ("paid", status.paid),
        ("final", status.final),
        ("notify-customer", status.notify_customer),
        ("notify-department", status.notify_department),
        ("contents-editable", status.contents_editable),
        ("hidden", status.hidden),
        ("default", status.builtin),
    ]
    return ", ".join(name for name, on in names if on) or "-"


def render_registry(registry: StatusRegistry) -> str:
    from starter.output import format_time, safe, table

    count = len(registry.statuses)
    if registry.customised:
        edited = f"version {registry.version}, edited {format_time(registry.updated_at)} UTC"
        if registry.updated_by:
            edited += f" by {registry.updated_by}"
    else:
        edited = "the defaults, never edited"
    head = safe(f"{count} order statuses of shop {registry.shop_id} ({edited})")
    rows = [
        [s.letter, s.name, s.colour, str(s.position), s.inventory, flags(s)]
        for s in registry.statuses
    ]
    body = table(["LETTER", "NAME", "COLOUR", "POSITION", "INVENTORY", "FLAGS"], rows, right=(3,))
    return f"{head}\n{body}"


def _describe(status: OrderStatusDef) -> str:
    return (
        f"{status.name} ({status.colour}, position {status.position},"
        f" inventory {status.inventory}; {flags(status)})"
    )


def _print(status: OrderStatusDef, as_json: bool, line: str) -> None:
    from starter.output import dumps, safe

    echo(dumps(status) if as_json else safe(line))


# --------------------------------------------------------------------------- options


def edit_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--shop``, ``--admin`` and ``--json``: the options of every command that edits."""
    func = json_option(func)
    func = click.option(
        "--admin",
        default=lambda: os.environ.get("USER") or "admin",
        show_default="$USER",
        metavar="NAME",
        help="Who edits (kept as the registry's last editor).",
    )(func)
    return shop_option(func)


def property_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The properties of a status; each one not given stays as it is (``edit``) or gets
    its default (``add``)."""
    options = [
        click.option(
            "--colour",
            "--color",
            "colour",
            metavar="#RRGGBB",
            help="Its colour in lists (default for a new status: #9e9e9e, grey).",
        ),
        click.option(
            "--position",
            type=int,
            metavar="N",
            help="Where it sorts (0-1000000, lower first; ties by letter). Default for a new"
            " status: 10 after the last.",
        ),
        click.option(
            "--paid/--no-paid",
            default=None,
            help="An order with it counts as paid (P and C always do).",
        ),
        click.option(
            "--final/--no-final", default=None, help="The order is over (nothing more to do)."
        ),
        click.option(
            "--notify-customer/--no-notify-customer",
            default=None,
            help="Setting it e-mails the customer.",
        ),
        click.option(
            "--notify-department/--no-notify-department",
            default=None,
            help="Setting it e-mails the orders department.",
        ),
        click.option(
            "--inventory",
            type=click.Choice(_INVENTORY),
            help="What setting it does to stock: decrease (takes it), increase (gives it"
            " back) or none. Default for a new status: none.",
        ),
        click.option(
            "--contents-editable/--no-contents-editable",
            default=None,
            help="The order's lines and delivery can be edited while it has this status.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# --------------------------------------------------------------------------- commands


@cli.group(context_settings=CONTEXT_SETTINGS)
def statuses() -> None:
    """A shop's order statuses: one letter each (A-Z), so at most 26, kept in the read model.

    Every shop starts with the defaults, which cannot be deleted and keep their letters:
    O Open, P Processed, C Complete, A Awaiting, H Awaiting (has payments), R Preparing
    shipment, S Shipped, V Delivered, B Backordered, Y Awaiting call, F Failed, D Declined,
    I Cancelled, and the hidden N Incomplete (the checkout sets it while the gateway
    answers; an admin never can). Rename, recolour, sort and re-flag them; add up to 26 in
    all. A 27th status (status_limit_reached), a letter in use (status_letter_taken) or
    deleting a default (status_builtin) is refused: one `error: <code>: <message>` line,
    exit 1; a letter the shop does not have (unknown_status) exits 3.

    Orders keep the letter, name and colour their status had when it was set: renaming or
    deleting a status never changes what an order's history shows.

    \b
    Examples:
      cartkeeper statuses list
      cartkeeper statuses add G "Gift wrapping" --colour "#ff4081" --contents-editable
      cartkeeper statuses edit G --name "Gift wrap" --position 65
      cartkeeper statuses delete G
    """


@statuses.command("list", context_settings=CONTEXT_SETTINGS)
@shop_option
@json_option
def list_command(shop: str | None, as_json: bool) -> None:
    """List the shop's order statuses by position (then letter), with their properties.

    FLAGS shows those that are on: paid, final, notify-customer, notify-department,
    contents-editable, hidden (N only) and default (cannot be deleted). --json prints the
    shop id, the registry's version (0 until the first edit) and every status's fields.

    \b
    Examples:
      cartkeeper statuses list
      cartkeeper statuses list --shop acme --json
    """
    from starter.output import dumps

    async def work(client: OrderStatusClient, shop_id: str) -> None:
        registry = await client.list(shop_id)
        echo(dumps(registry) if as_json else render_registry(registry))

    _run(work, shop)


@statuses.command(context_settings=CONTEXT_SETTINGS)
@click.argument("letter")
@click.argument("name")
@property_options
@edit_options
def add(letter: str, name: str, shop: str | None, admin: str, as_json: bool, **values: Any) -> None:
    """Add order status LETTER (one letter A-Z, any case: stored upper-case) named NAME
    (1-64 characters, no control characters, no leading or trailing space).

    Refused (exit 1) with status_limit_reached when the shop has 26 statuses already,
    status_letter_taken when another status has the letter, invalid_status for a bad
    letter, name, colour (#rrggbb) or position.

    \b
    Examples:
      cartkeeper statuses add G "Gift wrapping" --colour "#ff4081" --contents-editable
      cartkeeper statuses add x "Refunded" --final --inventory increase --notify-customer
    """

    async def work(client: OrderStatusClient, shop_id: str) -> None:
        status = await client.add(shop_id, letter, name, by=admin, **values)
        _print(status, as_json, f"status {status.letter} added: {_describe(status)}")

    _run(work, shop)


@statuses.command(context_settings=CONTEXT_SETTINGS)
@click.argument("letter")
@click.option("--name", metavar="TEXT", help="Its new name (1-64 characters).")
@click.option(
    "--letter",
    "new_letter",
    metavar="L",
    help="Its new letter (a status you added; a default keeps its letter).",
)
@property_options
@edit_options
def edit(
    letter: str,
    name: str | None,
    new_letter: str | None,
    shop: str | None,
    admin: str,
    as_json: bool,
    **values: Any,
) -> None:
    """Change what is given of order status LETTER; the rest stays as it is.

    Orders that have the status keep the name and colour it had when it was set. A
    default's letter never changes and P and C always count as paid (status_builtin);
    the hidden N Incomplete keeps its flags and stays hidden: only its name, colour and
    position change (status_hidden). A letter the shop does not have exits 3
    (unknown_status).

    \b
    Examples:
      cartkeeper statuses edit P --name "Paid" --colour "#00a000"
      cartkeeper statuses edit G --letter W --no-contents-editable
    """

    async def work(client: OrderStatusClient, shop_id: str) -> None:
        status = await client.edit(
            shop_id, letter, new_letter=new_letter, name=name, by=admin, **values
        )
        _print(status, as_json, f"status {status.letter}: {_describe(status)}")

    _run(work, shop)


@statuses.command(context_settings=CONTEXT_SETTINGS)
@click.argument("letter")
@edit_options
def delete(letter: str, shop: str | None, admin: str, as_json: bool) -> None:
    """Delete order status LETTER, one you added (a default is refused: status_builtin).

    Orders that had it keep its letter, name and colour in their history; the letter is
    free for a new status. A letter the shop does not have exits 3 (unknown_status).

    \b
    Examples:
      cartkeeper statuses delete G
    """

    async def work(client: OrderStatusClient, shop_id: str) -> None:
        status = await client.delete(shop_id, letter, by=admin)
        _print(
            status,
            as_json,
            f"status {status.letter} ({status.name}) deleted: orders that had it keep its name",
        )

    _run(work, shop)
