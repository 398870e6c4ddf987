"""The cart's clocks: deadlines from its state, and the timers that are due.

``reschedule`` keeps the deadlines in step with the state (every change calls it);
``tick`` applies every timer that is due, earliest first. Pure: the workflow gives ``now``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows import reminders
from workflows.codes import CartState, JournalKind, LockReason
from workflows.journal import SYSTEM, journal
from workflows.state import Cart


def reschedule(cart: Cart) -> None:
    """Set the cart's deadlines from its state; ``None`` where no timer applies."""
    policy = cart.policy
    cart.abandon_at = cart.lock_at = cart.expire_at = cart.retire_at = None
    activity = cart.last_activity_at or cart.created_at
    state = cart.state
    if state in (CartState.ACTIVE, CartState.CHECKOUT) and activity is not None:
        cart.abandon_at = activity + timedelta(seconds=policy.abandon_after_seconds)
    if state is CartState.PAYMENT_PENDING and cart.payment_started_at is not None:
        cart.lock_at = cart.payment_started_at + timedelta(seconds=policy.lock_after_seconds)
    if state.is_open and activity is not None:
        cart.expire_at = activity + timedelta(seconds=policy.lifetime_seconds)
    order = cart.order
    if state is CartState.ORDERED and order is not None and order.managed:
        # The order phase: the workflow carries the order until a final status.
        if order.final and order.final_at is not None:
            last = max(order.final_at, cart.updated_at or order.final_at)
            cart.retire_at = last + timedelta(seconds=policy.retire_after_seconds)
    elif state is CartState.ORDERED and order is not None and cart.ordered_at is not None:
        if order.paid:
            paid_at = order.paid_at or cart.ordered_at
            cart.retire_at = paid_at + timedelta(seconds=policy.retire_after_seconds)
        else:
            # An order that is not fully paid waits for its money (a bank transfer may
            # take days) until its lifetime ends.
            cart.retire_at = cart.ordered_at + timedelta(seconds=policy.lifetime_seconds)
    if state.is_final and cart.closed_at is not None:
        # Late events (a payment after expiry, say) extend the wait from the last change.
        last = max(cart.closed_at, cart.updated_at or cart.closed_at)
        cart.retire_at = last + timedelta(seconds=policy.retire_after_seconds)


def next_deadline(cart: Cart) -> datetime | None:
    """The earliest timer of the cart (including ``retire_at``), or ``None``."""
    deadlines = [
        d
        for d in (
            cart.abandon_at,
            cart.lock_at,
            cart.expire_at,
            cart.retire_at,
            reminders.next_due(cart),
        )
        if d
    ]
    return min(deadlines) if deadlines else None


def due_timer(cart: Cart, now: datetime) -> tuple[datetime, str] | None:
    """The earliest state timer due at ``now`` (``expire``, ``lock`` or ``abandon``)."""
    due = [
        (deadline, name)
        for name, deadline in (
            ("expire", cart.expire_at),
            ("lock", cart.lock_at),
            ("abandon", cart.abandon_at),
        )
        if deadline is not None and deadline <= now
    ]
    return min(due) if due else None


def fire(cart: Cart, name: str, deadline: datetime) -> None:
    """Apply one timer at its deadline (the caller bumps the version and reschedules)."""
    if name == "expire":
        cart.state = CartState.EXPIRED
        cart.closed_at = deadline
        journal(cart, deadline, JournalKind.CART_EXPIRED, SYSTEM)
    elif name == "lock":
        lock(cart, deadline, LockReason.NO_PAYMENT_RESULT)
    else:
        cart.state = CartState.ABANDONED
        cart.abandoned_at = deadline
        journal(cart, deadline, JournalKind.CART_ABANDONED, SYSTEM)
        reminders.started(cart)


def lock(cart: Cart, now: datetime, reason: LockReason) -> None:
    cart.state = CartState.LOCKED
    cart.lock_reason = reason
    cart.locked_at = now
    journal(cart, now, JournalKind.CART_LOCKED, SYSTEM, str(reason))


def is_retired(cart: Cart, now: datetime) -> bool:
    """The workflow may finish: the cart is ordered or closed and its wait is over."""
    return cart.retire_at is not None and cart.retire_at <= now
