"""``cartkeeper orders``: the admin's orders list on the read model (list, show, counts;
no Temporal needed). Not finished orders (locked carts) are listed with the orders. The
actions on an order (set-status, delivery, lines, pay, note) are in
``starter.cli.order_actions``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
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
from starter.errors import EXIT_REFUSED, Failure

if TYPE_CHECKING:
    from activities.order_status_rules import OrderStatusDef
    from activities.orders_query import OrderPage, OrderRow
    from starter.orders import OrdersClient
    from workflows.state import Cart

ORDER_HEADERS = [
    "NUMBER",
    "CREATED (UTC)",
    "STATUS",
    "CUSTOMER",
    "DELIVERY",
    "TOTAL",
    "PAID",
    "METHOD",
    "FULLY PAID",
]


def _run(work: Callable[[OrdersClient, str], Awaitable[None]], shop: str | None) -> None:
    """Run ``work`` (with the shop id) on the read model; a refusal is one error line
    (exit 1; an order that does not exist: exit 3)."""
    from activities.orders_query import OrdersQueryRefused
    from starter.cli.common import load_settings
    from starter.orders import OrdersClient

    conditions = load_settings().not_finished_for
    run_on_read_model(
        lambda sessions: OrdersClient(sessions, not_finished_when=conditions),
        work,
        shop,
        OrdersQueryRefused,
        open_read_model=read_model,
        not_found=("order_not_found",),
    )


def _when(value: str | None, option: str, *, end: bool) -> datetime | None:
    """``--since`` / ``--until``: a day (``--until`` a day: up to its end) or an ISO 8601
    time (without an offset: UTC)."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise Failure(
            "invalid_filter",
            f"{option}: {value!r} is not a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM[:SS][+HH:MM]",
            EXIT_REFUSED,
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# --------------------------------------------------------------------------- rendering


def status_label(row: OrderRow) -> str:
    return f"{row.status} {row.status_name}" if row.status_name else f"{row.status} (unknown)"


def customer_label(row: OrderRow) -> str:
    if row.customer_name and row.customer_email:
        return f"{row.customer_name} <{row.customer_email}>"
    return row.customer_name or row.customer_email or "-"


def delivery_label(row: OrderRow) -> str:
    """The delivery's method, city and tracking code (what the list has room for)."""
    delivery = row.delivery or {}
    parts = [
        str(delivery[key])
        for key in ("method", "city", "tracking_code")
        if isinstance(delivery.get(key), str) and delivery[key]
    ]
    return " ".join(parts) or "-"


def method_label(row: OrderRow) -> str:
    if row.payment_method is None:
        return "-"
    return (
        f"{row.payment_method} ({row.payment_gateway})"
        if row.payment_gateway
        else row.payment_method
    )


def fully_paid_label(row: OrderRow) -> str:
    if row.not_finished:
        return "not defined"
    return "yes" if row.fully_paid else "no"


def number_label(row: OrderRow) -> str:
    return row.reference if row.reference is not None else "(not finished)"


def _cells(row: OrderRow) -> list[str]:
    from starter.output import format_money, format_time

    return [
        number_label(row),
        format_time(row.created_at),
        status_label(row),
        customer_label(row),
        delivery_label(row),
        format_money(row.total, row.currency),
        format_money(row.amount_paid, row.currency),
        method_label(row),
        fully_paid_label(row),
    ]


def render_page(shop_id: str, page: OrderPage, next_command: list[str] | None) -> str:
    import shlex

    from starter.output import safe, table

    if not page.rows:
        return safe(f"no orders in shop {shop_id} match")
    count = len(page.rows)
    lines = [
        safe(f"{count} order{'s' if count != 1 else ''} of shop {shop_id}"),
        table(ORDER_HEADERS, [_cells(row) for row in page.rows], right=(5, 6)),
    ]
    if page.next_cursor is not None and next_command is not None:
        lines.append(safe("more: " + " ".join(shlex.quote(part) for part in next_command)))
    return "\n".join(lines)


def render_order(row: OrderRow, cart: Cart | None = None) -> str:
    """The order's fields; with its cart (the read model's snapshot), its delivery, its
    total with the delivery's cost and balance, then ``order_details.render_details``."""
    from starter.cli.order_details import delivery_text, render_details
    from starter.output import format_money, format_time, safe

    title = f"order {row.reference}" if row.reference is not None else "not finished order"
    colour = f" ({row.status_colour})" if row.status_colour else ""
    order = cart.order if cart is not None else None
    total = order.total if order is not None else row.total
    due = total - row.amount_paid
    fields = [
        ("cart", row.cart_id),
        ("created", f"{format_time(row.created_at)} UTC"),
        ("status", status_label(row) + colour),
        ("customer", customer_label(row)),
        ("delivery", delivery_text(order.delivery if order else None, row.currency)),
        ("total", format_money(total, row.currency)),
        ("paid", format_money(row.amount_paid, row.currency)),
        ("due", format_money(max(due, 0), row.currency)),
        ("balance", format_money(due, row.currency)),
        ("method", method_label(row)),
        ("payment", row.payment_status.replace("_", " ")),
        ("fully paid", fully_paid_label(row)),
    ]
    lines = [safe(f"{title} (shop {row.shop_id})")]
    lines += [f"  {name:<11}{safe(value)}" for name, value in fields]
    if cart is not None:
        lines.append(render_details(cart))
    return "\n".join(lines)


def render_counts(
    shop_id: str, counts: dict[str, int], statuses: tuple[OrderStatusDef, ...]
) -> str:
    from activities.orders_query import NOT_FINISHED
    from starter.output import safe, table

    known = {s.letter for s in statuses}
    rows = [[s.letter, s.name, str(counts.get(s.letter, 0))] for s in statuses]
    rows += [
        [letter, "(unknown)", str(n)]
        for letter, n in sorted(counts.items())
        if letter not in known and letter != NOT_FINISHED
    ]
    rows.append(["-", "not finished", str(counts.get(NOT_FINISHED, 0))])
    header = safe(f"orders of shop {shop_id} per status")
    return "\n".join([header, table(["LETTER", "STATUS", "ORDERS"], rows, right=(2,))])


def order_json(row: OrderRow) -> dict[str, Any]:
    from starter.output import jsonable

    data: dict[str, Any] = jsonable(row)
    return data


# --------------------------------------------------------------------------- commands


@cli.group(context_settings=CONTEXT_SETTINGS)
def orders() -> None:
    """The shop's orders list, from the read model: orders and not finished orders;
    and the admin's actions on an order (its status, delivery, lines, payments, notes).

    A not finished order is a locked cart (the customer went to pay and no payment result
    settled it): it has no number, is shown with status N (Incomplete) and its payment
    status is "not defined". Status names and colours are the shop's (cartkeeper
    statuses list). The read model may lag the carts by a few seconds. The actions
    (set-status, delivery, lines, pay, note) are Temporal updates of the order's cart.

    \b
    Examples:
      cartkeeper orders list --status P --since 2026-11-01
      cartkeeper orders show 1042
      cartkeeper orders counts
      cartkeeper orders set-status 1042 S --note "sent with DHL"
    """


@orders.command("list", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--status",
    metavar="L",
    help="One status letter (N also lists the not finished orders), or not_finished.",
)
@click.option("--since", metavar="D", help="Created at or after D (YYYY-MM-DD or ISO time, UTC).")
@click.option(
    "--until", metavar="D", help="Created before D (a day YYYY-MM-DD: up to its end; or ISO time)."
)
@click.option("--email", metavar="E", help="The customer's e-mail (any case).")
@click.option("--number", type=click.IntRange(min=1), metavar="N", help="The order number N.")
@click.option("--oldest", is_flag=True, help="Oldest first (default: newest first).")
@click.option(
    "--limit",
    type=click.IntRange(1, 500),
    default=50,
    show_default=True,
    metavar="N",
    help="At most N orders (1-500).",
)
@click.option("--after", metavar="CURSOR", help="The next page: the cursor a page ends with.")
@shop_option
@json_option
def list_command(
    status: str | None,
    since: str | None,
    until: str | None,
    email: str | None,
    number: int | None,
    oldest: bool,
    limit: int,
    after: str | None,
    shop: str | None,
    as_json: bool,
) -> None:
    """List the shop's orders and not finished orders, newest first, a page at a time.

    Columns: number, created at, status (letter and name), customer, delivery, total,
    paid, payment method, fully paid (yes, no, or "not defined" for a not finished
    order). A page ends with the command for the next one (--after CURSOR, same
    filters). A malformed filter is invalid_filter, a cursor this list did not give
    invalid_cursor (exit 1). --json: {"orders": [...], "next_cursor": CURSOR or null}.

    \b
    Examples:
      cartkeeper orders list
      cartkeeper orders list --status not_finished --oldest
      cartkeeper orders list --email ann@example.com --json
    """
    from starter.cli.common import prog_name
    from starter.output import dumps

    async def work(client: OrdersClient, shop_id: str) -> None:
        start, end = _when(since, "--since", end=False), _when(until, "--until", end=True)
        page = await client.list(
            shop_id,
            status=status,
            since=start,
            until=end,
            email=email,
            number=number,
            sort="oldest" if oldest else "newest",
            limit=limit,
            after=after,
        )
        if as_json:
            echo(
                dumps(
                    {"orders": [order_json(r) for r in page.rows], "next_cursor": page.next_cursor}
                )
            )
            return
        command = [prog_name(), "orders", "list"]
        for option, value in (
            ("--status", status),
            ("--since", since),
            ("--until", until),
            ("--email", email),
            ("--number", number),
        ):
            if value is not None:
                command += [option, str(value)]
        command += ["--oldest"] if oldest else []
        command += ["--limit", str(limit), "--shop", shop_id]
        command += ["--after", page.next_cursor or ""]
        echo(render_page(shop_id, page, command))

    _run(work, shop)


@orders.command(context_settings=CONTEXT_SETTINGS)
@click.argument("number", type=click.IntRange(min=1), metavar="N")
@shop_option
@json_option
def show(number: int, shop: str | None, as_json: bool) -> None:
    """Show order number N (the number without the shop's prefix).

    Its fields, then its lines, status history (letter, name, when, by whom, note),
    payments and refunds, stock moves and status e-mails, from the read model's last
    record of the order. An order the shop does not have is order_not_found (exit 3).
    --json: every field of the list's row (number, reference, created_at, status,
    status_name, status_colour, customer, total, amount_paid, payment_method, fully_paid,
    payment_status ...) and "details" (order_total, balance, statuses, delivery, lines,
    payments, stock_moves, status_mails).

    \b
    Examples:
      cartkeeper orders show 1042
      cartkeeper orders show 7 --shop acme --json
    """
    from activities.read_model import get_cart_record
    from starter.cli.order_details import details_json
    from starter.output import dumps

    async def work(client: OrdersClient, shop_id: str) -> None:
        row = await client.get(shop_id, number)
        cart = await get_cart_record(client.sessions, shop_id, row.cart_id)
        if as_json:
            data = order_json(row)
            data["details"] = details_json(cart) if cart is not None else None
            echo(dumps(data))
        else:
            echo(render_order(row, cart))

    _run(work, shop)


@orders.command(context_settings=CONTEXT_SETTINGS)
@shop_option
@json_option
def counts(shop: str | None, as_json: bool) -> None:
    """How many orders have each status, and how many are not finished.

    Every status of the shop is listed (0 when no order has it), then letters the shop
    no longer has that orders still carry. --json: {"P": 12, ..., "not_finished": 3}
    (letters without orders left out; not_finished always there).

    \b
    Examples:
      cartkeeper orders counts
      cartkeeper orders counts --shop acme --json
    """
    from activities.order_statuses import list_statuses
    from starter.output import dumps

    async def work(client: OrdersClient, shop_id: str) -> None:
        found = await client.counts(shop_id)
        if as_json:
            echo(dumps(found))
            return
        statuses = await list_statuses(client.sessions, shop_id)
        echo(render_counts(shop_id, found, statuses))

    _run(work, shop)
