"""The cart's vocabulary: ``lower_snake`` string enums for states, statuses and codes.

Plain Python, no Temporal: imported by the workflow (through the sandbox), the activities
and every client.
"""

from enum import StrEnum


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
    #: recorded by an admin (a confirmed payment without a gateway attempt)
    MANUAL = "manual"


#: methods a storefront may start a payment with
STOREFRONT_METHODS = frozenset({PaymentMethod.ONLINE, PaymentMethod.OFFLINE})


class PaymentStatus(StrEnum):
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


#: Statuses a gateway may report; ``started`` is ours. Adding one later changes how a
#: recorded result is read: do it under ``workflow.patched`` (see ``workflows.parsing``).
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
    #: an admin set the status of a not finished order (a locked cart)
    ADMIN_STATUS = "admin_status"


#: Letter-coded order statuses (CS-Cart). The full, configurable set arrives with orders.
ORDER_STATUS_PROCESSED = "P"
ORDER_STATUS_OPEN = "O"
ADMIN_CONFIRM_STATUSES = frozenset({ORDER_STATUS_PROCESSED, ORDER_STATUS_OPEN})


class LockReason(StrEnum):
    PAYMENT_PENDING = "payment_pending"
    NO_PAYMENT_RESULT = "no_payment_result"


class AttentionKind(StrEnum):
    """Why a cart needs an admin even though its state alone does not say so."""

    #: a payment succeeded after the cart expired or was deleted
    PAID_AFTER_CLOSE = "paid_after_close"
    #: a payment succeeded for an order that other payments had already paid
    POSSIBLE_DOUBLE_CHARGE = "possible_double_charge"
    #: a payment in another currency than the cart's (it does not count as paid)
    PAYMENT_CURRENCY_MISMATCH = "payment_currency_mismatch"
    #: a payment result that could not be read, or one of its details could not
    INVALID_PAYMENT_RESULT = "invalid_payment_result"
    #: a succeeded amount differs from the order's total
    AMOUNT_MISMATCH = "amount_mismatch"
    #: the cart's contents changed after the payment attempt started
    CART_CHANGED_DURING_PAYMENT = "cart_changed_during_payment"
    #: a payment succeeded for a cart with no lines (or an id that never existed)
    PAYMENT_WITHOUT_CART = "payment_without_cart"
    #: the gateway failed a payment that an admin had confirmed as paid
    CONFIRMED_PAYMENT_FAILED = "confirmed_payment_failed"
    #: a new run of a closed cart found no earlier state to continue from
    CART_NOT_RESTORED = "cart_not_restored"
    #: more payment attempts than a cart keeps; the newest is recorded here
    TOO_MANY_PAYMENT_ATTEMPTS = "too_many_payment_attempts"


class JournalKind(StrEnum):
    CART_CREATED = "cart_created"
    CART_RESTORED = "cart_restored"
    ITEM_ADDED = "item_added"
    ITEM_REMOVED = "item_removed"
    QUANTITY_CHANGED = "quantity_changed"
    PRICE_CHANGED = "price_changed"
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
    PAYMENT_RESULT_UNREADABLE = "payment_result_unreadable"
    PAYMENT_CONFIRMED = "payment_confirmed"
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
    ATTENTION_RESOLVED = "attention_resolved"
    ADMIN_ACTION_REFUSED = "admin_action_refused"
    CANCELLATION_REQUESTED = "cancellation_requested"
    REMINDERS_PLANNED = "reminders_planned"
    REMINDER_SENT = "reminder_sent"
    REMINDER_SKIPPED = "reminder_skipped"
    REMINDER_DEFERRED = "reminder_deferred"
    RECOVERY_LINK_CLICKED = "recovery_link_clicked"
    LOCK_ALERT_SENT = "lock_alert_sent"
    ORDER_STATUS_CHANGED = "order_status_changed"
    ORDER_DELIVERY_CHANGED = "order_delivery_changed"
    ORDER_LINES_CHANGED = "order_lines_changed"
    ORDER_NOTE_ADDED = "order_note_added"
    PAYMENT_RECORDED = "payment_recorded"
    REFUND_RECORDED = "refund_recorded"
    STOCK_TAKEN = "stock_taken"
    STOCK_GIVEN_BACK = "stock_given_back"
    STOCK_SHORT = "stock_short"
    STOCK_MOVE_FAILED = "stock_move_failed"
    STATUS_MAIL_SENT = "status_mail_sent"
    STATUS_MAIL_SKIPPED = "status_mail_skipped"


class ReminderStatus(StrEnum):
    """A reminder of a cart's sequence: waiting for its time, being sent, or done."""

    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    SKIPPED = "skipped"


class SkipReason(StrEnum):
    """Why a reminder was not sent: every skip carries one (journal and statistics)."""

    #: the customer came back (the cart is active again)
    CART_ACTIVE = "cart_active"
    ORDERED = "ordered"
    #: the cart expired or was deleted
    CART_CLOSED = "cart_closed"
    #: the cart has no customer address
    NO_ADDRESS = "no_address"
    #: the shop requires marketing consent and the customer did not give it
    NO_CONSENT = "no_consent"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    #: the customer (same e-mail) has a newer cart or an order
    NEWER_CART = "newer_cart"
    #: the customer's cap of reminders per period is reached
    CAP_REACHED = "cap_reached"
    #: its time fell in quiet hours and the next allowed time is after the next reminder
    QUIET_HOURS = "quiet_hours"
    #: its time passed while the cart was busy or no worker ran: a later reminder is due
    #: too, or it is later than the campaign allows; never sent late in a burst
    OVERDUE = "overdue"
    #: the campaign no longer has this reminder (removed or made manual after planning)
    REMINDER_REMOVED = "reminder_removed"
    CAMPAIGN_DISABLED = "campaign_disabled"
    #: the campaign's rule sends the sequence once per cart, and it already ran
    ALREADY_RUN = "already_run"
    #: the mail relay refused the message for good (bad address, say)
    SEND_FAILED = "send_failed"
    #: an admin's manual send was already made for this reminder and cart
    ALREADY_SENT = "already_sent"


class ErrorCode(StrEnum):
    """Why a request was refused. Each code carries the HTTP status an API answers with."""

    INVALID_INPUT = "invalid_input"
    #: outside text holding a control character (tab and line breaks only in notes and
    #: addresses) or a lone surrogate: no database stores every one of them
    INVALID_TEXT = "invalid_text"
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
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    NOTHING_TO_RESOLVE = "nothing_to_resolve"
    CART_NOT_FOUND = "cart_not_found"
    NO_ADDRESS = "no_address"
    NOT_ABANDONED = "not_abandoned"
    REMINDER_ALREADY_SENT = "reminder_already_sent"
    INVALID_REMINDER = "invalid_reminder"
    #: the cart is neither an order nor a not finished order (a locked cart)
    NOT_AN_ORDER = "not_an_order"
    UNKNOWN_STATUS = "unknown_status"
    STATUS_HIDDEN = "status_hidden"
    CONTENTS_NOT_EDITABLE = "contents_not_editable"
    #: a status that counts as paid, for an order its payments do not cover
    PAYMENT_REQUIRED = "payment_required"
    REFUND_EXCEEDS_PAID = "refund_exceeds_paid"
    INVALID_DELIVERY = "invalid_delivery"
    #: the shop's order statuses could not be read (the database): try again
    STATUSES_UNAVAILABLE = "statuses_unavailable"
    TEMPORAL_UNAVAILABLE = "temporal_unavailable"
    #: the request reached Temporal but no worker applied it in time; it may still apply
    UPDATE_PENDING = "update_pending"
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
    ErrorCode.TOO_MANY_ATTEMPTS: 409,
    ErrorCode.CURRENCY_MISMATCH: 409,
    ErrorCode.NOTHING_TO_RESOLVE: 409,
    ErrorCode.CART_EXPIRED: 410,
    ErrorCode.CART_DELETED: 410,
    ErrorCode.CART_NOT_FOUND: 404,
    ErrorCode.NO_ADDRESS: 409,
    ErrorCode.NOT_ABANDONED: 409,
    ErrorCode.REMINDER_ALREADY_SENT: 409,
    ErrorCode.NOT_AN_ORDER: 409,
    ErrorCode.STATUS_HIDDEN: 409,
    ErrorCode.CONTENTS_NOT_EDITABLE: 409,
    ErrorCode.PAYMENT_REQUIRED: 409,
    ErrorCode.REFUND_EXCEEDS_PAID: 409,
    ErrorCode.STATUSES_UNAVAILABLE: 503,
    ErrorCode.TEMPORAL_UNAVAILABLE: 503,
    ErrorCode.UPDATE_PENDING: 504,
    ErrorCode.INTERNAL: 500,
}


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


#: minor units of the currencies whose minor unit is not 2 decimals (ISO 4217)
CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}


def currency_exponent(currency: str | None) -> int:
    """How many decimals the currency's minor unit has (2 unless ISO 4217 says otherwise)."""
    return CURRENCY_EXPONENTS.get(currency or "", 2)
