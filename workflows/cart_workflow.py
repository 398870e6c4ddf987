"""One workflow per cart: the single writer of the cart's state.

The workflow applies the pure state machine (``workflows.machine``) to storefront updates,
payment-result signals, admin updates and its own timers, and performs the effects through
activities: restoring a closed cart's record, assigning the order number, projecting the
cart into the read model. Deterministic: no I/O, clocks or randomness here.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import machine
    from workflows import search_attributes as sa
    from workflows.contract import (
        ACTIVITY_ALLOCATE_ORDER_NUMBER,
        ACTIVITY_LOAD_CART_RECORD,
        ACTIVITY_PROJECT_CART,
        AWAIT_ORDER,
        CONFIRM,
        DELETE,
        GET_CART,
        IDENTIFY_CUSTOMER,
        PAYMENT_RESULT,
        RECORD_VISIT,
        START_CHECKOUT,
        START_PAYMENT,
        UNLOCK,
        UPDATE_CART,
        WORKFLOW_NAME,
        AllocateOrderNumberInput,
        Cart,
        CartEvent,
        CartInput,
        CartRecordRequest,
        CartState,
        CartUpdated,
        CheckoutStarted,
        ConfirmCart,
        CustomerIdentified,
        CustomerVisited,
        DeleteCart,
        OrderNumberAssigned,
        PaymentResultReported,
        PaymentStarted,
        ProjectCartInput,
        UnlockCart,
    )

# Effects retry until they succeed: a database outage delays the read model and the order
# number, it never loses them. Each attempt is short.
EFFECT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
EFFECT_TIMEOUT = timedelta(seconds=10)


#: states an admin acts on: their carts reach the read model without delay
_URGENT_STATES = frozenset(
    {CartState.ORDERED, CartState.LOCKED, CartState.EXPIRED, CartState.DELETED}
)


def summary(cart: Cart) -> str:
    """The one line shown in the Temporal UI's current details (no personal data)."""
    parts = [f"**{cart.state}**", f"{cart.item_count} item(s)"]
    if cart.currency:
        parts.append(f"{cart.total / 100:.2f} {cart.currency}")
    if cart.order is not None:
        number = f"#{cart.order.number}" if cart.order.number else "(numbering)"
        parts.append(f"order {number} {cart.order.status}")
    if cart.lock_reason:
        parts.append(f"locked: {cart.lock_reason}")
    if cart.attention:
        parts.append(f"needs admin: {', '.join(sorted({a.kind for a in cart.attention}))}")
    return " · ".join(parts)


@workflow.defn(name=WORKFLOW_NAME)
class CartWorkflow:
    @workflow.init
    def __init__(self, input: CartInput) -> None:
        self._policy = input.policy
        self._cart = input.cart or Cart(shop_id=input.shop_id, cart_id=input.cart_id)
        self._ready = input.cart is not None
        # Version last written to the read model, and since when newer changes wait.
        self._projected_version = self._cart.version if input.cart is not None else 0
        self._dirty_since: datetime | None = None
        self._sleeping_until: datetime | None = None
        self._wake = False
        self._search: dict[str, Any] = {}

    # ------------------------------------------------------------------ main loop

    @workflow.run
    async def run(self, input: CartInput) -> Cart:
        if input.cart is None:
            await self._restore()
        self._ready = True
        self._publish_search_attributes()
        workflow.set_current_details(summary(self._cart))
        while True:
            now = workflow.now()
            if machine.tick(self._cart, now, self._policy):
                self._changed()
            order = self._cart.order
            if order is not None and order.number is None:
                await self._assign_order_number()
                continue
            if self._dirty_since is not None and (
                self._retiring(now) or now >= self._projection_due()
            ):
                await self._project()
                continue
            if self._retiring(now):
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._cart.version == self._projected_version:
                    return self._cart
                continue
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._cart.version != self._projected_version:
                    await self._project()
                workflow.continue_as_new(
                    CartInput(
                        shop_id=self._cart.shop_id,
                        cart_id=self._cart.cart_id,
                        policy=self._policy,
                        cart=self._cart,
                    )
                )
            await self._sleep_until(self._wake_at())

    def _wake_at(self) -> datetime | None:
        """When the loop must next run: the earliest timer or the projection that is due."""
        times = [machine.next_deadline(self._cart)]
        if self._dirty_since is not None:
            times.append(self._projection_due())
        due = [t for t in times if t is not None]
        return min(due) if due else None

    def _projection_due(self) -> datetime:
        """Changes are written together, at most ``projection_interval_seconds`` after the
        first; a cart that reached a state an admin acts on is written at once."""
        assert self._dirty_since is not None
        cart = self._cart
        if cart.state in _URGENT_STATES and (cart.order is None or cart.order.number):
            return self._dirty_since
        return self._dirty_since + timedelta(seconds=self._policy.projection_interval_seconds)

    async def _sleep_until(self, wake_at: datetime | None) -> None:
        self._wake = False
        self._sleeping_until = wake_at
        timeout = None
        if wake_at is not None:
            timeout = max((wake_at - workflow.now()).total_seconds(), 0.001)
        try:
            await workflow.wait_condition(lambda: self._wake, timeout=timeout)
        except TimeoutError:
            pass  # a timer is due
        finally:
            self._sleeping_until = None

    def _retiring(self, now: datetime) -> bool:
        return machine.is_retired(self._cart, now)

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._policy.continue_as_new_after_events
        )

    # ------------------------------------------------------------------ effects

    async def _restore(self) -> None:
        """A new run of a cart id that existed before (its workflow had closed, or was
        terminated) continues from the cart's last projected record."""
        record = await workflow.execute_local_activity(
            ACTIVITY_LOAD_CART_RECORD,
            CartRecordRequest(shop_id=self._cart.shop_id, cart_id=self._cart.cart_id),
            result_type=Cart | None,  # type: ignore[arg-type]
            start_to_close_timeout=EFFECT_TIMEOUT,
            retry_policy=EFFECT_RETRY,
        )
        if record is not None:
            self._cart = record
            self._projected_version = record.version
            workflow.logger.info("cart restored from its record at version %s", record.version)

    async def _assign_order_number(self) -> None:
        number = await workflow.execute_local_activity(
            ACTIVITY_ALLOCATE_ORDER_NUMBER,
            AllocateOrderNumberInput(shop_id=self._cart.shop_id, cart_id=self._cart.cart_id),
            result_type=int,
            start_to_close_timeout=EFFECT_TIMEOUT,
            retry_policy=EFFECT_RETRY,
        )
        self._apply(OrderNumberAssigned(number=number))

    async def _project(self) -> None:
        """Write the cart to the read model and its search attributes for ops; both lag the
        workflow by the same bounded interval."""
        version = self._cart.version
        self._publish_search_attributes()
        # A regular activity: the workflow task is not held while the database writes, so
        # storefront updates go on meanwhile.
        await workflow.execute_activity(
            ACTIVITY_PROJECT_CART,
            ProjectCartInput(cart=self._cart),
            start_to_close_timeout=EFFECT_TIMEOUT,
            retry_policy=EFFECT_RETRY,
        )
        self._projected_version = max(self._projected_version, version)
        if self._cart.version == self._projected_version:
            self._dirty_since = None
        else:
            self._dirty_since = workflow.now()

    # ------------------------------------------------------------------ applying events

    def _apply(self, event: CartEvent) -> None:
        self._check_history()
        try:
            changed = machine.apply(self._cart, event, workflow.now(), self._policy)
        except machine.CartRefused as refused:
            raise ApplicationError(refused.message, type=refused.code, non_retryable=True) from None
        if changed:
            self._changed()

    def _changed(self) -> None:
        if self._dirty_since is None:
            self._dirty_since = workflow.now()
        workflow.set_current_details(summary(self._cart))
        wake_at = self._wake_at()
        order = self._cart.order
        needs_number = order is not None and order.number is None
        if needs_number or (
            wake_at is not None
            and (self._sleeping_until is None or wake_at < self._sleeping_until)
        ):
            self._wake = True

    def _publish_search_attributes(self) -> None:
        """Upsert the search attributes that changed (no personal data)."""
        cart = self._cart
        wanted: dict[str, Any] = {
            sa.CART_STATE.name: (sa.CART_STATE, str(cart.state)),
            sa.CART_SHOP.name: (sa.CART_SHOP, cart.shop_id),
            sa.CART_TOTAL.name: (sa.CART_TOTAL, cart.total),
            sa.CART_CURRENCY.name: (sa.CART_CURRENCY, cart.currency),
            sa.CART_ORDER_NUMBER.name: (
                sa.CART_ORDER_NUMBER,
                cart.order.number if cart.order else None,
            ),
            sa.CART_LOCKED_AT.name: (sa.CART_LOCKED_AT, cart.locked_at),
            sa.CART_ABANDONED_AT.name: (sa.CART_ABANDONED_AT, cart.abandoned_at),
            sa.CART_NEEDS_ADMIN.name: (sa.CART_NEEDS_ADMIN, cart.needs_admin),
        }
        updates: list[SearchAttributeUpdate[Any]] = []
        for name, (key, value) in wanted.items():
            if self._search.get(name, ...) == value:
                continue
            self._search[name] = value
            updates.append(key.value_unset() if value is None else key.value_set(value))
        if updates:
            workflow.upsert_search_attributes(updates)

    async def _handle(self, event: CartEvent) -> Cart:
        if not self._ready:
            await workflow.wait_condition(lambda: self._ready)
        self._apply(event)
        return self._cart

    def _check_history(self) -> None:
        """Wake the loop to continue as new once the history is long enough (a burst of
        messages can grow it while the loop sleeps)."""
        if self._should_continue_as_new():
            self._wake = True

    def _validate(self, event: CartEvent) -> None:
        """Update validators: a refused update never enters the history."""
        try:
            machine.check(self._cart, event, self._policy)
        except machine.CartRefused as refused:
            raise ApplicationError(refused.message, type=refused.code, non_retryable=True) from None

    # ------------------------------------------------------------------ storefront

    @workflow.update(name=UPDATE_CART)
    async def update_cart(self, event: CartUpdated) -> Cart:
        return await self._handle(event)

    @update_cart.validator
    def _check_update_cart(self, event: CartUpdated) -> None:
        self._validate(event)

    @workflow.update(name=IDENTIFY_CUSTOMER)
    async def identify_customer(self, event: CustomerIdentified) -> Cart:
        return await self._handle(event)

    @identify_customer.validator
    def _check_identify_customer(self, event: CustomerIdentified) -> None:
        self._validate(event)

    @workflow.update(name=RECORD_VISIT)
    async def record_visit(self, event: CustomerVisited) -> Cart:
        return await self._handle(event)

    @record_visit.validator
    def _check_record_visit(self, event: CustomerVisited) -> None:
        self._validate(event)

    @workflow.update(name=START_CHECKOUT)
    async def start_checkout(self, event: CheckoutStarted) -> Cart:
        return await self._handle(event)

    @start_checkout.validator
    def _check_start_checkout(self, event: CheckoutStarted) -> None:
        self._validate(event)

    @workflow.update(name=START_PAYMENT)
    async def start_payment(self, event: PaymentStarted) -> Cart:
        return await self._handle(event)

    @start_payment.validator
    def _check_start_payment(self, event: PaymentStarted) -> None:
        self._validate(event)

    @workflow.update(name=AWAIT_ORDER)
    async def await_order(self, timeout_seconds: float) -> Cart:
        """The customer is back from the gateway: wait (bounded) for the order and its
        number, or for the cart to leave payment; return the cart as it then is."""

        def settled() -> bool:
            cart = self._cart
            if cart.order is not None:
                return cart.order.number is not None
            return self._ready and cart.state is not CartState.PAYMENT_PENDING

        deadline = workflow.now() + timedelta(seconds=timeout_seconds)
        # Re-check after waking: a signal handled in the same activation may have changed
        # the cart again (an order just created still waits for its number).
        while not settled() and workflow.now() < deadline:
            remaining = (deadline - workflow.now()).total_seconds()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(settled, timeout=max(remaining, 0.001))
        return self._cart

    @await_order.validator
    def _check_await_order(self, timeout_seconds: float) -> None:
        if not isinstance(timeout_seconds, int | float) or not 0 <= timeout_seconds <= 300:
            raise ApplicationError(
                "timeout_seconds must be between 0 and 300", type="invalid_input",
                non_retryable=True,
            )

    # ------------------------------------------------------------------ payment gateway

    @workflow.signal(name=PAYMENT_RESULT)
    async def payment_result(self, event: PaymentResultReported) -> None:
        """Accepted even while the cart is busy; deduplicated by attempt id and status.
        Never refused: an invalid result is recorded on the cart for an admin."""
        if not self._ready:
            await workflow.wait_condition(lambda: self._ready)
        self._apply(event)

    # ------------------------------------------------------------------ admin

    @workflow.update(name=CONFIRM)
    async def confirm(self, event: ConfirmCart) -> Cart:
        return await self._handle(event)

    @confirm.validator
    def _check_confirm(self, event: ConfirmCart) -> None:
        self._validate(event)

    @workflow.update(name=UNLOCK)
    async def unlock(self, event: UnlockCart) -> Cart:
        return await self._handle(event)

    @unlock.validator
    def _check_unlock(self, event: UnlockCart) -> None:
        self._validate(event)

    @workflow.update(name=DELETE)
    async def delete(self, event: DeleteCart) -> Cart:
        return await self._handle(event)

    @delete.validator
    def _check_delete(self, event: DeleteCart) -> None:
        self._validate(event)

    # ------------------------------------------------------------------ reads

    @workflow.query(name=GET_CART)
    def get_cart(self) -> Cart:
        return self._cart
