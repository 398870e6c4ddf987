"""The cart's reminder sequence: pure rules, no I/O, no clock.

When a cart is abandoned it asks for a plan (``needs_plan``: the ``plan_reminders``
activity reads the shop's campaign); each planned reminder then waits for its time on the
cart's own timer (``next_due``). At that time ``start_due`` re-checks the cart and hands
the reminder to the ``send_reminder`` activity, which checks again at the moment of
sending (unsubscribed, newer cart, cap, quiet hours) and answers with a ``ReminderOutcome``.

Rules (``tests/test_reminders.py``):
- a reminder is sent at most once per cart; at most one is being sent at a time;
- the sequence runs only while the cart is abandoned: activity, an order or the end of the
  cart skips every reminder still planned, with the reason;
- a reminder is never sent late in a burst: when several are due at once only the latest
  is sent, and one later than ``reminder_max_lateness_seconds`` is skipped (``overdue``);
- quiet hours move a reminder to the next allowed time, unless the next reminder is due by
  then (``quiet_hours``);
- every skip is journaled with its reason.

Campaign edits (documented in the README): a plan fixes which reminders a sequence has
and when they are due; what a reminder says (subject, template, coupon) is read when it is
sent; a reminder removed from the campaign (or the campaign disabled) before its time is
skipped with ``reminder_removed`` (``campaign_disabled``); reminders added later apply from
the next abandonment. Abandoning again: ``continue`` plans the reminders not sent yet
from the new abandonment, ``once`` plans nothing.
"""

from __future__ import annotations

from datetime import datetime

from workflows.codes import CartState, JournalKind, ReminderStatus, SkipReason
from workflows.events import (
    RecoveryLinkClicked,
    ReminderOutcome,
    RemindersPlanned,
    SendReminder,
)
from workflows.journal import CUSTOMER, SYSTEM, admin_actor, journal
from workflows.state import Cart, ReminderStep

#: at most this many reminders per cart (a campaign's size)
MAX_REMINDERS = 20

STOP_REASONS = {
    CartState.ORDERED: SkipReason.ORDERED,
    CartState.EXPIRED: SkipReason.CART_CLOSED,
    CartState.DELETED: SkipReason.CART_CLOSED,
}


def started(cart: Cart) -> None:
    """The cart was abandoned: a new sequence is due (planned by ``plan_reminders``)."""
    cart.reminder_sequence += 1


def needs_plan(cart: Cart) -> bool:
    return cart.state is CartState.ABANDONED and cart.planned_sequence < cart.reminder_sequence


def step(cart: Cart, reminder_id: str) -> ReminderStep | None:
    for item in cart.reminders:
        if item.reminder_id == reminder_id:
            return item
    return None


def sending(cart: Cart) -> list[ReminderStep]:
    """The reminders handed to ``send_reminder`` that have not answered yet."""
    return [item for item in cart.reminders if item.status is ReminderStatus.SENDING]


def next_due(cart: Cart) -> datetime | None:
    """When the next planned reminder is due (while the cart is abandoned and no other
    reminder is being sent)."""
    if cart.state is not CartState.ABANDONED or sending(cart):
        return None
    due = [item.due_at for item in cart.reminders if item.status is ReminderStatus.PLANNED]
    return min(due) if due else None


def _skip(
    cart: Cart, item: ReminderStep, now: datetime, reason: SkipReason, detail: str | None = None
) -> None:
    item.status = ReminderStatus.SKIPPED
    item.reason = reason
    item.detail = detail
    item.at = now
    text = f"{item.reminder_id}: {reason}" + (f" ({detail})" if detail else "")
    journal(cart, now, JournalKind.REMINDER_SKIPPED, SYSTEM, text)


def planned(cart: Cart, event: RemindersPlanned, now: datetime) -> bool:
    """Apply a plan. A plan for an older abandonment than the cart's last is ignored."""
    if event.sequence != cart.reminder_sequence or event.sequence <= cart.planned_sequence:
        return False
    cart.planned_sequence = event.sequence
    cart.campaign_version = event.campaign_version
    names = []
    for planned_item in event.reminders:
        current = step(cart, planned_item.reminder_id)
        if current is not None and current.status in (
            ReminderStatus.SENT,
            ReminderStatus.SENDING,
        ):
            continue  # sent (or being sent) once per cart, whatever the abandonments
        if current is None:
            if len(cart.reminders) >= MAX_REMINDERS:
                continue
            current = ReminderStep(
                reminder_id=planned_item.reminder_id,
                position=planned_item.position,
                name=planned_item.name,
                due_at=planned_item.due_at,
            )
            cart.reminders.append(current)
        current.position = planned_item.position
        current.name = planned_item.name
        current.due_at = planned_item.due_at
        current.sequence = event.sequence
        current.variant = planned_item.variant
        current.status = ReminderStatus.PLANNED
        current.reason = current.detail = current.at = None
        current.deferrals = 0
        names.append(planned_item.reminder_id)
        if planned_item.skipped is not None:
            _skip(cart, current, now, planned_item.skipped)
    cart.reminders.sort(key=lambda item: (item.position, item.reminder_id))
    detail = ", ".join(names) if names else (event.note or "no reminders")
    journal(
        cart, now, JournalKind.REMINDERS_PLANNED, SYSTEM, f"sequence {event.sequence}: {detail}"
    )
    return True  # (a cart no longer abandoned skips them at once: ``stop``, after every change)


def start_due(cart: Cart, now: datetime) -> bool:
    """Hand the reminder that is due to sending (one at a time); reminders that missed
    their time are skipped, never sent late in a burst."""
    if cart.state is not CartState.ABANDONED or sending(cart):
        return False
    due = sorted(
        (
            item
            for item in cart.reminders
            if item.status is ReminderStatus.PLANNED and item.due_at <= now
        ),
        key=lambda item: (item.due_at, item.position),
    )
    if not due:
        return False
    latest = due[-1]
    for item in due[:-1]:
        _skip(cart, item, now, SkipReason.OVERDUE, f"{latest.reminder_id} was due too")
    lateness = (now - latest.due_at).total_seconds()
    if lateness > cart.policy.reminder_max_lateness_seconds:
        _skip(cart, latest, now, SkipReason.OVERDUE, f"{int(lateness)} s after its time")
    else:
        latest.status = ReminderStatus.SENDING
        latest.at = now
    return True


def stop(cart: Cart, now: datetime) -> bool:
    """The cart is no longer abandoned: every reminder still planned is skipped."""
    if cart.state is CartState.ABANDONED:
        return False
    reason = STOP_REASONS.get(cart.state, SkipReason.CART_ACTIVE)
    changed = False
    for item in cart.reminders:
        if item.status is ReminderStatus.PLANNED:
            _skip(cart, item, now, reason)
            changed = True
    return changed


def outcome(cart: Cart, event: ReminderOutcome, now: datetime) -> bool:
    """Apply the ``send_reminder`` activity's answer for a reminder being sent."""
    item = step(cart, event.reminder_id)
    if item is None or item.status is not ReminderStatus.SENDING:
        return False  # answered before (a retried or repeated answer)
    if event.name:
        item.name = event.name
    if event.variant:
        item.variant = event.variant
    if event.status is ReminderStatus.SENT:
        item.status = ReminderStatus.SENT
        item.at = event.at
        item.message_id = event.message_id
        item.coupon_code = event.coupon_code
        variant = f" variant {item.variant}" if item.variant else ""
        coupon = f", coupon {event.coupon_code}" if event.coupon_code else ""
        actor = admin_actor(item.requested_by) if item.requested_by else SYSTEM
        journal(cart, now, JournalKind.REMINDER_SENT, actor, f"{item.reminder_id}{variant}{coupon}")
        return True
    if event.status is ReminderStatus.PLANNED and event.retry_at is not None:
        return _deferred(cart, item, event.retry_at, now, event.detail)
    _skip(cart, item, now, event.reason or SkipReason.SEND_FAILED, event.detail)
    return True


def _deferred(
    cart: Cart, item: ReminderStep, until: datetime, now: datetime, detail: str | None
) -> bool:
    """Quiet hours: the reminder moves to ``until``, unless a later one is due by then."""
    later = [
        other
        for other in cart.reminders
        if other is not item and other.status is ReminderStatus.PLANNED and other.due_at <= until
    ]
    if later or item.manual or cart.state is not CartState.ABANDONED:
        _skip(cart, item, now, SkipReason.QUIET_HOURS, detail)
        return True
    item.status = ReminderStatus.PLANNED
    item.due_at = until
    item.at = None
    item.deferrals += 1
    text = f"{item.reminder_id}: quiet hours, moved to {until.isoformat()}"
    journal(cart, now, JournalKind.REMINDER_DEFERRED, SYSTEM, text)
    return True


def requested(cart: Cart, event: SendReminder, now: datetime) -> bool:
    """An admin's manual send (checked by ``validation``): sent now, once per cart."""
    item = step(cart, event.reminder_id)
    if item is None:
        item = ReminderStep(
            reminder_id=event.reminder_id, position=0, name=event.reminder_id, due_at=now
        )
        cart.reminders.append(item)
    item.due_at = now
    item.sequence = cart.reminder_sequence
    item.manual = True
    item.requested_by = event.admin
    item.status = ReminderStatus.SENDING
    item.reason = item.detail = None
    item.at = now
    return True


def link_clicked(cart: Cart, event: RecoveryLinkClicked, now: datetime) -> bool:
    """The customer followed a recovery link: the reminder is credited, its coupon
    attached (``machine`` then makes an abandoned cart active, which stops the sequence)."""
    cart.recovered_via = event.reminder_id
    if event.coupon_code:
        cart.coupon_code = event.coupon_code
    coupon = f", coupon {event.coupon_code}" if event.coupon_code else ""
    journal(cart, now, JournalKind.RECOVERY_LINK_CLICKED, CUSTOMER, f"{event.reminder_id}{coupon}")
    return True


__all__ = [
    "MAX_REMINDERS",
    "link_clicked",
    "needs_plan",
    "next_due",
    "outcome",
    "planned",
    "requested",
    "sending",
    "start_due",
    "started",
    "step",
    "stop",
]
