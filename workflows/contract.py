"""The data contract of a cart: states, codes, events, the snapshot and the policy.

Everything here is plain, deterministic Python (dataclasses and string enums) so it can be
passed through Temporal's sandbox, carried by the JSON payload converter and imported by
the worker, the activities and every client alike.

Conventions: money is integer minor units plus an ISO 4217 currency; time is
timezone-aware UTC; durations travel as seconds; states and codes are ``lower_snake``.
"""

# No ``from __future__ import annotations`` here: the payload converter resolves these
# dataclasses' type hints on every decode, and string annotations make that several times
# slower (measured: 7-12 ms for one Cart).
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

TASK_QUEUE = "cartkeeper"
WORKFLOW_NAME = "Cart"
FLOOR_WORKFLOW_NAME = "BenchFloor"


class CartState(StrEnum):
    ACTIVE = "active"
    CHECKOUT = "checkout"
    PAYMENT_PENDING = "payment_pending"
    LOCKED = "locked"
    ABANDONED = "abandoned"
    ORDERED = "ordered"
    EXPIRED = "expired"
    DELETED = "deleted"

    @property
    def is_final(self) -> bool:
        return self in (CartState.EXPIRED, CartState.DELETED)

    @property
    def is_open(self) -> bool:
        """The cart can still change through the storefront, timers or an admin."""
        return self not in (CartState.ORDERED, CartState.EXPIRED, CartState.DELETED)


class PaymentMethod(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class PaymentStatus(StrEnum):
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


#: Statuses a gateway may report; ``started`` is ours.
PAYMENT_RESULT_STATUSES = frozenset(
    {
        PaymentStatus.SUCCEEDED,
        PaymentStatus.FAILED,
        PaymentStatus.PENDING,
        PaymentStatus.CANCELLED,
        PaymentStatus.EXPIRED,
    }
)
NEGATIVE_PAYMENT_STATUSES = frozenset(
    {PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.EXPIRED}
)


class OrderSource(StrEnum):
    ONLINE_PAYMENT = "online_payment"
    OFFLINE_PAYMENT = "offline_payment"
    PENDING_PAYMENT = "pending_payment"
    ADMIN_CONFIRMATION = "admin_confirmation"


#: Letter-coded order statuses (CS-Cart). The full, configurable set arrives with orders.
ORDER_STATUS_PROCESSED = "P"
ORDER_STATUS_OPEN = "O"
ADMIN_CONFIRM_STATUSES = frozenset({ORDER_STATUS_PROCESSED, ORDER_STATUS_OPEN})


class LockReason(StrEnum):
    PAYMENT_PENDING = "payment_pending"
    NO_PAYMENT_RESULT = "no_payment_result"


class AttentionKind(StrEnum):
    """Why a cart needs an admin even though its state alone does not say so."""

    PAID_AFTER_CLOSE = "paid_after_close"
    POSSIBLE_DOUBLE_CHARGE = "possible_double_charge"
    PAYMENT_CURRENCY_MISMATCH = "payment_currency_mismatch"
    INVALID_PAYMENT_RESULT = "invalid_payment_result"


class JournalKind(StrEnum):
    CART_CREATED = "cart_created"
    ITEM_ADDED = "item_added"
    ITEM_REMOVED = "item_removed"
    QUANTITY_CHANGED = "quantity_changed"
    CUSTOMER_IDENTIFIED = "customer_identified"
    CUSTOMER_VISITED = "customer_visited"
    CUSTOMER_RETURNED = "customer_returned"
    CHECKOUT_STARTED = "checkout_started"
    PAYMENT_STARTED = "payment_started"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_PENDING = "payment_pending"
    PAYMENT_CANCELLED = "payment_cancelled"
    PAYMENT_EXPIRED = "payment_expired"
    PAYMENT_RESULT_IGNORED = "payment_result_ignored"
    ORDER_CREATED = "order_created"
    ORDER_PAID = "order_paid"
    ORDER_NUMBER_ASSIGNED = "order_number_assigned"
    CART_ABANDONED = "cart_abandoned"
    CART_LOCKED = "cart_locked"
    CART_UNLOCKED = "cart_unlocked"
    CART_CONFIRMED = "cart_confirmed"
    CART_EXPIRED = "cart_expired"
    CART_DELETED = "cart_deleted"
    ATTENTION_RAISED = "attention_raised"


class ErrorCode(StrEnum):
    """Why a request was refused. Each code carries the HTTP status an API answers with."""

    INVALID_INPUT = "invalid_input"
    INVALID_ID = "invalid_id"
    INVALID_CURRENCY = "invalid_currency"
    CURRENCY_MISMATCH = "currency_mismatch"
    INVALID_LINE = "invalid_line"
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_PRICE = "invalid_price"
    DUPLICATE_SKU = "duplicate_sku"
    TOO_MANY_LINES = "too_many_lines"
    INVALID_EMAIL = "invalid_email"
    INVALID_CUSTOMER = "invalid_customer"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_PAYMENT = "invalid_payment"
    INVALID_STATUS = "invalid_status"
    CART_EMPTY = "cart_empty"
    CART_LOCKED = "cart_locked"
    ALREADY_ORDERED = "already_ordered"
    CART_EXPIRED = "cart_expired"
    CART_DELETED = "cart_deleted"
    NOT_LOCKED = "not_locked"
    DUPLICATE_ATTEMPT = "duplicate_attempt"
    CART_NOT_FOUND = "cart_not_found"
    TEMPORAL_UNAVAILABLE = "temporal_unavailable"
    INTERNAL = "internal"

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self, 422)


_HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.CART_EMPTY: 409,
    ErrorCode.CART_LOCKED: 409,
    ErrorCode.ALREADY_ORDERED: 409,
    ErrorCode.NOT_LOCKED: 409,
    ErrorCode.DUPLICATE_ATTEMPT: 409,
    ErrorCode.CURRENCY_MISMATCH: 409,
    ErrorCode.CART_EXPIRED: 410,
    ErrorCode.CART_DELETED: 410,
    ErrorCode.CART_NOT_FOUND: 404,
    ErrorCode.TEMPORAL_UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


# --------------------------------------------------------------------------- events in


@dataclass
class CartLine:
    sku: str
    name: str
    quantity: int
    unit_price: int  # minor units of the cart's currency

    @property
    def subtotal(self) -> int:
        return self.quantity * self.unit_price


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


@dataclass
class PaymentResultReported:
    attempt_id: str
    status: PaymentStatus
    amount: int
    currency: str | None = None
    card_last4: str | None = None
    gateway: str | None = None


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
class OrderNumberAssigned:
    number: int


StorefrontEvent = (
    CartUpdated | CustomerIdentified | CustomerVisited | CheckoutStarted | PaymentStarted
)
AdminEvent = ConfirmCart | UnlockCart | DeleteCart
CartEvent = StorefrontEvent | AdminEvent | PaymentResultReported | OrderNumberAssigned


# --------------------------------------------------------------------------- the snapshot


@dataclass
class PaymentAttempt:
    attempt_id: str
    status: PaymentStatus
    amount: int
    method: PaymentMethod | None = None
    gateway: str | None = None
    currency: str | None = None
    card_last4: str | None = None
    started_at: datetime | None = None
    result_at: datetime | None = None
    #: every result reported for this attempt, oldest first (``status`` keeps the decisive one)
    results: list[PaymentStatus] = field(default_factory=list)


@dataclass
class Order:
    status: str
    source: OrderSource
    total: int
    currency: str | None
    created_at: datetime
    paid: bool
    attempt_id: str | None = None
    number: int | None = None
    paid_at: datetime | None = None


@dataclass
class Attention:
    kind: AttentionKind
    at: datetime
    attempt_id: str | None = None
    amount: int | None = None
    detail: str | None = None


@dataclass
class JournalEntry:
    at: datetime
    kind: JournalKind
    actor: str
    detail: str | None = None


@dataclass
class Cart:
    """The whole state of one cart. Carried across continue-as-new and returned by queries."""

    shop_id: str
    cart_id: str
    state: CartState = CartState.ACTIVE
    version: int = 0
    currency: str | None = None
    lines: list[CartLine] = field(default_factory=list)
    customer_id: str | None = None
    customer: CustomerInfo | None = None
    payments: list[PaymentAttempt] = field(default_factory=list)
    current_attempt_id: str | None = None
    order: Order | None = None
    attention: list[Attention] = field(default_factory=list)
    journal: list[JournalEntry] = field(default_factory=list)
    journal_dropped: int = 0
    lock_reason: LockReason | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_activity_at: datetime | None = None
    payment_started_at: datetime | None = None
    locked_at: datetime | None = None
    abandoned_at: datetime | None = None
    ordered_at: datetime | None = None
    closed_at: datetime | None = None  # expired or deleted
    # Timer deadlines, set by every transition (see ``machine.reschedule``).
    abandon_at: datetime | None = None
    lock_at: datetime | None = None
    expire_at: datetime | None = None
    #: when the workflow may finish: final carts and orders wait this long for late events
    retire_at: datetime | None = None

    @property
    def total(self) -> int:
        return sum(line.subtotal for line in self.lines)

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def needs_admin(self) -> bool:
        return self.state is CartState.LOCKED or bool(self.attention)

    def attempt(self, attempt_id: str) -> PaymentAttempt | None:
        for attempt in self.payments:
            if attempt.attempt_id == attempt_id:
                return attempt
        return None


@dataclass
class CartPolicy:
    """How a shop's carts behave. Travels in the workflow input; every field has a default."""

    abandon_after_seconds: int = 60 * 60
    lock_after_seconds: int = 30 * 60
    process_pending_payments: bool = False
    lifetime_seconds: int = 30 * 24 * 60 * 60
    #: how long an ordered, expired or deleted cart's workflow stays open for late events
    retire_after_seconds: int = 24 * 60 * 60
    journal_limit: int = 100
    #: continue-as-new once the history is this long (the server may suggest it sooner)
    continue_as_new_after_events: int = 2_000
    #: the read model and the search attributes are written at most this many seconds
    #: after a change (0: at once); ordered, locked, expired and deleted carts at once
    projection_interval_seconds: float = 5.0


# --------------------------------------------------------------------------- workflow I/O


@dataclass
class CartInput:
    shop_id: str
    cart_id: str
    policy: CartPolicy = field(default_factory=CartPolicy)
    #: the carried state on continue-as-new; ``None`` for a new run
    cart: Cart | None = None


@dataclass
class CartRecordRequest:
    shop_id: str
    cart_id: str


@dataclass
class ProjectCartInput:
    cart: Cart


@dataclass
class AllocateOrderNumberInput:
    shop_id: str
    cart_id: str


def workflow_id(shop_id: str, cart_id: str) -> str:
    return f"cart:{shop_id}:{cart_id}"


# Names of the activities the cart workflow calls (the workflow refers to them by name so
# that it never imports the database stack).
ACTIVITY_LOAD_CART_RECORD = "load_cart_record"
ACTIVITY_PROJECT_CART = "project_cart"
ACTIVITY_ALLOCATE_ORDER_NUMBER = "allocate_order_number"

# Update, signal and query names.
UPDATE_CART = "update_cart"
IDENTIFY_CUSTOMER = "identify_customer"
RECORD_VISIT = "record_visit"
START_CHECKOUT = "start_checkout"
START_PAYMENT = "start_payment"
CONFIRM = "confirm"
UNLOCK = "unlock"
DELETE = "delete"
AWAIT_ORDER = "await_order"
PAYMENT_RESULT = "payment_result"
GET_CART = "get_cart"


# ISO 4217 active codes (2024), so validation needs no I/O.
ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN
    ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
    MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS
    TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU
    XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL
    """.split()
)
