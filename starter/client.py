"""The Python client of cartkeeper: one async class for the storefront and for admins.

    carts = await CartkeeperClient.connect()   # or CartkeeperClient(temporal_client)
    cart = await carts.update_cart("shop-1", "cart-42", [CartLine(...)], "EUR")
    await carts.report_payment_result(
        "shop-1", "cart-42", attempt_id="pi_1", status="succeeded", amount=2100
    )
    cart = await carts.confirm("shop-1", "cart-42", admin="ann")

Every input is validated here, at the edge, before anything is sent: a refusal is a
``CartkeeperError`` carrying an ``ErrorCode`` (and its HTTP status), the same codes the
workflow's update validators use. Storefront events create the cart on first use
(update-with-start); payment results are signals (signal-with-start), accepted even while the
cart is busy or closed; admin actions are updates that the cart's state may refuse.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from workflows import machine
from workflows import search_attributes as sa
from workflows.contract import (
    AWAIT_ORDER,
    CONFIRM,
    DELETE,
    GET_CART,
    IDENTIFY_CUSTOMER,
    PAYMENT_RESULT,
    RECORD_VISIT,
    START_CHECKOUT,
    START_PAYMENT,
    TASK_QUEUE,
    UNLOCK,
    UPDATE_CART,
    WORKFLOW_NAME,
    Cart,
    CartInput,
    CartLine,
    CartPolicy,
    CartState,
    CartUpdated,
    CheckoutStarted,
    ConfirmCart,
    CustomerIdentified,
    CustomerInfo,
    CustomerVisited,
    DeleteCart,
    ErrorCode,
    PaymentMethod,
    PaymentResultReported,
    PaymentStarted,
    PaymentStatus,
    UnlockCart,
    workflow_id,
)

T = TypeVar("T")


class CartkeeperError(Exception):
    """A request was refused or could not be carried out."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return self.code.http_status


def _edge(check: Callable[[], T]) -> T:
    """Run a validation of ``workflows.machine`` here, before anything is sent."""
    try:
        return check()
    except machine.CartRefused as refused:
        raise CartkeeperError(refused.code, refused.message) from None


def _check_ids(shop_id: str, cart_id: str) -> None:
    for what, value in (("shop id", shop_id), ("cart id", cart_id)):
        if not machine.valid_id(value):
            raise CartkeeperError(
                ErrorCode.INVALID_ID,
                f"{what} {value!r} must be 1-64 letters, digits, '.', '_' or '-'",
            )


def normalize_customer(customer: CustomerInfo) -> CustomerInfo:
    """Validate a customer (deliverable e-mail syntax, real time zone) and normalise it."""
    _edge(lambda: machine.check_customer(customer))
    try:
        email = validate_email(customer.email, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise CartkeeperError(ErrorCode.INVALID_EMAIL, str(error)) from None
    if customer.time_zone is not None:
        try:
            ZoneInfo(customer.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CartkeeperError(
                ErrorCode.INVALID_CUSTOMER, f"unknown time zone {customer.time_zone!r}"
            ) from None
    return dataclasses.replace(customer, email=email)


class CartkeeperClient:
    def __init__(
        self,
        client: Client,
        *,
        task_queue: str = TASK_QUEUE,
        policy_for: Callable[[str], CartPolicy] | None = None,
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self._policy_for = policy_for or (lambda _shop: CartPolicy())

    @classmethod
    async def connect(cls, address: str | None = None) -> CartkeeperClient:
        """Connect as configured (``TEMPORAL_*`` variables, ``CARTKEEPER_*`` settings)."""
        from activities.settings import get_settings
        from starter.connect import connect

        settings = get_settings()
        return cls(
            await connect(address), task_queue=settings.task_queue, policy_for=settings.policy_for
        )

    # ------------------------------------------------------------------ storefront

    async def update_cart(
        self,
        shop_id: str,
        cart_id: str,
        lines: list[CartLine],
        currency: str,
        *,
        customer_id: str | None = None,
    ) -> Cart:
        """The customer's whole cart (lines replace the previous ones); creates the cart."""
        event = CartUpdated(lines=list(lines), currency=currency, customer_id=customer_id)
        _edge(lambda: machine.check_currency(currency))
        _edge(lambda: machine.check_lines(event.lines))
        return await self._storefront(shop_id, cart_id, UPDATE_CART, event)

    async def identify_customer(self, shop_id: str, cart_id: str, customer: CustomerInfo) -> Cart:
        event = CustomerIdentified(customer=normalize_customer(customer))
        return await self._storefront(shop_id, cart_id, IDENTIFY_CUSTOMER, event)

    async def record_visit(self, shop_id: str, cart_id: str, page: str | None = None) -> Cart:
        return await self._storefront(shop_id, cart_id, RECORD_VISIT, CustomerVisited(page=page))

    async def start_checkout(self, shop_id: str, cart_id: str) -> Cart:
        return await self._storefront(shop_id, cart_id, START_CHECKOUT, CheckoutStarted())

    async def start_payment(
        self,
        shop_id: str,
        cart_id: str,
        *,
        attempt_id: str,
        method: PaymentMethod | str,
        gateway: str,
        amount: int,
        currency: str | None = None,
    ) -> Cart:
        method = self._enum(PaymentMethod, method, ErrorCode.INVALID_PAYMENT)
        _edge(lambda: machine.check_attempt_id(attempt_id))
        _edge(lambda: machine.check_amount(amount))
        event = PaymentStarted(attempt_id, method, gateway, amount, currency)
        return await self._storefront(shop_id, cart_id, START_PAYMENT, event)

    async def await_order(self, shop_id: str, cart_id: str, timeout_seconds: float = 30) -> Cart:
        """For the customer back from the gateway: the cart once its order has a number
        (or once it left payment), or as it is after ``timeout_seconds``."""
        return await self._update(shop_id, cart_id, AWAIT_ORDER, float(timeout_seconds))

    # ------------------------------------------------------------------ payment gateway

    async def report_payment_result(
        self,
        shop_id: str,
        cart_id: str,
        *,
        attempt_id: str,
        status: PaymentStatus | str,
        amount: int,
        currency: str | None = None,
        card_last4: str | None = None,
        gateway: str | None = None,
    ) -> None:
        """A gateway's result: a signal, accepted whatever the cart is doing, and starting
        the cart's workflow again if it has closed, so that no result is ever dropped."""
        _check_ids(shop_id, cart_id)
        event = PaymentResultReported(
            attempt_id=attempt_id,
            status=self._enum(PaymentStatus, status, ErrorCode.INVALID_STATUS),
            amount=amount,
            currency=currency,
            card_last4=card_last4,
            gateway=gateway,
        )
        _edge(lambda: machine.check_payment_result(event))
        await self._call(
            self.client.start_workflow(
                WORKFLOW_NAME,
                self._input(shop_id, cart_id),
                id=workflow_id(shop_id, cart_id),
                task_queue=self.task_queue,
                start_signal=PAYMENT_RESULT,
                start_signal_args=[event],
                search_attributes=self._initial_search_attributes(shop_id),
                static_summary=f"cart {cart_id} of shop {shop_id}",
            )
        )

    # ------------------------------------------------------------------ admin

    async def confirm(
        self, shop_id: str, cart_id: str, *, admin: str = "admin", note: str | None = None,
        status: str = "P",
    ) -> Cart:
        """Convert a locked cart into an order (``P`` paid, or ``O`` open)."""
        return await self._update(
            shop_id, cart_id, CONFIRM, ConfirmCart(admin=admin, note=note, status=status)
        )

    async def unlock(
        self, shop_id: str, cart_id: str, *, admin: str = "admin", note: str | None = None
    ) -> Cart:
        """Let the customer continue with the same cart."""
        return await self._update(shop_id, cart_id, UNLOCK, UnlockCart(admin=admin, note=note))

    async def delete(
        self, shop_id: str, cart_id: str, *, admin: str = "admin", note: str | None = None
    ) -> Cart:
        """Delete the cart (the customer starts again). Deleting twice is one deletion."""
        return await self._update(shop_id, cart_id, DELETE, DeleteCart(admin=admin, note=note))

    # ------------------------------------------------------------------ reads

    async def get_cart(self, shop_id: str, cart_id: str) -> Cart:
        """The cart's whole state from its workflow (running or closed)."""
        _check_ids(shop_id, cart_id)
        handle = self.client.get_workflow_handle(workflow_id(shop_id, cart_id))
        return await self._call(handle.query(GET_CART, result_type=Cart))

    def handle(self, shop_id: str, cart_id: str) -> WorkflowHandle[Any, Cart]:
        return self.client.get_workflow_handle(workflow_id(shop_id, cart_id), result_type=Cart)

    # ------------------------------------------------------------------ plumbing

    def _input(self, shop_id: str, cart_id: str) -> CartInput:
        return CartInput(shop_id=shop_id, cart_id=cart_id, policy=self._policy_for(shop_id))

    @staticmethod
    def _initial_search_attributes(shop_id: str) -> TypedSearchAttributes:
        return TypedSearchAttributes(
            [
                SearchAttributePair(sa.CART_SHOP, shop_id),
                SearchAttributePair(sa.CART_STATE, str(CartState.ACTIVE)),
            ]
        )

    @staticmethod
    def _enum(kind: type[T], value: object, code: ErrorCode) -> T:
        try:
            return kind(value)  # type: ignore[call-arg]
        except ValueError:
            allowed = ", ".join(str(v) for v in kind)  # type: ignore[attr-defined]
            raise CartkeeperError(code, f"{value!r} is not one of: {allowed}") from None

    async def _storefront(self, shop_id: str, cart_id: str, update: str, event: Any) -> Cart:
        """An update that creates the cart's workflow if it does not run yet.

        A plain update first (the cheap, common case); update-with-start only when no run
        of the cart is open (a new cart, or one whose workflow retired: its new run
        restores it from the read model)."""
        _check_ids(shop_id, cart_id)
        handle = self.client.get_workflow_handle(workflow_id(shop_id, cart_id))
        try:
            return await self._call(handle.execute_update(update, event, result_type=Cart))
        except CartkeeperError as error:
            if error.code is not ErrorCode.CART_NOT_FOUND:
                raise
        start: WithStartWorkflowOperation[Any, Cart] = WithStartWorkflowOperation(
            WORKFLOW_NAME,
            self._input(shop_id, cart_id),
            id=workflow_id(shop_id, cart_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=self._initial_search_attributes(shop_id),
            static_summary=f"cart {cart_id} of shop {shop_id}",
            result_type=Cart,
        )
        return await self._call(
            self.client.execute_update_with_start_workflow(
                update, event, start_workflow_operation=start, result_type=Cart
            )
        )

    async def _update(self, shop_id: str, cart_id: str, update: str, arg: Any) -> Cart:
        """An update of an existing cart (admins never create carts)."""
        _check_ids(shop_id, cart_id)
        handle = self.client.get_workflow_handle(workflow_id(shop_id, cart_id))
        return await self._call(handle.execute_update(update, arg, result_type=Cart))

    @staticmethod
    async def _call(awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except WorkflowUpdateFailedError as error:
            raise _from_failure(error.cause) from None
        except WorkflowQueryFailedError as error:
            raise CartkeeperError(ErrorCode.INTERNAL, str(error)) from None
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise CartkeeperError(ErrorCode.CART_NOT_FOUND, "no such cart") from None
            if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise CartkeeperError(ErrorCode.TEMPORAL_UNAVAILABLE, error.message) from None
            raise CartkeeperError(ErrorCode.INTERNAL, error.message) from None


def _from_failure(cause: BaseException | None) -> CartkeeperError:
    """An update's ``ApplicationError`` (type = error code) as a ``CartkeeperError``."""
    if isinstance(cause, ApplicationError):
        try:
            return CartkeeperError(ErrorCode(cause.type or ""), cause.message)
        except ValueError:
            return CartkeeperError(ErrorCode.INTERNAL, cause.message)
    return CartkeeperError(ErrorCode.INTERNAL, str(cause))
