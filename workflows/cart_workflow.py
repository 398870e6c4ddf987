"""One workflow per cart: the single writer of the cart's state.

The workflow feeds outside messages (raw JSON, read by ``workflows.parsing``) and its own
timers to the pure state machine (``workflows.machine``) and performs the effects the
machine decides on: the order number and the read-model projection through activities,
the search attributes as commands. Effects never block: handlers answer at once, and the
one loop below fires timers on time and merely *starts* effect activities, collecting their
results when they complete. A database outage delays the read model and order numbers,
nothing else. Deterministic: no I/O, clocks or randomness here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import keyed_updates, machine
    from workflows import search_attributes as sa
    from workflows.contract import (
        ACTIVITY_PROJECT_CART,
        ACTIVITY_RESTORE_CART,
        AWAIT_ORDER,
        GET_CART,
        PAYMENT_RESULT,
        WORKFLOW_NAME,
        AdminActionRefused,
        CancellationRequested,
        Cart,
        CartInput,
        CartRestored,
        CartState,
        CartView,
        ErrorCode,
        OrderNumberAssigned,
        PaymentResultUnreadable,
        ProjectCartInput,
        ProjectedCart,
        RestoreCartInput,
        RestoredCart,
        RestoreFailed,
        view_of,
    )
    from workflows.effects import Decision, is_urgent, needs_number, search_fields
    from workflows.order_events import OrderStatusesRead, SetOrderStatus
    from workflows.order_phase import effects_pending
    from workflows.parsing import (
        MessageSpec,
        admin_name,
        parse_await_timeout,
        parse_payment_result,
    )
    from workflows.timers import is_retired, next_deadline

from workflows.alarm_clock import AlarmClock
from workflows.cart_mail import (
    EFFECT_GIVE_UP,
    EFFECT_PAUSE,
    EFFECT_RETRY,
    EFFECT_TIMEOUT,
    RESTORE_RETRY,
    RESTORE_TIMEOUT,
    CartMail,
)
from workflows.message_handlers import (
    MISSING,
    being_evicted,
    decode,
    refusal,
    summary,
    text_rules,
    with_messages,
)
from workflows.order_effects import OrderEffects
from workflows.signal_marks import marked


@workflow.defn(name=WORKFLOW_NAME)
@with_messages
class CartWorkflow(AlarmClock, CartMail, OrderEffects):
    @workflow.init
    def __init__(self, input: CartInput) -> None:
        if input.cart is not None:
            self._cart = input.cart
        else:
            self._cart = Cart(
                shop_id=input.shop_id,
                cart_id=input.cart_id,
                policy=input.policy,
                # the chain's first run: the same after a reset or a continue-as-new
                lineage=workflow.info().first_execution_run_id,
            )
        self._ready = input.restore_run_id is None
        # The read model: the version it holds, since when newer changes wait, the
        # activity writing it (with the version it writes), and when to try again after
        # it gave up. The same activity gives an order its number.
        self._projected_version = input.projected_version if input.cart is not None else 0
        self._dirty_since: datetime | None = None
        #: a change from a message or a timer (not an effect's result) waits to be
        #: written: it is written at once when the cart is urgent (``_projection_due``)
        self._change_unwritten = False
        self._collecting = False
        self._projecting: tuple[Any, int] | None = None
        self._project_after: datetime | None = None
        # The loop's one timer and its clock (``workflows.alarm_clock``).
        self._init_clock()
        # Search attributes as published (carried across continue-as-new by Temporal).
        self._search = self._published_search_fields()
        self._search_since: datetime | None = None
        self._wake = False
        self._sleeping_until: datetime | None = None
        #: set while the workflow waits for its handlers before it finishes or continues
        self._closing = False
        #: when the ``await_order`` calls waiting now must answer (the loop's alarm rings
        #: for the earliest: no timer of their own)
        self._answer_by: list[datetime] = []
        #: signals that arrived while a closed cart was being restored, or while an
        #: admin's status waited for the shop's registry, in order
        self._pending_signals: list[Callable[[], None]] = []
        #: admin statuses under way (reading the registry): later signals wait for them
        self._status_turns = 0
        # The e-mail effects (``workflows.cart_mail``): reminders and the lock alert.
        self._init_mail()
        # The order phase's effects (``workflows.order_effects``).
        self._init_orders()

    # ------------------------------------------------------------------ main loop

    @workflow.run
    async def run(self, input: CartInput) -> Cart:
        if input.restore_run_id is not None:
            await self._restore(input.restore_run_id)
        now = self._now()
        if self._cart.version > self._projected_version:
            self._dirty_since = now
            self._change_unwritten = True  # (what the last run did not write yet)
        if search_fields(self._cart) != self._search:
            self._search_since = now
        workflow.set_current_details(summary(self._cart))
        while True:
            try:
                done = await self._step()
            except asyncio.CancelledError:
                if being_evicted():
                    raise  # the worker drops this instance from its cache: not a request
                # Temporal's "Request Cancellation": never the end of a cart (see
                # ``workflows.transitions.cancellation_requested``).
                self._closing = False
                self._apply(CancellationRequested(requested_by="cancel-request"))
                continue
            if done:
                return self._cart

    async def _step(self) -> bool:
        """One turn of the loop; ``True`` when the workflow may finish."""
        now = self._now()
        self._collect_effects(now)
        self._decided(machine.tick(self._cart, now))
        self._start_effects(now)
        if self._may_retire(now):
            self._closing = True
            await workflow.wait_condition(workflow.all_handlers_finished)
            self._closing = False
            return self._may_retire(self._now())
        if self._should_continue_as_new():
            self._closing = True
            await workflow.wait_condition(workflow.all_handlers_finished)
            self._publish_search_attributes()
            workflow.continue_as_new(
                CartInput(
                    shop_id=self._cart.shop_id,
                    cart_id=self._cart.cart_id,
                    policy=self._cart.policy,
                    cart=self._cart,
                    projected_version=self._projected_version,
                )
            )
        await self._sleep_until(self._wake_at(now))
        return False

    def _wake_at(self, now: datetime) -> datetime | None:
        """When the loop must next run: a timer, or an effect that becomes due."""
        times = [next_deadline(self._cart)]
        if self._wants_projection() and self._projecting is None:
            times.append(max(self._projection_due(now), self._project_after or now))
        if self._search_since is not None:
            times.append(self._search_due())
        if self._answer_by:
            times.append(min(self._answer_by))
        times.append(self._mail_wake_at(now))
        times.append(self._orders_wake_at(now))
        due = [t for t in times if t is not None]
        return min(due) if due else None

    async def _sleep_until(self, wake_at: datetime | None) -> None:
        """Wait for a message that changes what is due, a finished effect, or the alarm."""
        self._wake = False
        self._arm(wake_at)
        self._sleeping_until = wake_at
        try:
            await workflow.wait_condition(
                lambda: self._wake or self._effect_finished() or self._alarm_rang()
            )
        finally:
            self._sleeping_until = None

    def _may_retire(self, now: datetime) -> bool:
        """Finished: the wait for late events is over and every effect is done."""
        return (
            is_retired(self._cart, now)
            and not self._wants_projection()
            and self._projecting is None
            and not self._mail_in_flight()
            and not self._orders_in_flight()
            and not effects_pending(self._cart)
        )

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._cart.policy.continue_as_new_after_events
        )

    # ------------------------------------------------------------------ effects

    def _wants_projection(self) -> bool:
        """The read model lags the cart, or the order waits for its number."""
        return self._dirty_since is not None or needs_number(self._cart)

    def _effect_finished(self) -> bool:
        return (
            (self._projecting is not None and self._projecting[0].done())
            or self._mail_finished()
            or self._orders_finished()
        )

    def _collect_effects(self, now: datetime) -> None:
        self._collecting = True
        try:
            self._collect_mail(now)
            self._collect_orders(now)
            self._collect_projection(now)
        finally:
            self._collecting = False

    def _collect_projection(self, now: datetime) -> None:
        """Apply what a finished projection returned (the order's number, if it gave one)."""
        if self._projecting is None or not self._projecting[0].done():
            return
        (handle, version), self._projecting = self._projecting, None
        try:
            result: ProjectedCart = handle.result()
        except ActivityError as error:
            workflow.logger.warning("read model not written yet: %s", error.cause)
            self._project_after = now + EFFECT_PAUSE
            return
        self._project_after = None
        written = version
        if result.number is not None and result.assigned_at is not None:
            unchanged = self._cart.version == version
            at = max(result.assigned_at, self._cart.updated_at or result.assigned_at)
            self._apply(OrderNumberAssigned(number=result.number), at)
            if result.statuses is not None:
                self._apply(OrderStatusesRead(statuses=result.statuses), at)
            if unchanged and at == result.assigned_at:
                written = result.version  # the cart as written, number included
        self._projected_version = max(self._projected_version, written)
        if self._cart.version == self._projected_version:
            self._dirty_since = None
        elif self._dirty_since is None:
            self._dirty_since = now

    def _start_effects(self, now: datetime) -> None:
        """Start the effects that are due; never wait for them."""
        cart = self._cart
        if (
            self._projecting is None
            and self._wants_projection()
            and now >= self._projection_due(now)
            and (self._project_after is None or now >= self._project_after)
        ):
            # A regular activity: the workflow task is not held while the database writes.
            # A new order's first statuses are read by the projection that numbers it.
            handle = workflow.start_activity(
                ACTIVITY_PROJECT_CART,
                ProjectCartInput(
                    cart=cart,
                    assign_number=needs_number(cart),
                    read_statuses=self._fold_statuses(),
                ),
                result_type=ProjectedCart,
                start_to_close_timeout=EFFECT_TIMEOUT,
                schedule_to_close_timeout=EFFECT_GIVE_UP,
                retry_policy=EFFECT_RETRY,
            )
            self._projecting = (handle, cart.version)
            self._change_unwritten = False
        if self._search_since is not None and now >= self._search_due():
            self._publish_search_attributes()
        self._start_mail(now)
        self._start_orders(now)

    def _projection_due(self, now: datetime) -> datetime:
        """Changes are written together, at most ``projection_interval_seconds`` after the
        first; a cart that an admin acts on is written at once, and an order that waits
        for its number is numbered (and written) at once. The results of an order's
        effects (its status read, stock moves, e-mails) are written together once the
        ones under way are in, within the interval (``_order_work_coalesced``)."""
        since = self._dirty_since or now
        if needs_number(self._cart):
            return since
        if is_urgent(self._cart) and (self._change_unwritten or not self._order_work_coalesced()):
            return since
        return since + timedelta(seconds=self._cart.policy.projection_interval_seconds)

    def _search_due(self) -> datetime:
        assert self._search_since is not None
        if is_urgent(self._cart):
            return self._search_since
        return self._search_since + timedelta(seconds=self._cart.policy.projection_interval_seconds)

    def _published_search_fields(self) -> tuple[Any, ...]:
        """The search attributes the run started with (set by the client, or carried
        over by continue-as-new), in ``search_fields`` order."""
        current = workflow.info().typed_search_attributes
        return tuple(current.get(key) for key in sa.ALL_KEYS)

    def _publish_search_attributes(self) -> None:
        """Upsert the search attributes that changed (no personal data)."""
        wanted = search_fields(self._cart)
        updates: list[SearchAttributeUpdate[Any]] = []
        for key, old, new in zip(sa.ALL_KEYS, self._search, wanted, strict=True):
            if old != new:
                updates.append(key.value_unset() if new is None else key.value_set(new))
        if updates:
            workflow.upsert_search_attributes(updates)
        self._search = wanted
        self._search_since = None

    async def _restore(self, run_id: str) -> None:
        """A new run of a cart whose earlier run closed continues from that run's state
        (its result, or a replay of a terminated run; the read model as a last resort).
        Until then, updates are accepted unchecked and wait: no validator ever checks a
        cart that is not loaded."""
        restored: RestoredCart = await workflow.execute_activity(
            ACTIVITY_RESTORE_CART,
            RestoreCartInput(shop_id=self._cart.shop_id, cart_id=self._cart.cart_id, run_id=run_id),
            result_type=RestoredCart,
            start_to_close_timeout=RESTORE_TIMEOUT,
            retry_policy=RESTORE_RETRY,
        )
        if restored.cart is not None:
            self._cart = restored.cart
            order = restored.cart.order
            self._phase_asked_for = order.created_at if order else None
            self._projected_version = restored.cart.version
            self._search = self._published_search_fields()
            self._apply(CartRestored(source=restored.source, run_id=run_id))
        else:
            self._apply(RestoreFailed(detail=restored.detail or "no earlier state was found"))
        self._ready = True
        self._flush_signals()

    # ------------------------------------------------------------------ applying events

    def _apply(self, event: object, at: datetime | None = None) -> None:
        """Apply an event to the cart (at ``at``, else now); a refusal raises
        ``machine.CartRefused``."""
        if self._should_continue_as_new():
            self._wake = True  # a burst of messages can grow the history while we sleep
        self._decided(machine.apply(self._cart, event, at or self._now()))

    def _decided(self, decision: Decision) -> None:
        if not decision.changed:
            return
        self._maybe_manage_order()
        if not self._collecting:
            self._change_unwritten = True
        now = self._now()
        if self._dirty_since is None:
            self._dirty_since = now
        if self._search_since is None and search_fields(self._cart) != self._search:
            self._search_since = now
        workflow.set_current_details(summary(self._cart))
        wake_at = self._wake_at(now)
        if wake_at is not None and (self._sleeping_until is None or wake_at < self._sleeping_until):
            self._wake = True

    def _parse(self, spec: MessageSpec, raw: object) -> object:
        if raw is MISSING:
            raise machine.CartRefused(ErrorCode.INVALID_INPUT, f"{spec.name} takes a JSON object")
        return spec.parse(raw)

    def _validate(self, spec: MessageSpec, payload: RawValue) -> None:
        """Update validators: a refused update never enters the history. While a closed
        cart is being restored there is nothing to check against yet: the handler checks
        once it is loaded."""
        if not self._ready:
            return
        key = keyed_updates.key_of(self._update_id())
        if key is not None and keyed_updates.applied(self._cart, key, self._clock()):
            return  # a retry of a keyed update the cart applied: answered, not checked
        try:
            machine.check(self._cart, self._parse(spec, decode(payload)))
        except machine.CartRefused as refused:
            raise refusal(refused) from None

    async def _on_update(self, spec: MessageSpec, payload: RawValue) -> CartView:
        if spec.needs_statuses:
            # (waits for the restore too, behind the signals that came before it)
            await self._status_turn()
        elif not self._ready:
            await workflow.wait_condition(lambda: self._ready)
        raw = decode(payload)
        try:
            key = self._keyed_update()
            if key is not None and keyed_updates.applied(self._cart, key, self._now()):
                # A retry of a keyed update an earlier run applied (Temporal knows an
                # update id within one run only): the cart as it is, nothing applied.
                return view_of(self._cart)
            with text_rules(raw):
                event = self._parse(spec, raw)
                if spec.needs_statuses and isinstance(event, SetOrderStatus):
                    machine.check(self._cart, event)  # before the registry is read
                    event.statuses = await self._read_statuses()
                self._apply(event)
            if key is not None:
                keyed_updates.remember(self._cart, key, self._now())
        except machine.CartRefused as refused:
            raise refusal(refused) from None
        finally:
            if spec.needs_statuses:
                self._status_done()
        return view_of(self._cart)

    @staticmethod
    def _update_id() -> str | None:
        info = workflow.current_update_info()
        return info.id if info is not None else None

    def _keyed_update(self) -> str | None:
        """What the cart keeps of this update's id if it was sent under an
        ``Idempotency-Key`` (``workflows.keyed_updates``), else ``None``. The patch is
        asked for keyed updates only: other carts' histories get no marker; a history
        recorded before it replays as it was (no keyed update remembered or answered)."""
        key = keyed_updates.key_of(self._update_id())
        if key is None or not workflow.patched(keyed_updates.KEYED_UPDATES_PATCH):
            return None
        return key

    # An admin's status reads the registry before it applies; the signals sent after it
    # wait (``_pending_signals``), so that signals apply in the order they came.

    def _signals_wait(self) -> bool:
        return not self._ready or self._status_turns > 0

    def _flush_signals(self) -> None:
        while self._pending_signals and not self._signals_wait():
            self._pending_signals.pop(0)()

    async def _status_turn(self) -> None:
        """Wait until the signals that came before are applied; then hold later ones."""
        if not self._signals_wait() and not self._pending_signals:
            self._status_turns += 1
            return
        turn = [False]

        def go() -> None:
            turn[0] = True
            self._status_turns += 1

        self._pending_signals.append(go)
        await workflow.wait_condition(lambda: turn[0])

    def _status_done(self) -> None:
        self._status_turns -= 1
        self._flush_signals()

    async def _on_status_signal(self, spec: MessageSpec, payload: RawValue) -> None:
        """A signal that needs the shop's order statuses: read them, then apply it like
        the other admin signals (a refusal, an unreadable registry included, is kept)."""
        await self._status_turn()
        raw = decode(payload)
        try:
            with marked(lambda: self._cart), text_rules(raw):
                try:
                    event = self._parse(spec, raw)
                    assert isinstance(event, SetOrderStatus)
                    machine.check(self._cart, event)
                    try:
                        event.statuses = await self._read_statuses()
                    except ApplicationError as error:
                        raise machine.CartRefused(
                            ErrorCode.STATUSES_UNAVAILABLE, str(error)
                        ) from None
                    self._apply(event)
                except machine.CartRefused as refused:
                    self._signal_refused(spec, raw, refused)
        finally:
            self._status_done()

    def _on_signal(self, spec: MessageSpec, payload: RawValue) -> None:
        if self._signals_wait():
            # Signals are applied in order once the cart is loaded (and after an admin's
            # status that came before them).
            self._pending_signals.append(lambda: self._on_signal(spec, payload))
            return
        raw = decode(payload)
        with marked(lambda: self._cart), text_rules(raw):
            try:
                self._apply(self._parse(spec, raw))
            except machine.CartRefused as refused:
                self._signal_refused(spec, raw, refused)

    def _signal_refused(self, spec: MessageSpec, raw: object, refused: machine.CartRefused) -> None:
        """A refused signal is kept in the journal with its reason."""
        self._apply(
            AdminActionRefused(
                action=spec.name,
                admin=spec.sender or admin_name(raw),
                code=str(refused.code),
                reason=refused.message,
            )
        )

    # ------------------------------------------------------------------ messages
    # The storefront and admin updates (and the admin signals) come from the table
    # ``workflows.parsing.MESSAGES`` (``_with_messages``); these are the others.

    @workflow.update(
        name=AWAIT_ORDER,
        description="Storefront: the customer is back from the gateway; wait (at most "
        "timeout_seconds, up to 300) for the order and its number. 30",
    )
    async def await_order(self, payload: RawValue) -> CartView:
        """Answers once the order has its number, the cart left payment, the workflow is
        about to continue as new, or the timeout passed: the cart as it then is."""
        try:
            timeout = parse_await_timeout(decode(payload))
        except machine.CartRefused as refused:
            raise refusal(refused) from None
        if not self._ready:
            await workflow.wait_condition(lambda: self._ready)

        def settled() -> bool:
            cart = self._cart
            if self._closing:
                return True
            if cart.order is not None:
                return cart.order.number is not None
            return cart.state is not CartState.PAYMENT_PENDING

        if not settled():
            deadline = self._now() + timedelta(seconds=timeout)
            self._answer_by.append(deadline)
            if self._sleeping_until is None or deadline < self._sleeping_until:
                self._wake = True  # the loop re-arms its alarm for this deadline
            try:
                await workflow.wait_condition(lambda: settled() or self._now() >= deadline)
            finally:
                self._answer_by.remove(deadline)
        return view_of(self._cart)

    @await_order.validator
    def _check_await_order(self, payload: RawValue) -> None:
        try:
            parse_await_timeout(decode(payload))
        except machine.CartRefused as refused:
            raise refusal(refused) from None

    @workflow.signal(
        name=PAYMENT_RESULT,
        description='Gateway: a payment result, never refused. {"attempt_id": "pi_1", '
        '"status": "succeeded", "amount": 2100, "currency": "EUR", "card_last4": "4242", '
        '"gateway": "stripe"}; an unreadable one is kept for an admin',
    )
    def payment_result(self, payload: RawValue) -> None:
        if self._signals_wait():
            self._pending_signals.append(lambda: self.payment_result(payload))
            return
        with marked(lambda: self._cart):
            self._payment_result(payload)

    def _payment_result(self, payload: RawValue) -> None:
        raw = decode(payload)
        if raw is MISSING:
            encoding = payload.payload.metadata.get("encoding", b"").decode(errors="replace")
            self._apply(
                PaymentResultUnreadable(
                    problem=f"the payload is not JSON (encoding {encoding!r})",
                    excerpt=f"{len(payload.payload.data)} bytes",
                )
            )
            return
        with text_rules(raw):
            self._apply(parse_payment_result(raw))

    # ------------------------------------------------------------------ reads

    @workflow.query(
        name=GET_CART,
        description="The whole cart: state, lines, payments, order, attention items,"
        " deadlines, journal.",
    )
    def get_cart(self) -> Cart:
        return self._cart
