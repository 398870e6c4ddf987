"""``cartkeeper shipping-methods``: a shop's shipping methods with their cost, in the
read-model database (list, add, edit, delete; no Temporal needed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

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
    from activities.shipping_methods import ShippingMethod
    from starter.catalog import CatalogClient


def _run(work: Callable[[CatalogClient, str], Awaitable[None]], shop: str | None) -> None:
    """Run ``work`` (with the shop id) on the read model; a refusal is one error line
    (exit 1; ``shipping_method_not_found`` exits 3)."""
    from activities.shipping_methods import ShippingMethodRefused
    from starter.catalog import CatalogClient

    run_on_read_model(
        CatalogClient,
        work,
        shop,
        ShippingMethodRefused,
        open_read_model=read_model,
        not_found=("shipping_method_not_found",),
    )


def describe(method: ShippingMethod) -> str:
    from starter.output import format_money

    enabled = "enabled" if method.enabled else "disabled"
    return (
        f"{method.name}, {format_money(method.cost, method.currency)},"
        f" position {method.position}, {enabled}"
    )


def render_methods(shop_id: str, methods: list[ShippingMethod]) -> str:
    from starter.output import format_money, safe, table

    if not methods:
        return safe(
            f"no shipping methods in shop {shop_id} (add one: cartkeeper shipping-methods add)"
        )
    count = len(methods)
    head = safe(f"{count} shipping method{'s' if count != 1 else ''} of shop {shop_id}")
    rows = [
        [
            m.method_id,
            m.name,
            format_money(m.cost, m.currency),
            str(m.position),
            "yes" if m.enabled else "no",
        ]
        for m in methods
    ]
    body = table(["ID", "NAME", "COST", "POSITION", "ENABLED"], rows, right=(2, 3))
    return f"{head}\n{body}"


def _print(method: ShippingMethod, as_json: bool, line: str) -> None:
    from starter.output import dumps, safe

    echo(dumps(method) if as_json else safe(line))


COST_HELP = (
    "The cost in MINOR units of the currency, a whole number from 0 (free): 490 is"
    " 4.90 EUR, 490 JPY is 490 yen."
)


@cli.group("shipping-methods", context_settings=CONTEXT_SETTINGS)
def shipping_methods() -> None:
    """A shop's shipping methods (courier, pick-up ...) with their cost, in the read model.

    An order picks one: it records the method's id, name, cost and currency as they are
    then (its shipping cost starts as the method's and can be edited on the order), so
    editing or deleting a method never changes an order. A method: an ID you choose
    (lower-case letters and digits, words joined by _ or -, at most 64), a name (1-128
    characters), a cost in minor units with an ISO 4217 currency, a position (0-9999,
    lower first) and whether it is enabled (offered to customers).

    A bad field is refused with invalid_shipping_method (the message names it), an ID the
    shop has already with shipping_method_exists: one `error: <code>: <message>` line, exit
    1; an ID the shop does not have (shipping_method_not_found) exits 3.

    \b
    Examples:
      cartkeeper shipping-methods add courier --name Courier --cost 490 --currency EUR
      cartkeeper shipping-methods add pick-up --name "Pick-up in store" --cost 0 --currency EUR
      cartkeeper shipping-methods edit courier --cost 590 --disable
      cartkeeper shipping-methods list
      cartkeeper shipping-methods delete courier
    """


@shipping_methods.command("list", context_settings=CONTEXT_SETTINGS)
@click.option("--enabled-only", is_flag=True, help="Only the methods offered to customers.")
@shop_option
@json_option
def list_command(enabled_only: bool, shop: str | None, as_json: bool) -> None:
    """List the shop's shipping methods by position (then ID), with their cost.

    --json prints every method's fields (cost in minor units, times in ISO 8601).

    \b
    Examples:
      cartkeeper shipping-methods list
      cartkeeper shipping-methods list --enabled-only --json
    """
    from starter.output import dumps

    async def work(client: CatalogClient, shop_id: str) -> None:
        methods = await client.shipping_methods(shop_id, enabled_only=enabled_only)
        echo(dumps(methods) if as_json else render_methods(shop_id, methods))

    _run(work, shop)


@shipping_methods.command(context_settings=CONTEXT_SETTINGS)
@click.argument("method_id", metavar="ID")
@click.option("--name", required=True, metavar="TEXT", help="Its name (1-128 characters).")
@click.option("--cost", required=True, type=int, metavar="MINOR", help=COST_HELP)
@click.option("--currency", required=True, metavar="CODE", help="ISO 4217, e.g. EUR.")
@click.option(
    "--position",
    type=int,
    metavar="N",
    help="Where it sorts (0-9999, lower first; ties by ID). Default: 10 after the last.",
)
@click.option("--enabled/--disabled", default=True, show_default=True, help="Offered to customers.")
@shop_option
@json_option
def add(
    method_id: str,
    name: str,
    cost: int,
    currency: str,
    position: int | None,
    enabled: bool,
    shop: str | None,
    as_json: bool,
) -> None:
    """Add shipping method ID with its name and cost.

    Refused (exit 1) with shipping_method_exists when the shop has the ID already, and
    invalid_shipping_method for a bad ID, name, cost, currency or position.

    \b
    Examples:
      cartkeeper shipping-methods add courier --name Courier --cost 490 --currency EUR
      cartkeeper shipping-methods add express --name Express --cost 1290 --currency EUR \\
          --position 5 --disabled
    """

    async def work(client: CatalogClient, shop_id: str) -> None:
        method = await client.add_shipping_method(
            shop_id,
            method_id,
            name=name,
            cost=cost,
            currency=currency,
            position=position,
            enabled=enabled,
        )
        _print(method, as_json, f"shipping method {method.method_id} added: {describe(method)}")

    _run(work, shop)


@shipping_methods.command(context_settings=CONTEXT_SETTINGS)
@click.argument("method_id", metavar="ID")
@click.option("--name", metavar="TEXT", help="Its new name (1-128 characters).")
@click.option("--cost", type=int, metavar="MINOR", help=COST_HELP)
@click.option("--currency", metavar="CODE", help="ISO 4217, e.g. EUR (the cost stays).")
@click.option("--position", type=int, metavar="N", help="Where it sorts (0-9999, lower first).")
@click.option("--enable/--disable", "enabled", default=None, help="Offer it to customers, or stop.")
@shop_option
@json_option
def edit(
    method_id: str,
    name: str | None,
    cost: int | None,
    currency: str | None,
    position: int | None,
    enabled: bool | None,
    shop: str | None,
    as_json: bool,
) -> None:
    """Change what is given of shipping method ID; the rest stays as it is.

    Orders that picked the method keep the name and cost they recorded. Give at least one
    option (else invalid_shipping_method). An ID the shop does not have exits 3
    (shipping_method_not_found).

    \b
    Examples:
      cartkeeper shipping-methods edit courier --cost 590
      cartkeeper shipping-methods edit courier --name "DHL courier" --position 1 --enable
    """

    async def work(client: CatalogClient, shop_id: str) -> None:
        method = await client.edit_shipping_method(
            shop_id,
            method_id,
            name=name,
            cost=cost,
            currency=currency,
            position=position,
            enabled=enabled,
        )
        _print(method, as_json, f"shipping method {method.method_id}: {describe(method)}")

    _run(work, shop)


@shipping_methods.command(context_settings=CONTEXT_SETTINGS)
@click.argument("method_id", metavar="ID")
@shop_option
@json_option
def delete(method_id: str, shop: str | None, as_json: bool) -> None:
    """Delete shipping method ID (--json: what it was).

    Never refused for a method the shop has: orders that picked it keep their own record
    of its name and cost. An ID the shop does not have exits 3 (shipping_method_not_found).

    \b
    Examples:
      cartkeeper shipping-methods delete courier
    """

    async def work(client: CatalogClient, shop_id: str) -> None:
        method = await client.delete_shipping_method(shop_id, method_id)
        _print(
            method,
            as_json,
            f"shipping method {method.method_id} ({describe(method)}) deleted: orders that"
            " picked it keep their record of it",
        )

    _run(work, shop)
