"""The order phase's contract between the cart workflow, its activities and the clients:
message and activity names, and the activities' inputs and answers.

Admin messages (updates, and signals of the same name for the Temporal UI) take plain
JSON, read by ``workflows.order_parsing``:

- ``set_order_status`` ``{"admin": "ann", "status": "A", "note": "..."}``: a locked cart
  (a *not finished order*) becomes an order with that status; an order enters it;
- ``edit_delivery`` ``{"admin": "ann", "delivery": {"method": "dhl", "cost": 500,
  "tracking_code": "...", "recipient_name": "...", "email": "...", "phone": "...",
  "country": "DE", "city": "...", "postal_code": "...", "address": "...", "comment":
  "..."}}``: the fields given replace the order's (``null`` clears one, except the
  cost: give 0);
- ``edit_order_lines`` ``{"admin": "ann", "lines": [{"sku": ..., "name": ...,
  "quantity": 2, "unit_price": 450}]}``: the order's whole contents;
- ``record_payment`` ``{"admin": "ann", "kind": "payment" | "refund", "amount": 500,
  "currency": "EUR", "reference": "bank 2026-11-30", "note": "..."}``;
- ``add_order_note`` ``{"admin": "ann", "note": "..."}``.
"""

# No ``from __future__ import annotations``: see ``workflows.state``.
from dataclasses import dataclass, field

from workflows.events import CartLine
from workflows.order_state import Delivery, StatusDefinition, StockQuantity

SET_ORDER_STATUS = "set_order_status"
EDIT_DELIVERY = "edit_delivery"
EDIT_ORDER_LINES = "edit_order_lines"
RECORD_PAYMENT = "record_payment"
ADD_ORDER_NOTE = "add_order_note"

ACTIVITY_READ_ORDER_STATUSES = "read_order_statuses"
ACTIVITY_MOVE_ORDER_STOCK = "move_order_stock"
ACTIVITY_SEND_STATUS_MAIL = "send_order_status_mail"

#: ``record_payment``'s kinds
PAYMENT_KIND = "payment"
REFUND_KIND = "refund"


@dataclass
class ReadOrderStatusesInput:
    shop_id: str


@dataclass
class OrderStatuses:
    """A shop's order statuses (hidden ones included), by position."""

    statuses: list[StatusDefinition]
    #: the registry's version (0: the defaults, never edited)
    version: int = 0

    def find(self, letter: str) -> StatusDefinition | None:
        for status in self.statuses:
            if status.letter == letter:
                return status
        return None


@dataclass
class StockMoveInput:
    shop_id: str
    cart_id: str
    #: ``StockMove.key``: the same key never moves stock twice
    key: str
    #: ``take`` or ``give_back``
    kind: str
    lines: list[StockQuantity]


@dataclass
class StockMoveResult:
    key: str
    #: ``done`` or ``short`` (a take that found too little stock: nothing taken)
    outcome: str
    short: list[str] = field(default_factory=list)
    detail: str | None = None


@dataclass
class StatusMailInput:
    """The e-mail of one status entry of an order to one recipient. Sent at most once per
    (shop, cart, lineage, entry, recipient), whatever the retries."""

    shop_id: str
    cart_id: str
    lineage: str
    #: ``OrderStatusEntry.seq``
    entry: int
    #: ``customer`` or ``department``
    recipient: str
    letter: str
    status_name: str
    order_number: int | None
    total: int
    currency: str | None
    amount_paid: int
    lines: list[CartLine]
    customer_email: str | None = None
    customer_name: str | None = None
    locale: str | None = None
    delivery: Delivery | None = None
    #: who set the status (an admin's name, or ``system``)
    set_by: str = "system"
    note: str | None = None


@dataclass
class StatusMailResult:
    entry: int
    recipient: str
    #: ``sent`` or ``skipped``
    outcome: str
    message_id: str | None = None
    #: why it was skipped: ``no_address``, ``no_department``, ``send_failed``, ...
    reason: str | None = None
    detail: str | None = None
