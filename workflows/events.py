"""What happens to a cart: the events the state machine applies.

Events arrive from outside as plain JSON and become these dataclasses only through
``workflows.parsing``, which refuses (or, for payment results, records) anything that does
not fit. Money is integer minor units; the currency is an ISO 4217 code.
"""

# No ``from __future__ import annotations``: see ``workflows.state``.
from dataclasses import dataclass
from datetime import datetime

from workflows.codes import (
    ORDER_STATUS_PROCESSED,
    PaymentMethod,
    PaymentStatus,
    ReminderStatus,
    SkipReason,
)


@dataclass
class CartLine:
    sku: str
    name: str
    quantity: int
    unit_price: int  # minor units of the cart's currency

    @property
    def subtotal(self) -> int:
        return self.quantity * self.unit_price


# --------------------------------------------------------------------------- storefront


@dataclass
class CartUpdated:
    """The storefront's whole cart: the lines replace the previous ones."""

    lines: list[CartLine]
    currency: str
    customer_id: str | None = None


@dataclass
class CustomerInfo:
    email: str
    name: str | None = None
    phone: str | None = None
    locale: str | None = None
    time_zone: str | None = None
    marketing_consent: bool = False
    logged_in: bool = False
    customer_id: str | None = None


@dataclass
class CustomerIdentified:
    customer: CustomerInfo


@dataclass
class CustomerVisited:
    page: str | None = None


@dataclass
class CheckoutStarted:
    pass


@dataclass
class PaymentStarted:
    attempt_id: str
    method: PaymentMethod
    gateway: str
    amount: int
    currency: str | None = None


# --------------------------------------------------------------------------- payment gateway


@dataclass
class PaymentResultReported:
    attempt_id: str
    status: PaymentStatus
    amount: int
    currency: str | None = None
    card_last4: str | None = None
    gateway: str | None = None


@dataclass
class PaymentResultUnreadable:
    """A payment result whose core (attempt, status, amount) could not be read. What could
    be read is kept; ``excerpt`` is the payload as received, card numbers masked."""

    problem: str
    excerpt: str
    attempt_id: str | None = None
    status: str | None = None
    amount: int | None = None


# --------------------------------------------------------------------------- admin


@dataclass
class AdminAction:
    admin: str = "admin"
    note: str | None = None


@dataclass
class ConfirmCart(AdminAction):
    status: str = ORDER_STATUS_PROCESSED


@dataclass
class UnlockCart(AdminAction):
    pass


@dataclass
class DeleteCart(AdminAction):
    pass


@dataclass
class ResolveAttention(AdminAction):
    """Resolve attention items: those with these ids, or every open one (``None``)."""

    items: list[int] | None = None


@dataclass
class AdminActionRefused:
    """An admin action sent as a signal was refused: it is kept in the journal."""

    action: str
    admin: str
    code: str
    reason: str


@dataclass
class CancellationRequested:
    """Temporal's "Request Cancellation": taken as an admin delete (with its checks)."""

    requested_by: str = "temporal"


# --------------------------------------------------------------------------- the workflow's own


@dataclass
class OrderNumberAssigned:
    number: int


@dataclass
class CartRestored:
    """A new run of a closed cart continues from its earlier state."""

    source: str
    run_id: str


@dataclass
class RestoreFailed:
    """A new run of a closed cart found nothing to continue from."""

    detail: str


# --------------------------------------------------------------------------- reminders


@dataclass
class PlannedReminder:
    reminder_id: str
    position: int
    name: str
    due_at: datetime
    variant: str | None = None
    #: already decided at planning (no address, no consent): skipped with this reason
    skipped: SkipReason | None = None


@dataclass
class RemindersPlanned:
    """The campaign's reminders for the cart's abandonment number ``sequence`` (the
    ``plan_reminders`` activity's answer)."""

    sequence: int
    campaign_version: int | None
    reminders: list[PlannedReminder]
    #: why nothing was planned (no campaign, the campaign's rule), for the journal
    note: str | None = None


@dataclass
class ReminderOutcome:
    """What the ``send_reminder`` activity did with one reminder."""

    reminder_id: str
    sequence: int
    #: ``sent``, ``skipped``, or ``planned`` (deferred to ``retry_at`` by quiet hours)
    status: ReminderStatus
    at: datetime
    reason: SkipReason | None = None
    detail: str | None = None
    message_id: str | None = None
    coupon_code: str | None = None
    retry_at: datetime | None = None
    #: the reminder's name and variant as the campaign has them (manual sends)
    name: str | None = None
    variant: str | None = None


@dataclass
class RecoveryLinkClicked:
    """The customer followed a reminder's recovery link (the web endpoint signals it)."""

    reminder_id: str
    coupon_code: str | None = None


@dataclass
class SendReminder(AdminAction):
    """An admin sends one reminder of the campaign (automatic or manual) to this cart now;
    the same checks apply at sending, and a reminder is never sent twice to a cart."""

    reminder_id: str = ""


@dataclass
class LockAlertSent:
    """The shop's admins were told that the cart is locked (since ``locked_at``)."""

    locked_at: datetime
    #: how many admins it went to (0: the shop has none; nothing was sent)
    recipients: int = 0
    detail: str | None = None
