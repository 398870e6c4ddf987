"""``cartkeeper order-numbers``: a shop's order numbering in the read-model database (no
Temporal needed)."""

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
    from activities.order_numbering import Numbering
    from starter.order_numbering import OrderNumberingClient


@cli.group("order-numbers", context_settings=CONTEXT_SETTINGS)
def order_numbers() -> None:
    """Each shop's order numbers: a sequence of its own (1, 2, 3 ... without gaps), an
    optional prefix shown before them, and where the sequence goes on.

    A number is given once per order, never twice: the next number can only move
    forward. An order keeps the reference (prefix and number) it was given; a new prefix
    applies to the orders to come.
    """


def _run(
    work: Callable[[OrderNumberingClient, str], Awaitable[Numbering]],
    shop: str | None,
    as_json: bool,
) -> None:
    from activities.order_numbering import NumberingRefused
    from starter.order_numbering import OrderNumberingClient

    async def work_and_print(client: OrderNumberingClient, shop_id: str) -> None:
        _print(await work(client, shop_id), as_json)

    run_on_read_model(
        OrderNumberingClient,
        work_and_print,
        shop,
        NumberingRefused,
        open_read_model=read_model,
    )


def _print(numbering: Numbering, as_json: bool) -> None:
    import json

    from starter.output import safe

    if as_json:
        echo(
            json.dumps(
                {
                    "shop_id": numbering.shop_id,
                    "prefix": numbering.prefix,
                    "next_number": numbering.next_number,
                    "next_reference": numbering.reference(numbering.next_number),
                }
            )
        )
        return
    prefix = f"prefix {numbering.prefix!r}" if numbering.prefix else "no prefix"
    echo(
        safe(
            f"shop {numbering.shop_id}: {prefix}; the next order gets number"
            f" {numbering.next_number} ({numbering.reference(numbering.next_number)})"
        )
    )


@order_numbers.command("show", context_settings=CONTEXT_SETTINGS)
@shop_option
@json_option
def show(shop: str | None, as_json: bool) -> None:
    """The shop's prefix and the number its next order gets."""
    _run(lambda client, shop_id: client.get(shop_id), shop, as_json)


@order_numbers.command("set", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--prefix",
    help='shown before the numbers to come (up to 16 letters, digits and - _ . / #; "" for none)',
)
@click.option(
    "--start",
    type=int,
    help="the number the next order gets: at least the current next number",
)
@shop_option
@json_option
def set_numbering(prefix: str | None, start: int | None, shop: str | None, as_json: bool) -> None:
    """Change the prefix and/or move the next number forward (exit 1 if refused:
    invalid_order_number_prefix, invalid_order_number_start, order_number_start_too_low)."""
    if prefix is None and start is None:
        raise click.UsageError("give --prefix and/or --start")
    _run(lambda client, shop_id: client.set(shop_id, prefix=prefix, start=start), shop, as_json)
