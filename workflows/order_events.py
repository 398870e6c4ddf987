"""What happens to an order (the order phase of a cart): admin actions, read by
``workflows.order_parsing``, and the answers of the order phase's own effects.
"""

# No ``from __future__ import annotations``: see ``workflows.state``.
from dataclasses import dataclass, field

from workflows.events import AdminAction, CartLine
from workflows.order_contract import OrderStatuses, StatusMailResult, StockMoveResult


@dataclass
class SetOrderStatus(AdminAction):
    """An admin sets the order's status (a locked cart becomes an order with it).
    ``statuses``: the shop's registry, read by the workflow before it applies the event
    (``None`` while it is checked before that: the validator)."""

    status: str = ""
    statuses: OrderStatuses | None = None


@dataclass
class EditDelivery(AdminAction):
    """The delivery fields given replace the order's (``cleared``: set to nothing)."""

    changes: dict[str, object] = field(default_factory=dict)


@dataclass
class EditOrderLines(AdminAction):
    lines: list[CartLine] = field(default_factory=list)


@dataclass
class RecordPayment(AdminAction):
    """A payment (or a refund) received outside the gateways, recorded by an admin."""

    kind: str = "payment"
    amount: int = 0
    currency: str = ""
    reference: str | None = None


@dataclass
class AddOrderNote(AdminAction):
    pass


# --------------------------------------------------------------------------- effects


@dataclass
class OrderManaged:
    """The workflow carries this order through its statuses (the order phase)."""


@dataclass
class OrderStatusesRead:
    """The registry the workflow read for the order's status entries waiting for it."""

    statuses: OrderStatuses


@dataclass
class StockMoved:
    result: StockMoveResult


@dataclass
class StatusMailDone:
    result: StatusMailResult
