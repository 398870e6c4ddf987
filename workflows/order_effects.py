"""The cart workflow's order-phase effects (``workflows.order_phase`` decides them), as a
part of ``CartWorkflow``: reading the shop's status registry, moving stock and sending
the status e-mails. Like the other effects each is an activity the loop *starts* and
collects; none blocks a handler or a timer, and each is recoverable from the cart alone
(an unresolved entry, a pending move, a pending e-mail), so a crash, a continue-as-new or
an activity that gave up starts it again; the activities' keys and ledger make a repeat
find what the first attempt did.

An admin's ``set_order_status`` reads the registry itself (a local activity) before it
applies the status, so an unknown letter is refused to the admin at once.

Versioning: orders of histories recorded before the order phase are never managed. An
order that a payment or a confirmation creates enters the phase only under the patch
``ORDER_PHASE_PATCH``, asked once per order when it is created.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import order_phase
    from workflows.codes import ErrorCode
    from workflows.effects import needs_number
    from workflows.order_contract import (
        ACTIVITY_MOVE_ORDER_STOCK,
        ACTIVITY_READ_ORDER_STATUSES,
        ACTIVITY_SEND_STATUS_MAIL,
        OrderStatuses,
        ReadOrderStatusesInput,
        StatusMailInput,
        StatusMailResult,
        StockMoveInput,
        StockMoveResult,
    )
    from workflows.order_events import OrderManaged, OrderStatusesRead, StatusMailDone, StockMoved
    from workflows.order_phase import MOVE_FAILED
    from workflows.order_state import MAIL_SKIPPED, StatusMail
    from workflows.state import Cart

from workflows.cart_mail import (
    EFFECT_GIVE_UP,
    EFFECT_PAUSE,
    EFFECT_RETRY,
    EFFECT_TIMEOUT,
    SEND_TIMEOUT,
)

#: the patch that brought the order phase
ORDER_PHASE_PATCH = "order-phase"
#: the patch that gives up a status e-mail the relay has not taken for a day
STATUS_MAIL_GIVE_UP_PATCH = "status-mail-give-up"
#: the patch that folds a new order's first registry read into the projection that
#: numbers it, and writes the results of the order's effects together
#: (``OrderEffects._fold_statuses``, ``_order_work_coalesced``)
ORDER_EFFECTS_FOLDED_PATCH = "order-effects-folded"
#: an admin waits at most this long for the registry (then ``statuses_unavailable``)
READ_STATUSES_TIMEOUT = timedelta(seconds=15)


class OrderEffects:
    """The order-phase effects of ``CartWorkflow`` (which provides ``_cart``, ``_apply``)."""

    _cart: Cart

    def _init_orders(self) -> None:
        self._reading: Any | None = None
        self._moving: tuple[Any, str] | None = None
        #: e-mails being sent, by (entry, recipient)
        self._mailing: dict[tuple[int, str], Any] = {}
        self._orders_after: datetime | None = None
        #: the order (its creation time) the patch was asked for, or that came with the
        #: run's input: an order of an earlier run that is not managed was created before
        #: the order phase, and stays out of it (its history never asked)
        order = self._cart.order
        self._phase_asked_for: datetime | None = order.created_at if order else None

    def _apply(self, event: object, at: datetime | None = None) -> None:
        raise NotImplementedError  # CartWorkflow's

    # ------------------------------------------------------------------ entering the phase

    def _maybe_manage_order(self) -> None:
        """A new order that is not in the order phase enters it (under the patch)."""
        order = self._cart.order
        if order is None or order.managed or self._phase_asked_for == order.created_at:
            return
        self._phase_asked_for = order.created_at
        if workflow.patched(ORDER_PHASE_PATCH):
            self._apply(OrderManaged())

    async def _read_statuses(self) -> OrderStatuses:
        """The shop's registry for an admin's status (refused when it cannot be read)."""
        try:
            statuses: OrderStatuses = await workflow.execute_local_activity(
                ACTIVITY_READ_ORDER_STATUSES,
                ReadOrderStatusesInput(shop_id=self._cart.shop_id),
                result_type=OrderStatuses,
                start_to_close_timeout=timedelta(seconds=5),
                schedule_to_close_timeout=READ_STATUSES_TIMEOUT,
                retry_policy=EFFECT_RETRY,
            )
        except (ActivityError, ApplicationError) as error:
            # (a local activity's failure arrives as the activity's own error)
            cause = error.cause if isinstance(error, ActivityError) else error
            raise ApplicationError(
                f"the shop's order statuses could not be read: {cause}",
                type=str(ErrorCode.STATUSES_UNAVAILABLE),
                non_retryable=True,
            ) from None
        return statuses

    # ------------------------------------------------------------------ folded work

    def _fold_statuses(self) -> bool:
        """Whether the projection about to number a new order reads its statuses too:
        one activity (and one workflow task) instead of two, and the stock move and the
        e-mails start as soon as the order has its number. (Not the stock move itself: a
        move made in the projection could be left unrecorded, when an admin's status
        comes first, or a retry reads statuses an admin changed.) Asked under the patch
        when it applies only: histories from before it read the registry in an activity
        of its own."""
        return (
            order_phase.needs_statuses(self._cart)
            and self._reading is None
            and self._statuses_with_number()
        )

    def _order_work_coalesced(self) -> bool:
        """Whether the order's effects are under way or about to start: the results they
        bring are written together when they are in (within the projection interval),
        not once each. (Under the patch: histories from before it wrote each at once.)"""
        return (self._orders_in_flight() or self._orders_wanted()) and workflow.patched(
            ORDER_EFFECTS_FOLDED_PATCH
        )

    def _may_read_statuses(self) -> bool:
        """The order needs the registry and no activity is reading it; a new order's
        first statuses come with its number (``_fold_statuses``), unless the projection
        could not read them."""
        return (
            order_phase.needs_statuses(self._cart)
            and self._reading is None
            and not self._statuses_with_number()
        )

    def _statuses_with_number(self) -> bool:
        """The order waits for its number, and its statuses come with it (the patch)."""
        return needs_number(self._cart) and workflow.patched(ORDER_EFFECTS_FOLDED_PATCH)

    # ------------------------------------------------------------------ for the loop

    def _orders_in_flight(self) -> bool:
        return self._reading is not None or self._moving is not None or bool(self._mailing)

    def _orders_finished(self) -> bool:
        return (
            (self._reading is not None and self._reading.done())
            or (self._moving is not None and self._moving[0].done())
            or any(handle.done() for handle in self._mailing.values())
        )

    def _orders_wanted(self) -> bool:
        cart = self._cart
        if cart.order is None or not cart.order.managed:
            return False
        if self._may_read_statuses():
            return True
        if order_phase.next_stock_move(cart) is not None and self._moving is None:
            return True
        return any(self._mail_key(mail) not in self._mailing for mail in self._sendable())

    def _orders_wake_at(self, now: datetime) -> datetime | None:
        if not self._orders_wanted():
            return None
        return max(now, self._orders_after or now)

    def _start_orders(self, now: datetime) -> None:
        if self._orders_after is not None and now < self._orders_after:
            return
        self._orders_after = None
        cart = self._cart
        if cart.order is None or not cart.order.managed:
            return
        if self._may_read_statuses():
            self._reading = workflow.start_activity(
                ACTIVITY_READ_ORDER_STATUSES,
                ReadOrderStatusesInput(shop_id=cart.shop_id),
                result_type=OrderStatuses,
                start_to_close_timeout=EFFECT_TIMEOUT,
                schedule_to_close_timeout=EFFECT_GIVE_UP,
                retry_policy=EFFECT_RETRY,
            )
        move = order_phase.next_stock_move(cart)
        if move is not None and self._moving is None:
            handle = workflow.start_activity(
                ACTIVITY_MOVE_ORDER_STOCK,
                StockMoveInput(
                    shop_id=cart.shop_id,
                    cart_id=cart.cart_id,
                    key=move.key,
                    kind=move.kind,
                    lines=list(move.lines),
                ),
                result_type=StockMoveResult,
                start_to_close_timeout=EFFECT_TIMEOUT,
                schedule_to_close_timeout=EFFECT_GIVE_UP,
                retry_policy=EFFECT_RETRY,
            )
            self._moving = (handle, move.key)
        for mail in self._sendable():
            key = self._mail_key(mail)
            if key not in self._mailing:
                self._mailing[key] = workflow.start_activity(
                    ACTIVITY_SEND_STATUS_MAIL,
                    self._mail_input(mail),
                    result_type=StatusMailResult,
                    start_to_close_timeout=SEND_TIMEOUT,
                    schedule_to_close_timeout=EFFECT_GIVE_UP,
                    retry_policy=EFFECT_RETRY,
                )

    def _collect_orders(self, now: datetime) -> None:
        failed = False
        if self._reading is not None and self._reading.done():
            handle, self._reading = self._reading, None
            try:
                self._apply(OrderStatusesRead(statuses=handle.result()))
            except ActivityError as error:
                workflow.logger.warning("order statuses not read yet: %s", error.cause)
                failed = True
        if self._moving is not None and self._moving[0].done():
            (handle, key), self._moving = self._moving, None
            try:
                result = handle.result()
            except ActivityError as error:
                result = _refused(error, lambda d: StockMoveResult(key, MOVE_FAILED, detail=d))
                failed |= result is None
            if result is not None:
                self._apply(StockMoved(result=result))
        for (entry, recipient), handle in list(self._mailing.items()):
            if not handle.done():
                continue
            del self._mailing[(entry, recipient)]
            try:
                answer = handle.result()
            except ActivityError as error:
                answer = _refused(
                    error,
                    lambda d, e=entry, r=recipient: StatusMailResult(
                        e, r, MAIL_SKIPPED, reason="send_failed", detail=d
                    ),
                )
                if answer is None and self._mail_given_up(entry, now):
                    answer = StatusMailResult(
                        entry,
                        recipient,
                        MAIL_SKIPPED,
                        reason="send_failed",
                        detail=f"not taken by the relay within"
                        f" {order_phase.STATUS_MAIL_GIVE_UP}: {error.cause}"[:300],
                    )
                failed |= answer is None
            if answer is not None:
                self._apply(StatusMailDone(result=answer))
        if failed:
            self._orders_after = now + EFFECT_PAUSE

    # ------------------------------------------------------------------ e-mails

    def _mail_given_up(self, entry: int, now: datetime) -> bool:
        """A status e-mail that failed again long after its status is given up (under
        the patch ``STATUS_MAIL_GIVE_UP_PATCH``, asked only then: histories from before it
        kept retrying)."""
        return order_phase.status_mail_given_up(self._cart, entry, now) and workflow.patched(
            STATUS_MAIL_GIVE_UP_PATCH
        )

    def _sendable(self) -> list[StatusMail]:
        """Pending e-mails of an order that has its number (the e-mail names it)."""
        order = self._cart.order
        if order is None or order.number is None:
            return []
        return order_phase.pending_mails(self._cart)

    @staticmethod
    def _mail_key(mail: StatusMail) -> tuple[int, str]:
        return (mail.entry, mail.recipient)

    def _mail_input(self, mail: StatusMail) -> StatusMailInput:
        cart = self._cart
        order = cart.order
        assert order is not None
        entry = next((e for e in order.statuses if e.seq == mail.entry), None)
        customer = cart.customer
        return StatusMailInput(
            shop_id=cart.shop_id,
            cart_id=cart.cart_id,
            lineage=cart.lineage or "",
            entry=mail.entry,
            recipient=mail.recipient,
            letter=mail.letter,
            status_name=(entry.name if entry and entry.name else mail.letter),
            order_number=order.number,
            total=order.total,
            currency=order.currency,
            amount_paid=order.amount_paid,
            lines=list(cart.lines),
            customer_email=customer.email if customer else None,
            customer_name=customer.name if customer else None,
            locale=customer.locale if customer else None,
            delivery=order.delivery,
            set_by=entry.by if entry else "system",
            note=entry.note if entry else None,
        )


def _refused(error: ActivityError, make: Any) -> Any:
    """A result for an activity refused for good (a non-retryable error); ``None`` for a
    failure that a later attempt may get past (the activity gave up retrying)."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.non_retryable:
        workflow.logger.warning("order effect refused: %s", cause)
        return make(f"{cause.type}: {cause.message}"[:300])
    workflow.logger.warning("order effect not done yet: %s", cause)
    return None
