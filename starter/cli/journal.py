"""``cartkeeper journal``: what happened to a cart, or to every cart of a customer, from
the read model (journal entries, reminders sent and skipped, recovery clicks; no Temporal
needed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
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
    from activities.journal_query import CartJournal, JournalItem, JournalPage
    from starter.journal import JournalClient

JOURNAL_HEADERS = ["TIME (UTC)", "CART", "KIND", "ACTOR", "DETAIL"]


def _run(work: Callable[[JournalClient, str], Awaitable[None]], shop: str | None) -> None:
    """Run ``work`` (with the shop id) on the read model; a refusal is one error line
    (exit 1; a cart that does not exist: exit 3)."""
    from activities.journal_query import JournalQueryRefused
    from starter.journal import JournalClient

    run_on_read_model(
        JournalClient,
        work,
        shop,
        JournalQueryRefused,
        open_read_model=read_model,
        not_found=("journal_not_found",),
    )


# --------------------------------------------------------------------------- rendering


def _cells(item: JournalItem) -> list[str]:
    from starter.output import format_time

    return [format_time(item.at), item.cart_id, item.kind, item.actor or "-", item.detail or ""]


def _dropped_line(dropped: Mapping[str, int]) -> str | None:
    counts = [f"{cart_id} {n}" for cart_id, n in dropped.items() if n > 0]
    if not counts:
        return None
    return "older journal entries dropped (the cart keeps the newest): " + ", ".join(counts)


def render_cart(journal: CartJournal) -> str:
    from starter.output import safe, table

    count = len(journal.items)
    customer = journal.customer_email or "no customer e-mail"
    lines = [
        safe(
            f"journal of cart {journal.cart_id} (shop {journal.shop_id}, {journal.state}, "
            f"{customer}): {count} entr{'ies' if count != 1 else 'y'}, oldest first"
        )
    ]
    dropped = _dropped_line({journal.cart_id: journal.dropped})
    if dropped:
        lines.append(safe(dropped))
    lines.append(table(JOURNAL_HEADERS, [_cells(item) for item in journal.items]))
    return "\n".join(lines)


def render_page(page: JournalPage, next_command: list[str] | None) -> str:
    import shlex

    from starter.output import safe, table

    if not page.items:
        return safe(f"no journal entries for customer {page.email} in shop {page.shop_id}")
    count, carts = len(page.items), len(page.dropped)
    lines = [
        safe(
            f"{count} journal entr{'ies' if count != 1 else 'y'} of customer {page.email} "
            f"in shop {page.shop_id} ({carts} cart{'s' if carts != 1 else ''}), newest first"
        )
    ]
    dropped = _dropped_line(page.dropped)
    if dropped:
        lines.append(safe(dropped))
    lines.append(table(JOURNAL_HEADERS, [_cells(item) for item in page.items]))
    if page.next_cursor is not None and next_command is not None:
        lines.append(safe("more: " + " ".join(shlex.quote(part) for part in next_command)))
    return "\n".join(lines)


def item_json(item: JournalItem) -> dict[str, Any]:
    from starter.output import jsonable

    data: dict[str, Any] = jsonable(item)
    data.pop("key", None)
    return data


def cart_json(journal: CartJournal) -> dict[str, Any]:
    return {
        "shop_id": journal.shop_id,
        "cart_id": journal.cart_id,
        "state": journal.state,
        "customer_email": journal.customer_email,
        "dropped": journal.dropped,
        "items": [item_json(item) for item in journal.items],
    }


def page_json(page: JournalPage) -> dict[str, Any]:
    return {
        "shop_id": page.shop_id,
        "email": page.email,
        "items": [item_json(item) for item in page.items],
        "dropped": dict(page.dropped),
        "next_cursor": page.next_cursor,
    }


# --------------------------------------------------------------------------- command


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.option("--customer", metavar="EMAIL", help="Every cart of this customer (any case).")
@click.option("--cart", metavar="CART", help="This cart.")
@click.option(
    "--limit",
    type=click.IntRange(1, 500),
    metavar="N",
    help="With --customer: at most N entries a page (1-500; default 100).",
)
@click.option(
    "--after",
    metavar="CURSOR",
    help="With --customer: the next page (the cursor a page ends with).",
)
@shop_option
@json_option
def journal(
    customer: str | None,
    cart: str | None,
    limit: int | None,
    after: str | None,
    shop: str | None,
    as_json: bool,
) -> None:
    """The journal of a cart, or of every cart of a customer, from the read model.

    Give exactly one of --customer EMAIL and --cart CART. Entries: what the cart's
    journal says (visit, added, removed, checkout, payment attempts, reminders, admin
    actions ...), the reminders the ledger recorded as reminder_sent / reminder_skipped
    and the recovery clicks (recovery_clicked), which outlive carts. A cart keeps its
    newest journal entries only: how many older ones were dropped is said per cart.

    A cart's journal is oldest first; a customer's is newest first, a page at a time,
    ending with the command for the next page (--after CURSOR). A bad e-mail or shop is
    invalid_filter, a cursor this journal did not give invalid_cursor (exit 1), a cart
    the shop does not have journal_not_found (exit 3). --json: {"items": [{at, shop_id,
    cart_id, kind, actor, detail, source}], "dropped": ..., "next_cursor": ...}.

    \b
    Examples:
      cartkeeper journal --customer ann@example.com
      cartkeeper journal --cart cart-1 --shop acme --json
    """
    from starter.cli.common import prog_name
    from starter.output import dumps

    if (customer is None) == (cart is None):
        raise click.UsageError("give exactly one of --customer EMAIL and --cart CART")
    if cart is not None and (limit is not None or after is not None):
        raise click.UsageError("--limit and --after page a customer's journal (--customer)")
    size = limit if limit is not None else 100

    async def work(client: JournalClient, shop_id: str) -> None:
        if cart is not None:
            found = await client.cart(shop_id, cart)
            echo(dumps(cart_json(found)) if as_json else render_cart(found))
            return
        assert customer is not None
        page = await client.customer(shop_id, customer, limit=size, after=after)
        if as_json:
            echo(dumps(page_json(page)))
            return
        command = [prog_name(), "journal", "--customer", customer, "--limit", str(size)]
        command += ["--shop", shop_id, "--after", page.next_cursor or ""]
        echo(render_page(page, command))

    _run(work, shop)
