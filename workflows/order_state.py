"""The order phase's part of the cart's state (``workflows.state.Order`` holds these): the
status entries, the delivery, the stock the order holds and the status e-mails.

Conventions as in ``workflows.state``: money in minor units, times timezone-aware UTC.
"""

# No ``from __future__ import annotations``: see ``workflows.state``.
from dataclasses import dataclass, field
from datetime import datetime

#: ``StatusDefinition.inventory``
INVENTORY_DECREASE = "decrease"
INVENTORY_INCREASE = "increase"
INVENTORY_NONE = "none"
INVENTORY_EFFECTS = (INVENTORY_DECREASE, INVENTORY_INCREASE, INVENTORY_NONE)

#: ``StockMove.kind``
STOCK_TAKE = "take"
STOCK_GIVE_BACK = "give_back"

#: ``StockMove.outcome`` and ``StockMoveResult.outcome``
MOVE_PENDING = "pending"
MOVE_DONE = "done"
#: a take that found too little stock of a tracked SKU: nothing was taken
MOVE_SHORT = "short"

#: ``StatusMail.recipient``
TO_CUSTOMER = "customer"
TO_DEPARTMENT = "department"
RECIPIENTS = (TO_CUSTOMER, TO_DEPARTMENT)

#: ``StatusMail.outcome`` and ``StatusMailResult.outcome``
MAIL_PENDING = "pending"
MAIL_SENT = "sent"
#: not sent, for a reason that will not change (no address, no department, refused)
MAIL_SKIPPED = "skipped"


@dataclass
class StatusDefinition:
    """One status of the shop's registry as the order phase needs it (what
    ``activities.order_statuses`` keeps, without position and ``builtin``)."""

    letter: str
    name: str
    colour: str
    paid: bool = False
    final: bool = False
    notify_customer: bool = False
    notify_department: bool = False
    inventory: str = INVENTORY_NONE
    contents_editable: bool = False
    hidden: bool = False


@dataclass
class OrderStatusEntry:
    """The order entered a status: kept with the name and colour it had then, so a
    renamed or deleted status never makes the order's history unreadable."""

    #: 1, 2, ... per order: the key of the entry's effects (stock, e-mails)
    seq: int
    letter: str
    at: datetime
    by: str
    name: str | None = None
    colour: str | None = None
    note: str | None = None
    #: whether the definition is known (an order created by a payment learns it from the
    #: registry after the fact; its effects are decided then)
    resolved: bool = False
    final: bool = False
    contents_editable: bool = False
    inventory: str = INVENTORY_NONE


@dataclass
class Delivery:
    method: str | None = None
    #: minor units of the order's currency
    cost: int = 0
    tracking_code: str | None = None
    recipient_name: str | None = None
    email: str | None = None
    phone: str | None = None
    #: ISO 3166-1 alpha-2
    country: str | None = None
    city: str | None = None
    postal_code: str | None = None
    address: str | None = None
    comment: str | None = None


@dataclass
class StockQuantity:
    sku: str
    quantity: int


@dataclass
class StockMove:
    """A take or give-back of the order's stock, applied once by its key."""

    key: str
    kind: str
    lines: list[StockQuantity]
    #: the status entry (or contents change) that called for it
    entry: int
    outcome: str = MOVE_PENDING
    at: datetime | None = None
    #: the SKUs that were short (a take that found too little stock)
    short: list[str] = field(default_factory=list)


@dataclass
class StatusMail:
    """The e-mail of one status entry to one recipient: sent at most once."""

    entry: int
    recipient: str
    letter: str
    outcome: str = MAIL_PENDING
    at: datetime | None = None
    message_id: str | None = None
    reason: str | None = None
