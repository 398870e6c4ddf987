"""Formatting for the command line: money, times, tables, carts as text and as JSON.

Pure functions of the contract's dataclasses and the read model's rows; no I/O. Text that
came from outside (names, skus, notes, gateway details) is shown with its control
characters escaped (``safe``): an item name cannot move the cursor, clear the screen or
forge a line of the output. JSON (``jsonable``: the CLI's ``--json``, the admin API's
answers) keeps the exact text, its own escaping makes it safe to print, but for a lone
surrogate, which has no UTF-8 form (no answer or output could be written): a cart stored
before the text rules may hold one, and JSON shows it escaped (``\\ud800``, as
``readable`` does: the console's pages show their text ``readable``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from workflows.codes import currency_exponent
from workflows.contract import Cart, CartState, JournalEntry
from workflows.validation import escape_text

#: a lone surrogate: no UTF-8 form (``workflows.validation``'s rules refuse it in new text)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

# --------------------------------------------------------------------------- safe text


def readable(text: str) -> str:
    """``text`` with its control characters but tab and line breaks, and its lone
    surrogates, escaped (``\\x00``, ``\\x1b``, ``\\ud800``): the escaping of the payment
    results the workflow keeps (``workflows.validation.escape_text``), for text a cart
    took before the rules (``outside-text-checked``)."""
    return escape_text(text, multiline=True)


def encodable(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (``\\ud800``, as
    ``readable`` writes it), so it has a UTF-8 form; any other character kept."""
    if text.isascii():
        return text
    return _SURROGATE_RE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def safe(text: object) -> str:
    """``text`` with every control or format character escaped (``\\x1b``, ``\\n``,
    ``\\u202e`` ...), so it prints as one harmless line."""
    value = str(text)
    if value.isprintable():
        return value
    out = []
    for char in value:
        if char.isprintable() or (char == " "):
            out.append(char)
        elif unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


# --------------------------------------------------------------------------- money


#: ISO 4217 minor-unit exponents that are not 2 (everything else has cents).
def format_money(amount: int | None, currency: str | None) -> str:
    """Minor units as a decimal amount with its currency: ``2100, "EUR"`` is ``21.00 EUR``."""
    if amount is None:
        return "-"
    exponent = currency_exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**exponent)
    text = f"{sign}{whole:,}" + (f".{fraction:0{exponent}d}" if exponent else "")
    return f"{text} {currency}" if currency else text


# --------------------------------------------------------------------------- times


def format_time(value: datetime | None) -> str:
    """A UTC time to the second (``2025-01-31 17:04:05``), or ``-``."""
    if value is None:
        return "-"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def format_relative(value: datetime | None, now: datetime) -> str:
    """``in 4m 10s`` / ``2h 5m ago`` relative to ``now``."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = int((value - now).total_seconds())
    text = format_duration(abs(seconds))
    return f"in {text}" if seconds >= 0 else f"{text} ago"


def format_duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s" if seconds else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


# --------------------------------------------------------------------------- tables


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, right: Iterable[int] = ()
) -> str:
    """A plain-text table; columns listed in ``right`` are right-aligned."""
    body = [[safe(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    aligned = set(right)

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in aligned else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in body)])


def state_label(state: CartState | str, lock_reason: str | None = None) -> str:
    return f"{state} ({lock_reason})" if lock_reason else str(state)


def order_label(number: int | None, status: str | None) -> str:
    if status is None:
        return "-"
    return f"{number if number is not None else '(numbering)'} ({status})"


# --------------------------------------------------------------------------- JSON


def jsonable(value: Any) -> Any:
    """Dataclasses, enums and datetimes as JSON values (datetimes in ISO 8601), every text
    ``encodable``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {encodable(str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(jsonable(value), indent=2, ensure_ascii=False)


def cart_json(cart: Cart, *, source: str = "workflow") -> dict[str, Any]:
    """The whole cart (every field) plus what it computes: total, items, needs_admin."""
    data: dict[str, Any] = jsonable(cart)
    data["total"] = cart.total
    data["item_count"] = cart.item_count
    data["needs_admin"] = cart.needs_admin
    data["source"] = source
    return data


# --------------------------------------------------------------------------- one cart

PAYMENT_HEADERS = [
    "ATTEMPT",
    "METHOD",
    "GATEWAY",
    "STATUS",
    "AMOUNT",
    "PAID",
    "CARD",
    "STARTED",
    "RESULT",
]


def render_cart(cart: Cart, *, now: datetime, journal_entries: int = 10) -> str:
    """The cart for a human: state, totals, lines, customer, payments, order, attention,
    deadlines and the last journal entries."""
    money = cart.currency
    out: list[str] = []
    flags = "  ** needs an admin **" if cart.needs_admin else ""
    out.append(f"cart {safe(cart.cart_id)} (shop {safe(cart.shop_id)}){flags}")
    out.append(f"  state    {state_label(cart.state, cart.lock_reason)}")
    out.append(
        f"  total    {format_money(cart.total, money)}"
        f"  ({cart.item_count} item{'s' if cart.item_count != 1 else ''},"
        f" {len(cart.lines)} line{'s' if len(cart.lines) != 1 else ''})"
    )
    out.append(
        f"  version  {cart.version}   created {format_time(cart.created_at)}"
        f"   updated {format_time(cart.updated_at)} UTC"
    )
    if cart.customer_id:
        out.append(f"  customer id {safe(cart.customer_id)}")

    out.append("")
    out.append("Lines")
    if cart.lines:
        out.append(
            indent(
                table(
                    ["SKU", "NAME", "QTY", "UNIT PRICE", "SUBTOTAL"],
                    [
                        [
                            line.sku,
                            line.name,
                            str(line.quantity),
                            format_money(line.unit_price, money),
                            format_money(line.subtotal, money),
                        ]
                        for line in cart.lines
                    ],
                    right=(2, 3, 4),
                )
            )
        )
    else:
        out.append("  (empty)")

    out.append("")
    customer = cart.customer
    if customer is None:
        out.append("Customer  (not identified)")
    else:
        who = f"{customer.name} <{customer.email}>" if customer.name else customer.email
        extra = ["logged in" if customer.logged_in else "guest"]
        extra += [v for v in (customer.phone, customer.locale, customer.time_zone) if v]
        if customer.marketing_consent:
            extra.append("marketing ok")
        out.append(f"Customer  {safe(who)}  ({safe(', '.join(extra))})")

    out.append("")
    out.append("Payments" + ("  (* current attempt)" if cart.payments else ""))
    current = cart.current_attempt_id
    if cart.payments:
        out.append(
            indent(
                table(
                    PAYMENT_HEADERS,
                    [
                        [
                            p.attempt_id + (" *" if p.attempt_id == current else ""),
                            str(p.method) if p.method else "-",
                            p.gateway or "-",
                            str(p.status)
                            + (f" (confirmed by {p.confirmed_by})" if p.confirmed_by else ""),
                            format_money(p.amount, p.currency or money),
                            format_money(p.succeeded_amount, p.succeeded_currency or money)
                            if p.succeeded_amount is not None
                            else "-",
                            f"**** {p.card_last4}" if p.card_last4 else "-",
                            format_time(p.started_at),
                            format_time(p.result_at),
                        ]
                        for p in cart.payments
                    ],
                    right=(4, 5),
                )
            )
        )
    else:
        out.append("  (none)")

    out.append("")
    order = cart.order
    if order is None:
        out.append("Order     (none)")
    else:
        number = f"#{order.number}" if order.number is not None else "(number pending)"
        total = format_money(order.total, order.currency)
        if order.paid:
            paid = f"paid {format_time(order.paid_at)}"
        else:
            balance = format_money(order.total - order.amount_paid, order.currency)
            paid = f"not fully paid: {format_money(order.amount_paid, order.currency)} paid,"
            paid += f" {balance} due"
        out.append(
            f"Order     {number}  status {safe(order.status)}  {total}  {order.source}, {paid}"
        )

    if cart.attention:
        open_items = len(cart.open_attention)
        out.append("")
        out.append(f"Attention ({open_items} open; resolve with `cartkeeper carts resolve`)")
        for item in cart.attention:
            status = "OPEN" if item.is_open else "resolved"
            parts = [f"#{item.id}", status, str(item.kind), format_time(item.at)]
            if item.attempt_id:
                parts.append(f"attempt {safe(item.attempt_id)}")
            if item.amount is not None:
                parts.append(format_money(item.amount, money))
            if item.expected_amount is not None:
                parts.append(f"expected {format_money(item.expected_amount, money)}")
            if item.detail:
                parts.append(safe(item.detail))
            out.append("  " + "  ".join(parts))
            if not item.is_open:
                note = f": {safe(item.resolution)}" if item.resolution else ""
                out.append(
                    f"      resolved by {safe(item.resolved_by)} at"
                    f" {format_time(item.resolved_at)}{note}"
                )
        if cart.attention_dropped:
            out.append(f"  ({cart.attention_dropped} older items not kept)")

    deadlines = [
        (name, when)
        for name, when in (
            ("abandon", cart.abandon_at),
            ("lock", cart.lock_at),
            ("expire", cart.expire_at),
            ("retire", cart.retire_at),
        )
        if when is not None
    ]
    out.append("")
    if deadlines:
        out.append("Deadlines")
        for name, when in deadlines:
            out.append(f"  {name:<8}{format_time(when)} UTC  ({format_relative(when, now)})")
    else:
        out.append("Deadlines (none)")

    out.append("")
    shown = cart.journal[-journal_entries:] if journal_entries > 0 else []
    entries = len(cart.journal) + cart.journal_dropped
    out.append(f"Journal (last {len(shown)} of {entries})")
    out.append(indent(journal_table(shown)) if shown else "  (empty)")
    return "\n".join(out)


def journal_table(entries: Sequence[JournalEntry]) -> str:
    return table(
        ["AT (UTC)", "EVENT", "BY", "DETAIL"],
        [[format_time(e.at), str(e.kind), e.actor, e.detail or ""] for e in entries],
    )


def indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())
