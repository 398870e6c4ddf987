"""The data contract of a cart: names, workflow and activity I/O, and re-exports.

Everything here is plain, deterministic Python (dataclasses and string enums) so it can be
passed through Temporal's sandbox, carried by the JSON payload converter and imported by
the worker, the activities and every client alike. The vocabulary lives in
``workflows.codes``, the events in ``workflows.events``, the cart's state in
``workflows.state``; this module re-exports them so that ``workflows.contract`` is the one
import a client needs.

Conventions: money is integer minor units plus an ISO 4217 currency; time is
timezone-aware UTC; durations travel as seconds; states and codes are ``lower_snake``.
"""

# No ``from __future__ import annotations``: see ``workflows.state``.
from dataclasses import dataclass, field
from datetime import datetime

from workflows.codes import (
    ADMIN_CONFIRM_STATUSES,
    ISO_4217,
    NEGATIVE_PAYMENT_STATUSES,
    ORDER_STATUS_OPEN,
    ORDER_STATUS_PROCESSED,
    PAYMENT_RESULT_STATUSES,
    STOREFRONT_METHODS,
    AttentionKind,
    CartState,
    ErrorCode,
    JournalKind,
    LockReason,
    OrderSource,
    PaymentMethod,
    PaymentStatus,
    ReminderStatus,
    SkipReason,
)
from workflows.events import (
    AdminAction,
    AdminActionRefused,
    CancellationRequested,
    CartLine,
    CartRestored,
    CartUpdated,
    CheckoutStarted,
    ConfirmCart,
    CustomerIdentified,
    CustomerInfo,
    CustomerVisited,
    DeleteCart,
    OrderNumberAssigned,
    PaymentResultReported,
    PaymentResultUnreadable,
    PaymentStarted,
    PlannedReminder,
    RecoveryLinkClicked,
    ReminderOutcome,
    RemindersPlanned,
    ResolveAttention,
    RestoreFailed,
    SendReminder,
    UnlockCart,
)
from workflows.order_contract import OrderStatuses
from workflows.state import (
    Attention,
    Cart,
    CartPolicy,
    CartView,
    JournalEntry,
    Order,
    PaymentAttempt,
    ReminderStep,
    view_of,
)

__all__ = [
    "ACTIVITY_ALLOCATE_ORDER_NUMBER",
    "ACTIVITY_PLAN_REMINDERS",
    "ACTIVITY_PROJECT_CART",
    "ACTIVITY_RESTORE_CART",
    "ACTIVITY_SEND_REMINDER",
    "ADMIN_CONFIRM_STATUSES",
    "AWAIT_ORDER",
    "CONFIRM",
    "DELETE",
    "FLOOR_WORKFLOW_NAME",
    "GET_CART",
    "IDENTIFY_CUSTOMER",
    "ISO_4217",
    "NEGATIVE_PAYMENT_STATUSES",
    "ORDER_STATUS_OPEN",
    "ORDER_STATUS_PROCESSED",
    "PAYMENT_RESULT",
    "PAYMENT_RESULT_STATUSES",
    "RECORD_VISIT",
    "RECOVERY_LINK_CLICKED",
    "RESOLVE",
    "SEND_REMINDER",
    "START_CHECKOUT",
    "START_PAYMENT",
    "STOREFRONT_METHODS",
    "TASK_QUEUE",
    "UNLOCK",
    "UPDATE_CART",
    "WORKFLOW_NAME",
    "AdminAction",
    "AdminActionRefused",
    "AllocateOrderNumberInput",
    "Attention",
    "AttentionKind",
    "CancellationRequested",
    "Cart",
    "CartEvent",
    "CartInput",
    "CartLine",
    "CartPolicy",
    "CartRestored",
    "CartState",
    "CartUpdated",
    "CartView",
    "CheckoutStarted",
    "ConfirmCart",
    "CustomerIdentified",
    "CustomerInfo",
    "CustomerVisited",
    "DeleteCart",
    "ErrorCode",
    "JournalEntry",
    "JournalKind",
    "LockReason",
    "Order",
    "OrderNumberAssigned",
    "OrderSource",
    "PaymentAttempt",
    "PaymentMethod",
    "PaymentResultReported",
    "PaymentResultUnreadable",
    "PaymentStarted",
    "PaymentStatus",
    "PlanRemindersInput",
    "PlannedReminder",
    "ProjectCartInput",
    "ProjectedCart",
    "RecoveryLinkClicked",
    "ReminderOutcome",
    "ReminderStatus",
    "ReminderStep",
    "RemindersPlanned",
    "ResolveAttention",
    "RestoreCartInput",
    "RestoreFailed",
    "RestoredCart",
    "SendReminder",
    "SendReminderInput",
    "SkipReason",
    "UnlockCart",
    "view_of",
    "workflow_id",
]

TASK_QUEUE = "cartkeeper"
WORKFLOW_NAME = "Cart"
FLOOR_WORKFLOW_NAME = "BenchFloor"

StorefrontEvent = (
    CartUpdated | CustomerIdentified | CustomerVisited | CheckoutStarted | PaymentStarted
)
AdminEvent = ConfirmCart | UnlockCart | DeleteCart | ResolveAttention
PaymentEvent = PaymentResultReported | PaymentResultUnreadable
CartEvent = (
    StorefrontEvent
    | AdminEvent
    | PaymentEvent
    | AdminActionRefused
    | CancellationRequested
    | OrderNumberAssigned
    | CartRestored
    | RestoreFailed
)


# --------------------------------------------------------------------------- workflow I/O


@dataclass
class CartInput:
    shop_id: str
    cart_id: str
    policy: CartPolicy = field(default_factory=CartPolicy)
    #: the carried state on continue-as-new; ``None`` for a new run
    cart: Cart | None = None
    #: on continue-as-new: the version the read model already holds
    projected_version: int = 0
    #: a new run of a cart whose earlier run (this run id) closed: continue from its state
    restore_run_id: str | None = None


@dataclass
class RestoreCartInput:
    shop_id: str
    cart_id: str
    #: the closed run to continue from
    run_id: str


@dataclass
class RestoredCart:
    """The state a new run continues from, and where it came from."""

    cart: Cart | None
    #: ``result`` (the run's result), ``query`` (a terminated run, replayed),
    #: ``read_model`` (the last projection) or ``none``
    source: str
    detail: str = ""


@dataclass
class ProjectCartInput:
    cart: Cart
    #: give the order its number first, and write the cart with it
    assign_number: bool = False
    #: with ``assign_number``: read the shop's order statuses too, and write the cart
    #: with them applied (``OrderStatusesRead``) after the number
    read_statuses: bool = False


@dataclass
class ProjectedCart:
    """What a projection wrote: the cart's version, and the order's number if it assigned
    one (applied at ``assigned_at``: the workflow applies the same), then the shop's order
    statuses if it was asked to read them (applied at the same time, after the number;
    ``None`` when they could not be read: the workflow reads them on its own)."""

    version: int
    number: int | None = None
    assigned_at: datetime | None = None
    statuses: OrderStatuses | None = None


@dataclass
class AllocateOrderNumberInput:
    shop_id: str
    cart_id: str
    #: the cart's lineage: a cart id reused after Temporal forgot the old cart gets its
    #: own number
    lineage: str = ""


@dataclass
class PlanRemindersInput:
    """Plan the reminders of a cart's abandonment number ``sequence``."""

    shop_id: str
    cart_id: str
    lineage: str
    sequence: int
    abandoned_at: datetime
    email: str | None = None
    marketing_consent: bool = False
    #: the reminders this cart was sent (or is being sent) already
    sent: list[str] = field(default_factory=list)


@dataclass
class SendReminderInput:
    """Send one reminder to the cart's customer, checking again first; idempotent per
    (cart, lineage, reminder): a retry finds what the first attempt did."""

    cart: Cart
    reminder_id: str
    sequence: int
    due_at: datetime
    variant: str | None = None
    manual: bool = False


def workflow_id(shop_id: str, cart_id: str) -> str:
    return f"cart:{shop_id}:{cart_id}"


# Names of the activities the cart workflow calls (the workflow refers to them by name so
# that it never imports the database stack).
ACTIVITY_RESTORE_CART = "restore_cart"
ACTIVITY_PROJECT_CART = "project_cart"
ACTIVITY_ALLOCATE_ORDER_NUMBER = "allocate_order_number"
ACTIVITY_PLAN_REMINDERS = "plan_reminders"
ACTIVITY_SEND_REMINDER = "send_reminder"

# Update, signal and query names. Admin actions are both updates (an answer, or a refusal)
# and signals of the same name (the Temporal UI and fire-and-forget tools).
UPDATE_CART = "update_cart"
IDENTIFY_CUSTOMER = "identify_customer"
RECORD_VISIT = "record_visit"
START_CHECKOUT = "start_checkout"
START_PAYMENT = "start_payment"
CONFIRM = "confirm"
UNLOCK = "unlock"
DELETE = "delete"
RESOLVE = "resolve"
SEND_REMINDER = "send_reminder"
#: a signal: the customer followed a recovery link (the web endpoint sends it)
RECOVERY_LINK_CLICKED = "recovery_link_clicked"
AWAIT_ORDER = "await_order"
PAYMENT_RESULT = "payment_result"
GET_CART = "get_cart"
