"""What an order status is, the defaults every shop starts with, and the rules every edit
of a shop's statuses follows (pure functions, no I/O).

The store (``activities.order_statuses``, which re-exports these names: import them from
there) locks a shop's statuses, reads them, asks these functions for the result and writes
it. Keeping the rules pure lets tests check them on thousands of random edit sequences.

A status (CS-Cart, DOMAIN.md section 3) is one upper-case letter ``A``-``Z``, so a shop has
at most ``MAX_STATUSES`` (26). Every refusal is a ``StatusRefused`` with a ``lower_snake``
code, and nothing is silently changed: no trimming, no clamping, no coercion of types. Two
inputs are normalised, and only these: a letter is upper-cased (``p`` is ``P``) and a
colour lower-cased (``#A0B1C2`` is ``#a0b1c2``).

==========================  ===============================================================
``status_limit_reached``    adding a 27th status (checked before the letter: with 26
                            statuses every letter is taken)
``status_letter_taken``     adding (or re-lettering to) a letter another status has
``status_builtin``          deleting or re-lettering a default status; turning ``paid``
                            off for ``P`` or ``C`` (they always count as paid, as in
                            CS-Cart, however they are renamed)
``unknown_status``          the shop has no status with that letter
``status_hidden``           ``N`` Incomplete asked for by an admin (``for_admin``); an
                            edit of ``N`` other than its name, colour and position (its
                            flags stay off, and it stays hidden)
``invalid_status``          a letter that is not exactly one ASCII letter; a name that is
                            empty, longer than 64 characters, starts or ends with a space
                            or holds control characters (lone surrogates, line
                            breaks); a colour not ``#rrggbb``; a
                            position not an integer from 0 to 1,000,000; a flag not a
                            boolean; an inventory effect not ``decrease`` / ``increase`` /
                            ``none``; an edit naming no field or a field that cannot be
                            edited (``hidden``, ``builtin``: only ``N`` is hidden and
                            the defaults are the builtin statuses)
``invalid_shop_id``         not a valid shop id (``workflows.validation.valid_id``)
``invalid_admin``           ``by`` (who edits) is not a name of 1-64 characters
==========================  ===============================================================

The defaults (``DEFAULT_STATUSES``) and why they are so: see ``activities.order_statuses``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, NamedTuple, get_args

from activities.checks import checked_shop_id

#: one letter each, A-Z
MAX_STATUSES = 26
MAX_NAME = 64
MAX_POSITION = 1_000_000
#: a new status's colour when none is given (a neutral grey)
DEFAULT_COLOUR = "#9e9e9e"
#: positions are spaced so an admin can put a status between two others
POSITION_STEP = 10
#: the hidden initial status: the order waits for the payment gateway; no admin sets it
HIDDEN_LETTER = "N"
#: they always count as paid (CS-Cart), however they are renamed
ALWAYS_PAID = frozenset({"P", "C"})
#: what ``N`` lets an admin change (the rest of it is fixed: it changes nothing)
HIDDEN_EDITABLE = frozenset({"name", "colour", "position"})
#: ``who edits`` is kept as the registry's last editor: at most this long
MAX_ADMIN = 64

InventoryEffect = Literal["decrease", "increase", "none"]
INVENTORY_EFFECTS: tuple[str, ...] = get_args(InventoryEffect)

_LETTER_RE = re.compile(r"^[A-Za-z]\Z")
_COLOUR_RE = re.compile(r"^#[0-9A-Fa-f]{6}\Z")


class StatusRefused(Exception):
    """An order-status request that cannot be applied; ``code`` is a ``lower_snake`` error
    code (see the module's table). Nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class OrderStatusDef:
    """One order status of a shop.

    ``paid``: an order with it counts as paid. ``final``: the order is finished (nothing
    more happens to it unless an admin changes its status). ``notify_customer`` /
    ``notify_department``: setting it e-mails the customer / the orders department.
    ``inventory``: setting it takes stock (``decrease``), gives it back (``increase``) or
    changes nothing (``none``). ``contents_editable``: the order's lines and delivery can
    be edited while it has this status. ``hidden``: only ``N`` (never set by an admin).
    ``builtin``: a default, which cannot be deleted and keeps its letter.
    """

    letter: str
    name: str
    colour: str
    position: int
    paid: bool = False
    final: bool = False
    notify_customer: bool = False
    notify_department: bool = False
    inventory: InventoryEffect = "none"
    contents_editable: bool = False
    hidden: bool = False
    builtin: bool = False


#: the fields ``edit`` may change (``letter`` only for a status that is not a default)
EDITABLE_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(OrderStatusDef) if f.name not in ("hidden", "builtin")
)


class StatusSnapshot(NamedTuple):
    """What an order records when its status is set: the letter, and the name and colour
    the status had then. The order's history shows these, so renaming, recolouring or
    deleting the status later (or giving its letter to a new status) never makes it
    unreadable."""

    letter: str
    name: str
    colour: str


def status_snapshot(status: OrderStatusDef) -> StatusSnapshot:
    """The ``(letter, name, colour)`` an order records when ``status`` is set on it."""
    return StatusSnapshot(status.letter, status.name, status.colour)


# --------------------------------------------------------------------------- the defaults


#: the short names of the flags in the defaults table below
_FLAG_NAMES = {
    "paid": "paid",
    "final": "final",
    "customer": "notify_customer",
    "department": "notify_department",
    "contents": "contents_editable",
}


def _default(
    letter: str, name: str, colour: str, position: int, inventory: InventoryEffect, flags: str
) -> OrderStatusDef:
    return OrderStatusDef(
        letter=letter,
        name=name,
        colour=colour,
        position=position,
        inventory=inventory,
        hidden=letter == HIDDEN_LETTER,
        builtin=True,
        **{_FLAG_NAMES[flag]: True for flag in flags.split()},
    )


#: every shop's statuses until it edits them (in ``position`` order); all are defaults
#: (``builtin``): they cannot be deleted and keep their letters
DEFAULT_STATUSES: tuple[OrderStatusDef, ...] = (
    _default("O", "Open", "#1e88e5", 10, "decrease", "customer department"),
    _default("P", "Processed", "#43a047", 20, "decrease", "paid customer department"),
    _default("C", "Complete", "#2e7d32", 30, "decrease", "paid final customer"),
    # the fulfilment stages (seed 002)
    _default("A", "Awaiting", "#90caf9", 40, "decrease", "contents"),
    _default("H", "Awaiting (has payments)", "#42a5f5", 50, "decrease", "contents"),
    _default("R", "Preparing shipment", "#7e57c2", 60, "decrease", "customer contents"),
    _default("S", "Shipped", "#26a69a", 70, "decrease", "customer"),
    _default("V", "Delivered", "#1b5e20", 80, "decrease", "final customer"),
    # waiting for something
    _default("B", "Backordered", "#fb8c00", 90, "none", "customer department"),
    _default("Y", "Awaiting call", "#fdd835", 100, "none", "department"),
    # ended without a sale
    _default("F", "Failed", "#e53935", 110, "increase", "final customer"),
    _default("D", "Declined", "#c62828", 120, "increase", "final customer"),
    _default("I", "Cancelled", "#757575", 130, "increase", "final customer department"),
    # the hidden initial status: the order waits for the payment gateway
    _default("N", "Incomplete", "#bdbdbd", 140, "none", ""),
)
DEFAULT_LETTERS = frozenset(status.letter for status in DEFAULT_STATUSES)


# --------------------------------------------------------------------------- values


def normalize_letter(raw: object) -> str:
    """``raw`` as a status letter: exactly one ASCII letter, upper-cased."""
    if not isinstance(raw, str) or not _LETTER_RE.match(raw):
        raise StatusRefused(
            "invalid_status", f"a status letter is exactly one letter A-Z, not {raw!r}"
        )
    return raw.upper()


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise StatusRefused("invalid_status", "a status's name must be a non-empty text")
    if len(name) > MAX_NAME:
        raise StatusRefused(
            "invalid_status", f"the name has {len(name)} characters; at most {MAX_NAME}"
        )
    if name != name.strip():
        raise StatusRefused("invalid_status", "the name must not start or end with a space")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp") for char in name):
        raise StatusRefused(
            "invalid_status",
            "the name must not hold control characters, lone surrogates or line breaks",
        )
    return name


def check_colour(colour: object) -> str:
    """``#rrggbb`` (hex digits of either case), lower-cased."""
    if not isinstance(colour, str) or not _COLOUR_RE.match(colour):
        raise StatusRefused(
            "invalid_status", f"a colour is written #rrggbb (e.g. #1e88e5), not {colour!r}"
        )
    return colour.lower()


def check_position(position: object) -> int:
    if isinstance(position, bool) or not isinstance(position, int):
        raise StatusRefused("invalid_status", f"a position is an integer, not {position!r}")
    if not 0 <= position <= MAX_POSITION:
        raise StatusRefused(
            "invalid_status", f"a position is from 0 to {MAX_POSITION:,}, not {position}"
        )
    return position


def check_flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise StatusRefused("invalid_status", f"{what} must be true or false, not {value!r}")
    return value


def check_inventory(value: object) -> InventoryEffect:
    if value not in INVENTORY_EFFECTS:
        raise StatusRefused(
            "invalid_status",
            f"the inventory effect is one of {', '.join(INVENTORY_EFFECTS)}, not {value!r}",
        )
    return value  # type: ignore[return-value]


def check_shop_id(shop_id: object) -> str:
    return checked_shop_id(shop_id, StatusRefused)


def check_admin(by: object) -> None:
    """``by`` (who edits): ``None`` or a printable name of 1-64 characters."""
    if by is None:
        return
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_ADMIN or not by.isprintable():
        raise StatusRefused(
            "invalid_admin", f"who edits is a printable name of 1-{MAX_ADMIN} characters"
        )


_CHECKS = {
    "letter": normalize_letter,
    "name": check_name,
    "colour": check_colour,
    "position": check_position,
    "inventory": check_inventory,
}


def check_changes(changes: Mapping[str, Any], letter: object = None) -> dict[str, Any]:
    """``changes`` (field name to new value) of status ``letter`` checked and normalised,
    before any lock."""
    if "hidden" in changes and letter is not None and normalize_letter(letter) == HIDDEN_LETTER:
        raise StatusRefused(
            "status_hidden", f"{HIDDEN_LETTER} is the hidden initial status: it stays hidden"
        )
    if not changes:
        raise StatusRefused(
            "invalid_status",
            f"nothing to change: give at least one of {', '.join(EDITABLE_FIELDS)}",
        )
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise StatusRefused(
            "invalid_status",
            f"cannot edit {', '.join(unknown)} (editable: {', '.join(EDITABLE_FIELDS)})",
        )
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        check = _CHECKS.get(name)
        checked[name] = check(value) if check else check_flag(value, name)
    return checked


# --------------------------------------------------------------------------- the rules


def ordered(statuses: Iterable[OrderStatusDef]) -> tuple[OrderStatusDef, ...]:
    """In the order admins see them: by position, then letter."""
    return tuple(sorted(statuses, key=lambda status: (status.position, status.letter)))


def find(statuses: Iterable[OrderStatusDef], letter: object) -> OrderStatusDef:
    """The status with ``letter`` (any case), or ``unknown_status``."""
    wanted = normalize_letter(letter)
    for status in statuses:
        if status.letter == wanted:
            return status
    raise StatusRefused("unknown_status", f"there is no order status {wanted}")


def for_admin(statuses: Iterable[OrderStatusDef], letter: object) -> OrderStatusDef:
    """The status an admin may set on an order: known, and not hidden."""
    status = find(statuses, letter)
    if status.hidden:
        raise StatusRefused(
            "status_hidden",
            f"{status.letter} ({status.name}) is the hidden initial status: only the"
            " checkout sets it, an admin cannot",
        )
    return status


def next_position(statuses: Iterable[OrderStatusDef]) -> int:
    """After the last status (``POSITION_STEP`` further), within ``MAX_POSITION``."""
    last = max((status.position for status in statuses), default=0)
    return min(last + POSITION_STEP, MAX_POSITION)


def _free(statuses: Iterable[OrderStatusDef], letter: str, *, but: str | None = None) -> None:
    for status in statuses:
        if status.letter == letter and status.letter != but:
            raise StatusRefused(
                "status_letter_taken",
                f"{letter} is already the status {status.name!r}: every status has its own letter",
            )


def new_status(
    statuses: Iterable[OrderStatusDef], letter: object, name: object, **values: Any
) -> OrderStatusDef:
    """The status to add to ``statuses``: ``values`` are its other editable fields (the
    rest get the ``OrderStatusDef`` defaults; ``position``: after the last)."""
    current = tuple(statuses)
    checked = check_changes({"letter": letter, "name": name, **values})
    if len(current) >= MAX_STATUSES:
        raise StatusRefused(
            "status_limit_reached",
            f"a shop has at most {MAX_STATUSES} order statuses (one per letter A-Z);"
            " delete one you added to make room",
        )
    _free(current, checked["letter"])
    checked.setdefault("colour", DEFAULT_COLOUR)
    checked.setdefault("position", next_position(current))
    return OrderStatusDef(**checked)


def edited_status(
    statuses: Iterable[OrderStatusDef], letter: object, changes: Mapping[str, Any]
) -> tuple[OrderStatusDef, OrderStatusDef]:
    """The status ``letter`` of ``statuses`` and what ``changes`` make of it."""
    current = tuple(statuses)
    checked = check_changes(changes, letter)
    status = find(current, letter)
    if status.hidden and set(checked) - HIDDEN_EDITABLE:
        raise StatusRefused(
            "status_hidden",
            f"{status.letter} ({status.name}) is the hidden initial status: only its name,"
            " colour and position can change",
        )
    new_letter = checked.get("letter", status.letter)
    if new_letter != status.letter:
        if status.builtin:
            raise StatusRefused(
                "status_builtin",
                f"{status.letter} ({status.name}) is a default status: its letter never changes",
            )
        _free(current, new_letter, but=status.letter)
    if status.letter in ALWAYS_PAID and checked.get("paid") is False:
        raise StatusRefused(
            "status_builtin",
            f"{status.letter} ({status.name}) always counts as paid, however it is named",
        )
    return status, replace(status, **checked)


def deleted_status(statuses: Iterable[OrderStatusDef], letter: object) -> OrderStatusDef:
    """The status ``letter`` of ``statuses``, if it may be deleted."""
    status = find(statuses, letter)
    if status.builtin:
        raise StatusRefused(
            "status_builtin",
            f"{status.letter} ({status.name}) is a default status: it cannot be deleted"
            " (rename or recolour it instead)",
        )
    return status
