"""``cartkeeper stock``: a shop's stock levels per SKU in the read-model database (set,
show, list; no Temporal needed)."""

from __future__ import annotations

import re
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
    from activities.stock import StockLevel, StockPage
    from starter.catalog import CatalogClient

_INTEGER = re.compile(r"^[+-]?[0-9]+\Z")


def _run(work: Callable[[CatalogClient, str], Awaitable[None]], shop: str | None) -> None:
    """Run ``work`` (with the shop id) on the read model; a refusal is one error line
    (exit 1)."""
    from activities.stock import StockRefused
    from starter.catalog import CatalogClient

    run_on_read_model(CatalogClient, work, shop, StockRefused, open_read_model=read_model)


def _quantity(text: str) -> int | str:
    """QTY as typed: a whole number, or the text itself (refused as invalid_stock_level
    by the store, with the others)."""
    return int(text) if _INTEGER.match(text) else text


def level_json(shop_id: str, sku: str, level: StockLevel | None) -> dict[str, Any]:
    from starter.output import jsonable

    return {
        "shop_id": shop_id,
        "sku": sku,
        "tracked": level is not None,
        "level": level.level if level is not None else None,
        "updated_at": jsonable(level.updated_at) if level is not None else None,
    }


def render_page(shop_id: str, page: StockPage, limit: int) -> str:
    import shlex

    from starter.output import format_time, safe, table

    if not page.levels:
        return safe(
            f"no stock levels in shop {shop_id} (SKUs without one are not tracked: unlimited)"
        )
    rows = [[s.sku, str(s.level), format_time(s.updated_at)] for s in page.levels]
    body = table(["SKU", "LEVEL", "UPDATED (UTC)"], rows, right=(1,))
    count = len(page.levels)
    lines = [safe(f"{count} stock level{'s' if count != 1 else ''} of shop {shop_id}"), body]
    if page.next_after is not None:
        more = f"cartkeeper stock list --after {shlex.quote(page.next_after)} --limit {limit}"
        lines.append(safe(f"more: {more}"))
    return "\n".join(lines)


@cli.group(context_settings=CONTEXT_SETTINGS)
def stock() -> None:
    """A shop's stock levels per SKU, in the read model (the storefront sets them).

    A SKU without a level is not tracked: its stock is unlimited, and orders never run
    short of it. Orders take stock when their status decreases it and give it back when
    their status increases it, all or nothing: an order whose lines lack stock takes none
    and becomes Backordered (B). A level is a whole number, 0 or more; anything else is
    refused with invalid_stock_level (exit 1).

    \b
    Examples:
      cartkeeper stock set mug 12
      cartkeeper stock show mug
      cartkeeper stock list --limit 50
    """


@stock.command("set", context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True})
@click.argument("sku")
@click.argument("quantity", metavar="QTY")
@shop_option
@json_option
def set_command(sku: str, quantity: str, shop: str | None, as_json: bool) -> None:
    """Set the stock level of SKU to QTY units (a whole number, 0 or more).

    The SKU is tracked from now on. A negative or fractional QTY is refused with
    invalid_stock_level, a SKU that is empty or longer than 200 characters with
    invalid_sku (exit 1).

    \b
    Examples:
      cartkeeper stock set mug 12
      cartkeeper stock set "tee-shirt/XL" 0 --shop acme
    """
    from starter.output import format_time

    async def work(client: CatalogClient, shop_id: str) -> None:
        level = await client.set_stock(shop_id, sku, _quantity(quantity))  # type: ignore[arg-type]
        if as_json:
            from starter.output import dumps

            echo(dumps(level_json(shop_id, sku, level)))
            return
        from starter.output import safe

        echo(
            safe(
                f"stock of {sku} in shop {shop_id}: {level.level}"
                f" (set {format_time(level.updated_at)} UTC)"
            )
        )

    _run(work, shop)


@stock.command(context_settings=CONTEXT_SETTINGS)
@click.argument("sku")
@shop_option
@json_option
def show(sku: str, shop: str | None, as_json: bool) -> None:
    """Show the stock level of SKU, or that it is not tracked (unlimited stock).

    --json: shop_id, sku, tracked (true or false), level (null when not tracked) and
    updated_at.

    \b
    Examples:
      cartkeeper stock show mug
      cartkeeper stock show mug --json
    """
    from starter.output import dumps, format_time, safe

    async def work(client: CatalogClient, shop_id: str) -> None:
        level = await client.stock_level(shop_id, sku)
        if as_json:
            echo(dumps(level_json(shop_id, sku, level)))
        elif level is None:
            echo(safe(f"stock of {sku} in shop {shop_id}: not tracked (unlimited)"))
        else:
            echo(
                safe(
                    f"stock of {sku} in shop {shop_id}: {level.level}"
                    f" (set {format_time(level.updated_at)} UTC)"
                )
            )

    _run(work, shop)


@stock.command("list", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--after",
    metavar="SKU",
    help="Start after this SKU (the last one of the previous page).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    metavar="N",
    help="At most N levels (1-1000).",
)
@shop_option
@json_option
def list_command(after: str | None, limit: int, shop: str | None, as_json: bool) -> None:
    """List the shop's stock levels by SKU (code point order), a page at a time.

    A page ends with the command for the next one (--after the last SKU shown). --json:
    {"levels": [...], "next_after": SKU or null (null: the last page)}.

    \b
    Examples:
      cartkeeper stock list
      cartkeeper stock list --after mug --limit 50 --json
    """
    from starter.output import dumps

    async def work(client: CatalogClient, shop_id: str) -> None:
        page = await client.stock_levels(shop_id, after=after, limit=limit)
        echo(dumps(page) if as_json else render_page(shop_id, page, limit))

    _run(work, shop)
