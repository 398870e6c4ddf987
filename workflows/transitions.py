"""Transitions of the cart other than payments (``workflows.money``) and timers
(``workflows.timers``): storefront activity, admin actions, the workflow's own events.

Each function applies an event that ``workflows.validation.check`` accepted and returns
whether the cart changed. Deterministic: no clock (``now`` is given), no set or dict
order that could differ between processes.
"""

from __future__ import annotations

from datetime import datetime

from workflows.codes import AttentionKind, CartState, JournalKind
from workflows.events import (
    AdminActionRefused,
    CancellationRequested,
    CartLine,
    CartRestored,
    CartUpdated,
    CustomerIdentified,
    CustomerVisited,
    DeleteCart,
    OrderNumberAssigned,
    ResolveAttention,
    RestoreFailed,
    UnlockCart,
)
from workflows.journal import (
    CUSTOMER,
    SYSTEM,
    admin_actor,
    journal,
    raise_attention,
    resolve_attention,
)
from workflows.money import customer_active
from workflows.state import Cart
from workflows.validation import CartRefused, check


def cart_updated(cart: Cart, event: CartUpdated, now: datetime) -> bool:
    before = {line.sku: line for line in cart.lines}
    after_skus = {line.sku for line in event.lines}
    for line in event.lines:
        old = before.get(line.sku)
        if old is None:
            journal(cart, now, JournalKind.ITEM_ADDED, CUSTOMER, f"{line.sku} x{line.quantity}")
            continue
        if old.quantity != line.quantity:
            journal(
                cart,
                now,
                JournalKind.QUANTITY_CHANGED,
                CUSTOMER,
                f"{line.sku} x{old.quantity} -> x{line.quantity}",
            )
        if old.unit_price != line.unit_price:
            journal(
                cart,
                now,
                JournalKind.PRICE_CHANGED,
                SYSTEM,
                f"{line.sku} {old.unit_price} -> {line.unit_price}",
            )
    # In the cart's own line order: never a set's, whose order depends on the hash seed.
    for line in cart.lines:
        if line.sku not in after_skus:
            journal(cart, now, JournalKind.ITEM_REMOVED, CUSTOMER, line.sku)
    new_lines = [CartLine(ln.sku, ln.name, ln.quantity, ln.unit_price) for ln in event.lines]
    if new_lines != cart.lines or event.currency != cart.currency:
        cart.contents_version += 1
    cart.lines = new_lines
    cart.currency = event.currency
    if event.customer_id is not None:
        cart.customer_id = event.customer_id
    customer_active(cart, now)
    if cart.state is CartState.PAYMENT_PENDING:
        # The customer came back from the gateway and changed the cart: shopping again. The
        # attempt stays on record, and its success would still create the order (flagged:
        # the cart changed during the payment).
        cart.state = CartState.ACTIVE
    return True


def customer_identified(cart: Cart, event: CustomerIdentified, now: datetime) -> bool:
    cart.customer = event.customer
    if event.customer.customer_id and not cart.customer_id:
        cart.customer_id = event.customer.customer_id
    journal(
        cart,
        now,
        JournalKind.CUSTOMER_IDENTIFIED,
        CUSTOMER,
        "logged in" if event.customer.logged_in else "guest",
    )
    customer_active(cart, now)
    return True


def customer_visited(cart: Cart, event: CustomerVisited, now: datetime) -> bool:
    journal(cart, now, JournalKind.CUSTOMER_VISITED, CUSTOMER, event.page)
    if cart.state.is_open and cart.state is not CartState.LOCKED:
        customer_active(cart, now)
    return True


def checkout_started(cart: Cart, now: datetime) -> bool:
    journal(cart, now, JournalKind.CHECKOUT_STARTED, CUSTOMER)
    customer_active(cart, now)
    cart.state = CartState.CHECKOUT
    return True


def unlocked(cart: Cart, event: UnlockCart, now: datetime) -> bool:
    journal(cart, now, JournalKind.CART_UNLOCKED, admin_actor(event.admin), event.note)
    cart.state = CartState.ACTIVE
    cart.lock_reason = None
    cart.last_activity_at = now
    return True


def deleted(cart: Cart, event: DeleteCart, now: datetime, actor: str | None = None) -> bool:
    if cart.state is CartState.DELETED:
        return False  # deleting twice is the same deletion
    journal(cart, now, JournalKind.CART_DELETED, actor or admin_actor(event.admin), event.note)
    cart.state = CartState.DELETED
    cart.closed_at = now
    cart.lock_reason = None
    return True


def attention_resolved(cart: Cart, event: ResolveAttention, now: datetime) -> bool:
    return bool(resolve_attention(cart, now, event.items, event.admin, event.note))


def admin_action_refused(cart: Cart, event: AdminActionRefused, now: datetime) -> bool:
    journal(
        cart,
        now,
        JournalKind.ADMIN_ACTION_REFUSED,
        admin_actor(event.admin),
        f"{event.action} signal refused: {event.code}: {event.reason}",
    )
    return True


CANCEL_NOTE = "cancellation requested in Temporal: taken as a delete"


def cancellation_requested(cart: Cart, event: CancellationRequested, now: datetime) -> bool:
    """Temporal's "Request Cancellation" deletes the cart where an admin delete may (the
    workflow keeps running for late payments); elsewhere it is refused and recorded.
    A cart, an order or a payment is never lost to it."""
    actor = f"temporal:{event.requested_by}"
    delete = DeleteCart(admin=event.requested_by, note=CANCEL_NOTE)
    try:
        check(cart, delete)
    except CartRefused as refused:
        journal(
            cart,
            now,
            JournalKind.CANCELLATION_REQUESTED,
            actor,
            f"refused: {refused.code}: {refused.message}",
        )
        return True
    if cart.state is CartState.DELETED:
        journal(cart, now, JournalKind.CANCELLATION_REQUESTED, actor, "already deleted")
        return True
    journal(cart, now, JournalKind.CANCELLATION_REQUESTED, actor, "taken as a delete")
    return deleted(cart, delete, now, actor)


def order_number_assigned(cart: Cart, event: OrderNumberAssigned, now: datetime) -> bool:
    if cart.order is None or cart.order.number is not None:
        return False  # a number is assigned once
    cart.order.number = event.number
    journal(cart, now, JournalKind.ORDER_NUMBER_ASSIGNED, SYSTEM, str(event.number))
    return True


def restore_failed(cart: Cart, event: RestoreFailed, now: datetime) -> bool:
    raise_attention(cart, now, AttentionKind.CART_NOT_RESTORED, detail=event.detail)
    return True


def restored(cart: Cart, event: CartRestored, now: datetime) -> bool:
    journal(
        cart,
        now,
        JournalKind.CART_RESTORED,
        SYSTEM,
        f"a new run continues from the {event.source} of run {event.run_id}",
    )
    return True
