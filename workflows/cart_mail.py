"""The cart workflow's e-mail effects: the reminder sequence (``workflows.reminders``) and
the lock alert to the shop's admins (``workflows.alerts``), as a part of ``CartWorkflow``.

Like the projection, each is an activity the loop *starts* and collects when it
completes; none blocks a handler or a timer. Each is recoverable from the cart alone: an
abandonment without a plan, a reminder marked ``sending``, a lock not alerted yet; so a
crash, a continue-as-new or an activity that gave up starts it again, and the activities'
ledgers make the repeat find what the first attempt did (one e-mail per cart and
reminder, one alert per lock). Also the effect options every effect activity shares.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows import alerts, reminders
    from workflows.alerts_contract import ACTIVITY_SEND_LOCK_ALERT, AlertResult, LockAlertInput
    from workflows.codes import ReminderStatus
    from workflows.contract import (
        ACTIVITY_PLAN_REMINDERS,
        ACTIVITY_SEND_REMINDER,
        PlanRemindersInput,
        ReminderOutcome,
        RemindersPlanned,
        SendReminderInput,
    )
    from workflows.state import Cart, ReminderStep

# Effects retry until they succeed: a database outage delays the read model and the order
# number, it never loses them. Each attempt is short; after ``EFFECT_GIVE_UP`` of retries
# the workflow starts the effect again with the cart as it then is (fresher data).
EFFECT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    # Retries cost no history events. At most 30 s apart: after an outage the read model
    # catches up within 30-40 s (interval plus one attempt), the carts that waited come
    # back spread over that time rather than in one burst of workflow tasks (with 10 s,
    # such a burst after ``make chaos``'s outage met a worker restart and delayed other
    # carts' timers), and a database that is down is asked less often.
    maximum_interval=timedelta(seconds=30),
)
#: a restore keeps the cart's updates waiting: it retries at most 10 s apart
RESTORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)
EFFECT_TIMEOUT = timedelta(seconds=10)
EFFECT_GIVE_UP = timedelta(minutes=5)
#: after an effect gave up, wait this long before starting it again
EFFECT_PAUSE = timedelta(seconds=30)
RESTORE_TIMEOUT = timedelta(seconds=30)
#: one e-mail: the checks, the ledger and one SMTP conversation (the relay's timeout is
#: 10 s by default); retried like the other effects, a transient SMTP error included
SEND_TIMEOUT = timedelta(seconds=60)
#: the patch that brought the reminder sequence: histories recorded before it never plan
REMINDERS_PATCH = "reminder-sequence"


class CartMail:
    """The e-mail effects of ``CartWorkflow`` (which provides ``_cart`` and ``_apply``)."""

    _cart: Cart

    def _init_mail(self) -> None:
        #: the plan being read (its answer names the abandonment it is for)
        self._planning: Any | None = None
        #: the reminders being sent, by reminder id
        self._sending: dict[str, Any] = {}
        #: the lock alert being sent, with the lock it is for
        self._alerting: tuple[Any, datetime] | None = None
        #: after an e-mail activity gave up, when to start it again
        self._mail_after: datetime | None = None
        #: whether this run has the reminder sequence (``_reminders_on``)
        self._reminders_patched: bool | None = None

    def _apply(self, event: object, at: datetime | None = None) -> None:
        raise NotImplementedError  # CartWorkflow's

    # ------------------------------------------------------------------ for the loop

    def _mail_in_flight(self) -> bool:
        """An e-mail activity runs, or a reminder waits to be handed to one."""
        return (
            self._planning is not None
            or bool(self._sending)
            or self._alerting is not None
            or bool(reminders.sending(self._cart) and self._reminders_on())
        )

    def _mail_finished(self) -> bool:
        return (
            (self._planning is not None and self._planning.done())
            or any(handle.done() for handle in self._sending.values())
            or (self._alerting is not None and self._alerting[0].done())
        )

    def _mail_wake_at(self, now: datetime) -> datetime | None:
        """When the loop must run for an e-mail effect (``None``: not for one)."""
        times = []
        if self._reminders_patched is not False and self._reminder_effects_wanted():
            times.append(now)
        alert_at = alerts.lock_alert_due(self._cart)
        if alert_at is not None and self._alerting is None:
            times.append(alert_at)
        if not times:
            return None
        return max(min(times), self._mail_after or now)

    def _start_mail(self, now: datetime) -> None:
        if self._mail_after is not None and now < self._mail_after:
            return
        self._mail_after = None
        self._start_lock_alert(now)
        if self._reminder_effects_wanted() and self._reminders_on():
            self._start_reminders(now)

    def _collect_mail(self, now: datetime) -> None:
        """Apply finished e-mail effects; after one gave up, start it again later."""
        failed = False
        if self._planning is not None and self._planning.done():
            handle, self._planning = self._planning, None
            failed |= not self._applied(handle, "reminders not planned yet")
        for reminder_id, handle in list(self._sending.items()):
            if handle.done():
                del self._sending[reminder_id]
                failed |= not self._applied(handle, f"reminder {reminder_id} not sent yet")
        if self._alerting is not None and self._alerting[0].done():
            (handle, locked_at), self._alerting = self._alerting, None
            failed |= not self._applied(
                handle, "lock alert not sent yet", lambda r: alerts.sent_event(r, locked_at)
            )
        if failed:
            self._mail_after = now + EFFECT_PAUSE

    def _applied(
        self, handle: Any, what: str, event_of: Callable[[Any], object | None] | None = None
    ) -> bool:
        """Apply a finished activity's answer (made an event by ``event_of``); ``False``
        if it failed or its answer is a refusal (``event_of`` gives ``None``)."""
        try:
            result = handle.result()
        except ActivityError as error:
            workflow.logger.warning("%s: %s", what, error.cause)
            return False
        event = event_of(result) if event_of is not None else result
        if event is None:
            workflow.logger.warning("%s: %s", what, getattr(result, "detail", result))
            return False
        self._apply(event)
        return True

    # ------------------------------------------------------------------ reminders

    def _reminders_on(self) -> bool:
        """Whether this run performs the reminder sequence. Asked only once the cart
        needs it (its first abandonment, an admin's manual send), so the histories
        recorded before the sequence existed replay without it."""
        if self._reminders_patched is None:
            self._reminders_patched = workflow.patched(REMINDERS_PATCH)
        return self._reminders_patched

    def _reminder_effects_wanted(self) -> bool:
        """A plan or a send is called for and not under way."""
        cart = self._cart
        return (reminders.needs_plan(cart) and self._planning is None) or any(
            item.reminder_id not in self._sending for item in reminders.sending(cart)
        )

    def _start_reminders(self, now: datetime) -> None:
        """Read the campaign for a new abandonment; send the reminder that is due."""
        cart = self._cart
        if reminders.needs_plan(cart) and self._planning is None:
            customer = cart.customer
            handle = workflow.start_activity(
                ACTIVITY_PLAN_REMINDERS,
                PlanRemindersInput(
                    shop_id=cart.shop_id,
                    cart_id=cart.cart_id,
                    lineage=cart.lineage or "",
                    sequence=cart.reminder_sequence,
                    abandoned_at=cart.abandoned_at or now,
                    email=customer.email if customer else None,
                    marketing_consent=bool(customer and customer.marketing_consent),
                    sent=[
                        item.reminder_id
                        for item in cart.reminders
                        if item.status in (ReminderStatus.SENT, ReminderStatus.SENDING)
                    ],
                ),
                result_type=RemindersPlanned,
                start_to_close_timeout=EFFECT_TIMEOUT,
                schedule_to_close_timeout=EFFECT_GIVE_UP,
                retry_policy=EFFECT_RETRY,
            )
            self._planning = handle
        for item in reminders.sending(cart):
            if item.reminder_id not in self._sending:
                self._sending[item.reminder_id] = self._start_send(item)

    def _start_send(self, item: ReminderStep) -> Any:
        return workflow.start_activity(
            ACTIVITY_SEND_REMINDER,
            SendReminderInput(
                cart=self._cart,
                reminder_id=item.reminder_id,
                sequence=item.sequence,
                due_at=item.due_at,
                variant=item.variant,
                manual=item.manual,
            ),
            result_type=ReminderOutcome,
            start_to_close_timeout=SEND_TIMEOUT,
            schedule_to_close_timeout=EFFECT_GIVE_UP,
            retry_policy=EFFECT_RETRY,
        )

    # ------------------------------------------------------------------ lock alert

    def _start_lock_alert(self, now: datetime) -> None:
        cart = self._cart
        due = alerts.lock_alert_due(cart)
        if due is None or due > now or self._alerting is not None or cart.locked_at is None:
            return
        handle = workflow.start_activity(
            ACTIVITY_SEND_LOCK_ALERT,
            LockAlertInput(
                shop_id=cart.shop_id,
                cart_id=cart.cart_id,
                lineage=cart.lineage or "",
                locked_at=cart.locked_at,
                lock_reason=str(cart.lock_reason) if cart.lock_reason else None,
                total=cart.total,
                currency=cart.currency,
                attempt_ids=[attempt.attempt_id for attempt in cart.payments],
            ),
            result_type=AlertResult,
            start_to_close_timeout=SEND_TIMEOUT,
            schedule_to_close_timeout=EFFECT_GIVE_UP,
            retry_policy=EFFECT_RETRY,
        )
        self._alerting = (handle, cart.locked_at)
