"""Admin alerts of one cart: an e-mail to the shop's admins when the cart has been locked
for ``CartPolicy.lock_alert_after_seconds`` (seed 004). Pure: the workflow asks when the
alert is due and performs it through the ``send_lock_alert`` activity (idempotent per
cart and lock), then applies ``LockAlertSent``. One alert per lock: unlocked and locked
again is a new lock and a new alert."""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows.alerts_contract import AlertResult
from workflows.codes import CartState, JournalKind
from workflows.events import LockAlertSent
from workflows.journal import SYSTEM, journal
from workflows.state import Cart


def lock_alert_due(cart: Cart) -> datetime | None:
    """When the admins are to be alerted about the cart's lock (``None``: not at all)."""
    delay = cart.policy.lock_alert_after_seconds
    if cart.state is not CartState.LOCKED or delay <= 0 or cart.locked_at is None:
        return None
    if cart.lock_alert_sent_for == cart.locked_at:
        return None
    return cart.locked_at + timedelta(seconds=delay)


def lock_alert_sent(cart: Cart, event: LockAlertSent, now: datetime) -> bool:
    if cart.lock_alert_sent_for == event.locked_at:
        return False
    cart.lock_alert_sent_for = event.locked_at
    who = f"{event.recipients} admin(s)" if event.recipients else "no admin address"
    detail = f"locked since {event.locked_at.isoformat()}; {who}"
    if event.detail:
        detail += f" ({event.detail})"
    journal(cart, now, JournalKind.LOCK_ALERT_SENT, SYSTEM, detail)
    return True


def sent_event(result: AlertResult, locked_at: datetime) -> LockAlertSent | None:
    """The event of a ``send_lock_alert`` answer (``None``: refused, to be tried again)."""
    if result.status == "failed":
        return None
    detail = result.detail or (result.status if result.status != "sent" else None)
    return LockAlertSent(locked_at=locked_at, recipients=result.recipients, detail=detail)
