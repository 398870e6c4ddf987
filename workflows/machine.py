"""The cart's state machine: plain Python, no Temporal, no I/O, no clock.

``apply(cart, event, now)`` checks an event against the cart and either refuses it with
``CartRefused`` (leaving the cart untouched) or changes the cart in place; it returns a
``Decision``: whether the cart changed and which effects that calls for (an order number,
a projection, search attributes). ``tick(cart, now)`` applies every timer that is due.

The rules live by concern: ``validation`` (what may happen), ``money`` (payments and
orders), ``transitions`` (everything else), ``timers`` (clocks), ``effects`` (what a change
calls for), ``journal`` (what happened, what needs an admin).

Rules that hold whatever the order of events (see ``tests/test_machine*.py``):
- a succeeded payment is never lost: it creates the order, or is recorded for an admin;
- an order is paid exactly when the succeeded payments in its currency cover its total,
  and every success that differs from what was due is flagged;
- payment results are idempotent by attempt id and status, and a late negative result
  never undoes a success; a result that cannot be read is recorded, never dropped;
- a cart has at most one order, and its number is assigned once;
- the currency is fixed by the first update; refused events change nothing;
- the cart is a function of its events alone (no hash seed, locale or clock).
"""

from __future__ import annotations

from datetime import datetime

from workflows import alerts, money, order_phase, reminders, transitions
from workflows.codes import CartState, ErrorCode, JournalKind
from workflows.effects import Decision, decide, search_fields
from workflows.events import (
    AdminActionRefused,
    CancellationRequested,
    CartRestored,
    CartUpdated,
    CheckoutStarted,
    ConfirmCart,
    CustomerIdentified,
    CustomerVisited,
    DeleteCart,
    LockAlertSent,
    OrderNumberAssigned,
    PaymentResultReported,
    PaymentResultUnreadable,
    PaymentStarted,
    RecoveryLinkClicked,
    ReminderOutcome,
    RemindersPlanned,
    ResolveAttention,
    RestoreFailed,
    SendReminder,
    UnlockCart,
)
from workflows.journal import SYSTEM
from workflows.order_checks import ORDER_EVENTS, check_order_event
from workflows.order_events import (
    AddOrderNote,
    EditDelivery,
    EditOrderLines,
    OrderManaged,
    OrderStatusesRead,
    RecordPayment,
    SetOrderStatus,
    StatusMailDone,
    StockMoved,
)
from workflows.state import Cart, JournalEntry
from workflows.timers import due_timer, fire, is_retired, next_deadline, reschedule
from workflows.validation import (
    CartRefused,
    check_admin,
    check_amount,
    check_attempt_id,
    check_currency,
    check_customer,
    check_lines,
    check_payment_result,
    valid_id,
)
from workflows.validation import check as validation_check

__all__ = [
    "CartRefused",
    "Decision",
    "apply",
    "check",
    "check_admin",
    "check_amount",
    "check_attempt_id",
    "check_currency",
    "check_customer",
    "check_lines",
    "check_payment_result",
    "is_retired",
    "next_deadline",
    "reschedule",
    "tick",
    "valid_id",
]


def apply(cart: Cart, event: object, now: datetime) -> Decision:
    """Apply ``event`` at ``now``; the ``Decision`` says whether the cart changed and what
    that calls for. Raises ``CartRefused`` (the cart unchanged) if the event is not
    allowed. Payment results are never refused: what cannot be acted on is recorded."""
    check(cart, event)
    before = search_fields(cart)
    first = cart.version == 0
    changed = _apply(cart, event, now)
    if changed:
        if first:
            journal_created(cart, now)
        _changed(cart, now)
    return decide(before, cart, changed)


#: the states of a cart at the payment step (``Cart.payment_step_at``)
PAYMENT_STEP_STATES = frozenset({CartState.CHECKOUT, CartState.PAYMENT_PENDING, CartState.LOCKED})


def check(cart: Cart, event: object) -> None:
    """Raise ``CartRefused`` if ``event`` cannot be applied to ``cart``; change nothing."""
    if isinstance(event, ORDER_EVENTS):
        check_order_event(cart, event)
    else:
        validation_check(cart, event)


def journal_created(cart: Cart, now: datetime) -> None:
    """The journal's first entry, before what the first event wrote."""
    cart.journal.insert(0, JournalEntry(at=now, kind=JournalKind.CART_CREATED, actor=SYSTEM))
    excess = len(cart.journal) - max(cart.policy.journal_limit, 1)
    if excess > 0:
        del cart.journal[:excess]
        cart.journal_dropped += excess


def _apply(cart: Cart, event: object, now: datetime) -> bool:
    match event:
        case PaymentResultReported():
            return money.payment_result(cart, event, now)
        case PaymentResultUnreadable():
            return money.payment_result_unreadable(cart, event, now)
        case PaymentStarted():
            return money.payment_started(cart, event, now)
        case ConfirmCart():
            money.confirm(cart, event, now)
            return True
        case CartUpdated():
            return transitions.cart_updated(cart, event, now)
        case CustomerIdentified():
            return transitions.customer_identified(cart, event, now)
        case CustomerVisited():
            return transitions.customer_visited(cart, event, now)
        case CheckoutStarted():
            return transitions.checkout_started(cart, now)
        case UnlockCart():
            return transitions.unlocked(cart, event, now)
        case DeleteCart():
            return transitions.deleted(cart, event, now)
        case ResolveAttention():
            return transitions.attention_resolved(cart, event, now)
        case AdminActionRefused():
            return transitions.admin_action_refused(cart, event, now)
        case CancellationRequested():
            return transitions.cancellation_requested(cart, event, now)
        case OrderNumberAssigned():
            return transitions.order_number_assigned(cart, event, now)
        case CartRestored():
            return transitions.restored(cart, event, now)
        case RestoreFailed():
            return transitions.restore_failed(cart, event, now)
        case RemindersPlanned():
            return reminders.planned(cart, event, now)
        case ReminderOutcome():
            return reminders.outcome(cart, event, now)
        case SendReminder():
            return reminders.requested(cart, event, now)
        case LockAlertSent():
            return alerts.lock_alert_sent(cart, event, now)
        case RecoveryLinkClicked():
            reminders.link_clicked(cart, event, now)
            if cart.state is CartState.ABANDONED:
                money.customer_active(cart, now)
            return True
        case SetOrderStatus():
            return order_phase.set_status(cart, event, now)
        case EditDelivery():
            return order_phase.delivery_edited(cart, event, now)
        case EditOrderLines():
            return order_phase.lines_edited(cart, event, now)
        case RecordPayment():
            return order_phase.payment_recorded(cart, event, now)
        case AddOrderNote():
            return order_phase.note_added(cart, event, now)
        case OrderManaged():
            return order_phase.manage(cart, now)
        case OrderStatusesRead():
            return order_phase.statuses_read(cart, event, now)
        case StockMoved():
            return order_phase.stock_moved(cart, event, now)
        case StatusMailDone():
            return order_phase.status_mail_done(cart, event, now)
        case _:
            raise CartRefused(ErrorCode.INVALID_INPUT, f"unknown event {type(event).__name__}")


def _changed(cart: Cart, now: datetime) -> None:
    reminders.stop(cart, now)
    cart.version += 1
    cart.updated_at = now
    if cart.created_at is None:
        cart.created_at = now
    if cart.state in PAYMENT_STEP_STATES and cart.lines:
        cart.payment_step_at = cart.payment_step_at or now
    else:
        cart.payment_step_at = None
    reschedule(cart)


def tick(cart: Cart, now: datetime) -> Decision:
    """Apply every timer due at ``now`` (earliest first)."""
    before = search_fields(cart)
    changed = False
    while (due := due_timer(cart, now)) is not None:
        deadline, name = due
        fire(cart, name, deadline)
        _changed(cart, now)
        changed = True
    if reminders.start_due(cart, now):
        _changed(cart, now)
        changed = True
    return decide(before, cart, changed)
