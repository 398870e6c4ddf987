"""What the order actions' options say (``starter.cli.order_actions``): lines given as
``SKU:QTY:UNIT_PRICE[:NAME]`` or JSON, the delivery's changes, checked as the workflow
checks them (``workflows.order_checks``, ``workflows.parsing``) before anything is sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from workflows.order_checks import DELIVERY_FIELDS

if TYPE_CHECKING:
    from workflows.events import CartLine

#: ``--clear`` takes these, spelt like the options (the cost is set, never cleared:
#: ``--cost 0``)
CLEARABLE = tuple(name.replace("_", "-") for name in DELIVERY_FIELDS if name != "cost")


def parse_line_spec(spec: str) -> tuple[str, int, int, str | None]:
    """``SKU:QTY:UNIT_PRICE[:NAME]`` (the name may hold colons): ``ValueError`` if it is
    not of that shape."""
    parts = spec.split(":", 3)
    if len(parts) < 3:
        raise ValueError(f"{spec!r} is not SKU:QTY:UNIT_PRICE[:NAME]")
    sku, quantity, price = parts[0], parts[1].strip(), parts[2].strip()
    name = parts[3] if len(parts) == 4 else None
    try:
        return sku, int(quantity), int(price), name if name else None
    except ValueError:
        raise ValueError(
            f"{spec!r}: QTY and UNIT_PRICE are whole numbers (the price in minor units)"
        ) from None


def lines_from_json(text: str) -> list[dict[str, Any]]:
    """A JSON list of lines, or an object with ``lines``: each line an object with
    ``sku``, ``quantity``, ``unit_price`` and (optionally) ``name``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error})") from None
    if isinstance(data, dict) and set(data) == {"lines"}:
        data = data["lines"]
    if not isinstance(data, list) or not all(isinstance(line, dict) for line in data):
        raise ValueError('give a list of lines, or {"lines": [...]}, each line an object')
    return data


def with_names(raw: list[dict[str, Any]], current: list[CartLine]) -> list[dict[str, Any]]:
    """Lines without a name take the order's current line's of the same SKU, else the SKU."""
    names = {line.sku: line.name for line in current}
    lines = []
    for line in raw:
        line = dict(line)
        if line.get("name") is None and isinstance(line.get("sku"), str):
            line["name"] = names.get(line["sku"], line["sku"])
        lines.append(line)
    return lines


def delivery_changes(given: dict[str, Any], clear: tuple[str, ...]) -> dict[str, Any]:
    """The delivery fields to change: those given, and ``None`` for those cleared (a
    field both given and cleared is a usage error). A country is upper-cased."""
    clear = tuple(name.replace("-", "_") for name in clear)
    both = sorted(name for name in clear if given.get(name) is not None)
    if both:
        option = both[0].replace("_", "-")
        raise click.UsageError(f"--clear {option} and --{option}: give one or the other")
    changes = {name: value for name, value in given.items() if value is not None}
    if isinstance(changes.get("country"), str):
        changes["country"] = changes["country"].upper()
    changes.update(dict.fromkeys(clear))
    return {name: changes[name] for name in DELIVERY_FIELDS if name in changes}


def check_changes(changes: dict[str, Any]) -> None:
    """The delivery's changes checked as the workflow will (``check_delivery``), before
    anything is sent."""
    from workflows.order_checks import check_delivery

    edge(lambda: check_delivery(changes))


def edge(check: Callable[[], Any]) -> Any:
    """A ``workflows`` check or parser run here: its refusal as a ``CartkeeperError``."""
    from starter.client import CartkeeperError
    from workflows.validation import CartRefused

    try:
        return check()
    except CartRefused as refused:
        raise CartkeeperError(refused.code, refused.message) from None


def check_admin_fields(admin: str, note: str | None, *, note_required: bool = False) -> None:
    """``--admin`` and ``--note`` as the workflow checks them (``check_admin``; an order's
    note, ``orders note``, is required)."""
    from workflows.codes import ErrorCode
    from workflows.validation import MAX_NOTE, check_text

    edge(lambda: check_text(admin, "admin", required=True, code=ErrorCode.INVALID_INPUT))
    edge(
        lambda: check_text(
            note,
            "note",
            required=note_required,
            code=ErrorCode.INVALID_INPUT,
            limit=MAX_NOTE,
            multiline=True,
        )
    )


def check_payment(amount: int, currency: str, reference: str | None) -> None:
    """``orders pay``'s amount, currency and reference as the workflow checks them."""
    from workflows.codes import ErrorCode
    from workflows.validation import check_amount, check_currency, check_text

    edge(lambda: check_amount(amount))
    edge(lambda: check_currency(currency))
    edge(lambda: check_text(reference, "reference", required=False, code=ErrorCode.INVALID_PAYMENT))


def check_raw_lines(raw: list[dict[str, Any]]) -> None:
    """The lines as the workflow reads and checks them (a missing name stands for one
    the order gives them later)."""
    from workflows.codes import ErrorCode
    from workflows.parsing import parse_line
    from workflows.validation import check_lines

    named = [{**line, "name": "-"} if line.get("name") is None else line for line in raw]
    parsed = edge(lambda: [parse_line(line, i) for i, line in enumerate(named)])
    edge(lambda: check_lines(parsed))
    if not parsed:
        edge(lambda: _refuse(ErrorCode.CART_EMPTY, "an order keeps at least one line"))


def _refuse(code: Any, message: str) -> None:
    from workflows.validation import CartRefused

    raise CartRefused(code, message)
