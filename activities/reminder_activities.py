"""The reminder activities of the cart workflow: ``plan_reminders`` and ``send_reminder``.

``plan_reminders`` reads the shop's campaign (``activities.campaigns``) and answers which
automatic reminders a cart's abandonment gets, when, in which variant, and which are
skipped from the start (campaign disabled, no address, no consent). It writes nothing.

``send_reminder`` sends one reminder, exactly one e-mail per (shop, cart, lineage,
reminder) through retries, crashes and replays. The ledger (``reminder_sends``,
``activities.reminder_ledger``) is the idempotency record; the checks are in
``activities.reminder_checks``, the e-mail in ``activities.reminder_mail``:

1. A ledger row ``sent`` is answered again (same Message-ID and coupon, no e-mail); a
   ``skipped`` row for the same time (``due_at``) is answered with its skip. A skip for
   another time is an earlier decision (an earlier abandonment, a workflow-side skip):
   the reminder is checked again.
2. The checks at the moment of sending (``reminder_checks.check_send``, which the admins'
   dry run calls too), in order: the cart is still abandoned; campaign missing or
   disabled; reminder missing, removed, or made manual (for an automatic send); no
   address; no consent; the address unsubscribed or bounced; a newer cart or order of the
   same customer; the customer's cap; an empty cart or an unusable coupon. Each ``Skip``
   is written to the ledger and returned. Quiet hours in the customer's time zone answer
   ``planned`` with ``retry_at`` and write nothing.
3. The row becomes ``sending`` (address, Message-ID, variant, coupon) and the variant's
   coupon is issued, in one committed transaction, before any SMTP traffic. A row another
   attempt decided meanwhile is answered instead.
4. The e-mail is rendered (what the reminder says is read now: subject, template,
   coupon) and handed to the relay; then the row becomes ``sent``.

**The at-least-once window.** Between the relay accepting the message and the ``sent``
commit, a crash leaves the row ``sending``; the retry sends the message again with the
SAME Message-ID (receiving systems and mail clients deduplicate by it). No SMTP client can
close that window; it is measured (``window_ms`` in the log of every send). A ``sending``
row is checked again before that resend, so a customer who ordered or unsubscribed in the
meantime gets nothing more (the row then says skipped, with a detail saying an earlier
attempt may have sent it).

**Attempts never overlap.** Each attempt stops itself (``send_timeout``, retried) before
its start-to-close timeout, after which Temporal would start the next attempt while the
first still talked to the relay (``activities.attempt_budget``).

**SMTP errors.** A transient one (relay down, 4xx, timeout) raises a retryable
``ApplicationError`` (the workflow's retry policy tries again; the row stays ``sending``).
A permanent one is a ``send_failed`` skip with the relay's answer; a recipient refused for
good (5xx at RCPT) also suppresses the address (``bounced``, source ``smtp``).

Exceptions carry ids and codes, never the customer's address: relay answers are quoted
without it, and a database failure is a retryable ``read_model_unavailable`` error without
the driver's message (which may quote the statement's values; the worker's log has it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import coupons
from activities import reminder_ledger as ledger
from activities.attempt_budget import AttemptBudget, lift
from activities.campaigns import CampaignConfig, load_campaign
from activities.db import SessionFactory
from activities.links import Links
from activities.mail_render import MailRenderer, TemplateMissing, message_id
from activities.reminder_checks import (
    Defer,
    Go,
    ReminderKey,
    Skip,
    check_send,
    plan_skip,
    scrub,
    variant_for,
)
from activities.reminder_mail import compose, mail_domain
from activities.settings import Settings
from activities.smtp import MailError, SmtpConfig, send_message
from workflows.codes import ReminderStatus, SkipReason
from workflows.contract import (
    ACTIVITY_PLAN_REMINDERS,
    ACTIVITY_SEND_REMINDER,
    PlannedReminder,
    PlanRemindersInput,
    ReminderOutcome,
    RemindersPlanned,
    SendReminderInput,
)

log = activity.logger
#: one line per send with the at-least-once window (``window_ms``, also in ``extra``)
window_log = logging.getLogger("cartkeeper.reminders")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _answer(stored: ledger.Stored, request: SendReminderInput) -> ReminderOutcome:
    """The outcome of a ledger row that ``decides`` the send: sent, or skipped."""
    if stored.status == "sent":
        return ReminderOutcome(
            reminder_id=request.reminder_id,
            sequence=request.sequence,
            status=ReminderStatus.SENT,
            at=stored.sent_at or stored.updated_at,
            message_id=stored.message_id,
            coupon_code=stored.coupon_code,
            variant=stored.variant,
        )
    return ReminderOutcome(
        reminder_id=request.reminder_id,
        sequence=request.sequence,
        status=ReminderStatus.SKIPPED,
        at=stored.updated_at,
        reason=stored.reason,
        detail=stored.detail,
        variant=stored.variant,
    )


class ReminderActivities:
    """The reminder activities, bound to the read model's sessions and the settings (SMTP
    relay, link key, public URL, Message-ID domain). ``clock`` is the activity's clock
    (tests set it)."""

    def __init__(
        self,
        session_factory: SessionFactory,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.clock = clock
        self.smtp = SmtpConfig.from_settings(settings)

    def all(self) -> list[Any]:
        """The activities to register on a worker."""
        return [self.plan_reminders, self.send_reminder]

    @cached_property
    def links(self) -> Links:
        # Made on first use: the key may be read from (or made in) the data directory.
        return Links.from_settings(self.settings)

    @cached_property
    def renderer(self) -> MailRenderer:
        return MailRenderer()

    # ------------------------------------------------------------------ plan

    @activity.defn(name=ACTIVITY_PLAN_REMINDERS)
    async def plan_reminders(self, request: PlanRemindersInput) -> RemindersPlanned:
        """The automatic reminders of abandonment ``sequence``, due ``delay`` after it."""
        campaign = await load_campaign(self.session_factory, request.shop_id)
        if campaign is None:
            return RemindersPlanned(
                request.sequence, None, [], note="the shop has no reminder campaign"
            )
        if campaign.restart_rule == "once" and request.sequence > 1:
            return RemindersPlanned(
                request.sequence,
                campaign.version,
                [],
                note="the campaign reminds a cart of its first abandonment only (rule once)",
            )
        skipped = plan_skip(campaign, request.email, request.marketing_consent)
        already = set(request.sent)
        planned = [
            PlannedReminder(
                reminder_id=item.reminder_id,
                position=item.position,
                name=item.name,
                due_at=request.abandoned_at + timedelta(seconds=item.delay_seconds),
                variant=variant_for(
                    ReminderKey(
                        request.shop_id, request.cart_id, request.lineage, item.reminder_id
                    ),
                    item.b is not None,
                ),
                skipped=skipped,
            )
            for item in campaign.active_reminders
            if item.automatic and item.reminder_id not in already
        ]
        note = None if planned else "the campaign has no automatic reminder left for this cart"
        return RemindersPlanned(request.sequence, campaign.version, planned, note=note)

    # ------------------------------------------------------------------ send

    @activity.defn(name=ACTIVITY_SEND_REMINDER)
    async def send_reminder(self, request: SendReminderInput) -> ReminderOutcome:
        """Send the reminder once (see the module's docstring)."""
        cart = request.cart
        key = ReminderKey(cart.shop_id, cart.cart_id, cart.lineage or "", request.reminder_id)
        budget = AttemptBudget()
        try:
            async with budget:
                return await self._send(key, request)
        except TimeoutError:
            if not budget.expired():
                raise  # not the budget's (a driver's own timeout): as any error
            # Past its budget the attempt stops (the row stays ``sending``): the next
            # attempt starts only after it, so two never talk to the relay at once (see
            # ``activities.attempt_budget``).
            log.warning("reminder %s: the attempt ran out of time; retried", key.ident)
            raise ApplicationError(
                f"reminder {key.reminder_id} of cart {key.shop_id}/{key.cart_id}: the attempt"
                " took too long; retried",
                type="send_timeout",
            ) from None
        except SQLAlchemyError as error:
            # The driver's message may quote the statement's values (the address): the
            # worker's log keeps it, the error that goes to the workflow's history not.
            log.warning("reminder %s: the read model failed", key.ident, exc_info=True)
            raise ApplicationError(
                f"reminder {key.reminder_id} of cart {key.shop_id}/{key.cart_id}: the read"
                f" model failed ({type(error).__name__}); retried",
                type="read_model_unavailable",
            ) from None

    async def _send(self, key: ReminderKey, request: SendReminderInput) -> ReminderOutcome:
        now = self.clock()
        campaign = await load_campaign(self.session_factory, key.shop_id)
        async with self.session_factory() as session:
            stored = await ledger.stored(session, key)
            if stored is not None and stored.decides(request.due_at):
                return _answer(stored, request)
            decision = await check_send(session, request, key, campaign, now)
        if isinstance(decision, Defer):
            return ReminderOutcome(
                reminder_id=request.reminder_id,
                sequence=request.sequence,
                status=ReminderStatus.PLANNED,
                at=now,
                detail=decision.detail,
                retry_at=decision.until,
            )
        if isinstance(decision, Skip):
            return await self._skip(key, request, decision, now)
        assert campaign is not None  # the checks passed
        domain = mail_domain(self.settings, campaign)
        claimed, coupon = await ledger.claim(
            self.session_factory,
            key,
            request,
            decision.variant,
            decision.terms,
            message_id(key.shop_id, key.cart_id, key.message_key, domain),
            now,
        )
        if claimed.decides(request.due_at):  # another attempt decided meanwhile
            return _answer(claimed, request)
        return await self._deliver(key, request, campaign, decision, claimed, coupon)

    async def _skip(
        self,
        key: ReminderKey,
        request: SendReminderInput,
        skip: Skip,
        now: datetime,
        *,
        bounced: str | None = None,
    ) -> ReminderOutcome:
        """Write the skip (a row already ``sent`` wins: it is the answer instead)."""
        stored = await ledger.record_skip(
            self.session_factory, key, request, skip, now, bounced=bounced
        )
        return _answer(stored, request)

    async def record_sent(self, key: ReminderKey, sent_at: datetime) -> None:
        """The row becomes ``sent``: the commit that closes the at-least-once window
        (tests make it fail once to open that window)."""
        await ledger.record_sent(self.session_factory, key, sent_at)

    # ------------------------------------------------------------------ the e-mail

    async def _deliver(
        self,
        key: ReminderKey,
        request: SendReminderInput,
        campaign: CampaignConfig,
        go: Go,
        claimed: ledger.Stored,
        coupon: coupons.IssuedCoupon | None,
    ) -> ReminderOutcome:
        """Render, hand to the relay, record ``sent``; a permanent failure is a skip."""
        customer = request.cart.customer
        assert customer is not None and claimed.message_id is not None  # checked, claimed
        try:
            message = compose(
                settings=self.settings,
                links=self.links,
                renderer=self.renderer,
                key=key,
                cart=request.cart,
                campaign=campaign,
                variant=go.definition.variant(go.variant),
                message_id=claimed.message_id,
                coupon=coupon,
                date=self.clock(),
            )
        except (TemplateMissing, ValueError) as error:
            detail = scrub(f"the e-mail could not be made: {error}", customer.email)
            log.warning("reminder %s/%s/%s: %s", key.shop_id, key.cart_id, key.reminder_id, detail)
            return await self._skip(
                key, request, Skip(SkipReason.SEND_FAILED, detail), self.clock()
            )
        try:
            await send_message(self.smtp, message)
        except MailError as error:
            answer = scrub(f"{error.code}: {error.message}", customer.email)
            if error.transient:
                raise ApplicationError(
                    f"reminder {key.reminder_id} of cart {key.shop_id}/{key.cart_id} not sent"
                    f" yet: {answer}",
                    type=error.code,
                ) from None
            bounced = customer.email if error.bounced else None
            skip = Skip(SkipReason.SEND_FAILED, answer)
            return await self._skip(key, request, skip, self.clock(), bounced=bounced)
        accepted = time.monotonic()
        lift()  # accepted: record it whatever it takes
        sent_at = self.clock()
        await self.record_sent(key, sent_at)
        window_ms = (time.monotonic() - accepted) * 1000
        window_log.info(
            "reminder %s of cart %s/%s sent as %s; window_ms=%.1f",
            key.reminder_id,
            key.shop_id,
            key.cart_id,
            claimed.message_id,
            window_ms,
            extra={
                "window_ms": window_ms,
                "message_id": claimed.message_id,
                "shop_id": key.shop_id,
                "cart_id": key.cart_id,
                "reminder_id": key.reminder_id,
            },
        )
        return ReminderOutcome(
            reminder_id=request.reminder_id,
            sequence=request.sequence,
            status=ReminderStatus.SENT,
            at=sent_at,
            message_id=claimed.message_id,
            coupon_code=coupon.code if coupon else None,
            name=go.definition.name,
            variant=go.variant,
        )
