"""The Python client of cartkeeper: one async class for the storefront, gateways and admins.

    carts = await CartkeeperClient.connect()   # or CartkeeperClient(temporal_client)
    view = await carts.update_cart("shop-1", "cart-42", [CartLine(...)], "EUR")
    await carts.report_payment_result(
        "shop-1", "cart-42", attempt_id="pi_1", status="succeeded", amount=2100
    )
    view = await carts.confirm("shop-1", "cart-42", admin="ann")
    cart = await carts.get_cart("shop-1", "cart-42")       # the whole cart

Every input is validated here, at the edge, with the workflow's own parser and checks: a
refusal is a ``CartkeeperError`` carrying an ``ErrorCode`` (and its HTTP status). Updates
answer with a ``CartView`` (state, version, totals, order, attention); ``get_cart`` gives
the whole ``Cart``.

Creating and bringing back carts: a storefront event for a cart this client has not seen
running is one update-with-start (one RPC, new cart or not); for a cart it knows to be
running, a plain update (cheaper for the server). If the cart's workflow has closed (it
retired, or was terminated), the start is refused by Temporal's ``REJECT_DUPLICATE``
policy with the closed run's id, and the client starts a new run that continues from that
run's state. Payment results do the
same with signal-with-start, so a late result is never dropped. Admin actions never
create a cart: they bring a closed one back only if it existed.

Update ids. An update is sent with the SDK's random id, except within
``idempotent_updates(base)`` (the HTTP API's ``Idempotency-Key``,
``starter.web.idempotency``): there each update a cart is sent gets an id
``idem-<hex>`` derived from ``base``, the cart's workflow id, the update's name and its
payload (``update_id``), so the same request sent again sends the same update id.
Temporal, which keeps one outcome per update id in a run, answers the first outcome
instead of applying it again (an update still waiting for a worker included); in a later
run of the cart (after a continue-as-new, or a closed cart brought back) the cart itself
answers an ``idem-`` id it applied (``workflows.keyed_updates``). ``await_order`` (a
wait, it changes nothing) keeps random ids. What became of each keyed update is noted on
the ``KeyedUpdates`` the context gives: whether every one failed for sure (then a retry
may send new ids, ``starter.web.idempotency``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from starter.client_errors import CartkeeperError, call, retry_closing
from starter.order_actions import OrderActions
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
    RESOLVE,
    SEND_REMINDER,
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
    CartView,
    CustomerInfo,
    ErrorCode,
    PaymentMethod,
    PaymentResultReported,
    PaymentStatus,
    workflow_id,
)
from workflows.events import AdminAction
from workflows.order_parsing import ALL_MESSAGES_BY_NAME
from workflows.parsing import parse_await_timeout

__all__ = [
    "CartkeeperClient",
    "CartkeeperError",
    "KeyedUpdates",
    "check_ids",
    "idempotent_updates",
    "normalize_customer",
    "update_id",
]

T = TypeVar("T")

#: a workflow task a worker took but never finished (it was killed) is given to another
#: worker after this long (the SDK's default is 10 s; the cart's tasks take milliseconds)
TASK_TIMEOUT = timedelta(seconds=5)

#: how many running carts a client remembers (to send them plain updates)
RUNNING_CARTS_KEPT = 10_000


@dataclass
class KeyedUpdates:
    """The updates one request sends within ``idempotent_updates``: the base of their
    ids, and what became of each."""

    base: str
    #: each update id sent -> whether it was applied or may have been (``False``: its
    #: latest answer was a failure of the update itself, ``CartkeeperError.update_failed``:
    #: nothing applied). A later answer of the same id replaces an earlier one (a run
    #: that was closing, then the next run's answer).
    outcomes: dict[str, bool] = field(default_factory=dict)

    @property
    def all_failed(self) -> bool:
        """Updates were sent, and every one failed for sure: the request changed no cart,
        and Temporal would answer a retry of these ids with the same failures."""
        return bool(self.outcomes) and not any(self.outcomes.values())


#: the updates of this context's request (``idempotent_updates``)
_keyed: ContextVar[KeyedUpdates | None] = ContextVar("cartkeeper_keyed_updates", default=None)

#: updates that change nothing (they wait): always the SDK's random id, so that each wait
#: waits (one request may wait several times, and a repeat must wait again)
_RANDOM_ID_UPDATES = frozenset({AWAIT_ORDER})


@contextlib.contextmanager
def idempotent_updates(base: str | KeyedUpdates) -> Iterator[KeyedUpdates]:
    """Within it (this task and the tasks it starts), every update a ``CartkeeperClient``
    sends has an id derived from ``base`` (``update_id``): a request that is sent again
    with the same ``base`` sends the same update ids, and Temporal (or, in a later run,
    the cart: ``workflows.keyed_updates``) answers an update id the cart already has with
    that update's outcome instead of applying it twice. ``base`` must name one request
    (an idempotency key and its request's digest). Gives the ``KeyedUpdates`` where the
    outcome of each update sent is noted (``base`` itself, when it is one)."""
    updates = base if isinstance(base, KeyedUpdates) else KeyedUpdates(base)
    token = _keyed.set(updates)
    try:
        yield updates
    finally:
        _keyed.reset(token)


def update_id(wid: str, update: str, payload: Any) -> str | None:
    """The id of update ``update`` of ``payload`` to the cart ``wid``: derived from the
    ``idempotent_updates`` base in force, else ``None`` (the SDK's random id)."""
    keyed = _keyed.get()
    if keyed is None or update in _RANDOM_ID_UPDATES:
        return None
    base = keyed.base
    text = json.dumps(
        [base, wid, update, payload],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return "idem-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _edge(check: Callable[[], T]) -> T:
    """Run a validation of ``workflows`` here, before anything is sent."""
    try:
        return check()
    except machine.CartRefused as refused:
        raise CartkeeperError(refused.code, refused.message) from None


def check_ids(shop_id: str, cart_id: str) -> None:
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


def to_json(event: Any) -> dict[str, Any]:
    """An event as the plain JSON object the workflow reads (``workflows.parsing``)."""
    return dataclasses.asdict(event)


class CartkeeperClient(OrderActions):
    def __init__(
        self,
        client: Client,
        *,
        task_queue: str = TASK_QUEUE,
        policy_for: Callable[[str], CartPolicy] | None = None,
        update_timeout: float | None = None,
    ) -> None:
        """``update_timeout``: how long an update may wait for a worker to apply it (the
        SDK's default when ``None``); past it, ``ErrorCode.UPDATE_PENDING``."""
        self.client = client
        self.task_queue = task_queue
        self._policy_for = policy_for or (lambda _shop: CartPolicy())
        self._rpc_timeout = timedelta(seconds=update_timeout) if update_timeout else None
        #: workflow ids of carts seen running lately (most recent last), for plain updates
        self._running: OrderedDict[str, None] = OrderedDict()

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
    ) -> CartView:
        """The customer's whole cart (lines replace the previous ones); creates the cart."""
        payload = {
            "lines": [dataclasses.asdict(line) for line in lines],
            "currency": currency,
            "customer_id": customer_id,
        }
        event = self._parsed(UPDATE_CART, payload)
        _edge(lambda: machine.check_currency(event.currency))
        _edge(lambda: machine.check_lines(event.lines))
        if customer_id is not None and not machine.valid_id(customer_id):
            raise CartkeeperError(ErrorCode.INVALID_CUSTOMER, "customer_id is not a valid id")
        return await self._storefront(shop_id, cart_id, UPDATE_CART, payload)

    async def identify_customer(
        self, shop_id: str, cart_id: str, customer: CustomerInfo
    ) -> CartView:
        payload = {"customer": to_json(normalize_customer(customer))}
        self._parsed(IDENTIFY_CUSTOMER, payload)
        return await self._storefront(shop_id, cart_id, IDENTIFY_CUSTOMER, payload)

    async def record_visit(self, shop_id: str, cart_id: str, page: str | None = None) -> CartView:
        payload = {"page": page}
        self._parsed(RECORD_VISIT, payload)
        return await self._storefront(shop_id, cart_id, RECORD_VISIT, payload)

    async def start_checkout(self, shop_id: str, cart_id: str) -> CartView:
        return await self._storefront(shop_id, cart_id, START_CHECKOUT, {})

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
    ) -> CartView:
        method = self._enum(PaymentMethod, method, ErrorCode.INVALID_PAYMENT)
        payload = {
            "attempt_id": attempt_id,
            "method": str(method),
            "gateway": gateway,
            "amount": amount,
            "currency": currency,
        }
        self._parsed(START_PAYMENT, payload)
        _edge(lambda: machine.check_attempt_id(attempt_id))
        _edge(lambda: machine.check_amount(amount))
        return await self._storefront(shop_id, cart_id, START_PAYMENT, payload)

    async def await_order(
        self, shop_id: str, cart_id: str, timeout_seconds: float = 30
    ) -> CartView:
        """For the customer back from the gateway: the cart once its order has a number
        (or once it left payment), or as it is after ``timeout_seconds`` (at most 300).

        A run that continues as new answers its waiting calls at once; the client then
        asks the next run for the rest of the time."""
        check_ids(shop_id, cart_id)
        _edge(lambda: parse_await_timeout({"timeout_seconds": float(timeout_seconds)}))
        handle = self.client.get_workflow_handle(workflow_id(shop_id, cart_id))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while True:
            remaining = max(deadline - loop.time(), 0.0)
            view = await retry_closing(partial(self._await_once, handle, remaining))
            waiting = view.order_status is not None and view.order_number is None
            if view.order_status is None and view.state is CartState.PAYMENT_PENDING:
                waiting = True
            if not waiting or loop.time() >= deadline - 0.05:
                return view

    async def _await_once(self, handle: WorkflowHandle[Any, Any], seconds: float) -> CartView:
        return await self._view(
            handle.execute_update(
                AWAIT_ORDER,
                {"timeout_seconds": seconds},
                result_type=dict,
                rpc_timeout=timedelta(seconds=seconds + 30),
            )
        )

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
        """A gateway's result, checked here: a signal, accepted whatever the cart is doing,
        and bringing the cart's workflow back if it has closed, so that no result is ever
        dropped."""
        check_ids(shop_id, cart_id)
        event = PaymentResultReported(
            attempt_id=attempt_id,
            status=self._enum(PaymentStatus, status, ErrorCode.INVALID_STATUS),
            amount=amount,
            currency=currency,
            card_last4=card_last4,
            gateway=gateway,
        )
        _edge(lambda: machine.check_payment_result(event))
        await self.send_payment_result(shop_id, cart_id, to_json(event))

    async def send_payment_result(self, shop_id: str, cart_id: str, payload: Any) -> None:
        """A gateway's result exactly as it came (any JSON value): the workflow reads it,
        and keeps and flags for an admin whatever it cannot read. For webhooks, where
        refusing a payload would lose it."""
        check_ids(shop_id, cart_id)
        await self._with_start(shop_id, cart_id, signal=(PAYMENT_RESULT, payload))

    # ------------------------------------------------------------------ admin

    async def confirm(
        self,
        shop_id: str,
        cart_id: str,
        *,
        admin: str = "admin",
        note: str | None = None,
        status: str = "P",
    ) -> CartView:
        """Convert a locked cart into an order: ``P`` (the admin saw the payment: it is
        recorded as paid) or ``O`` (open, awaiting the payment)."""
        payload = {"admin": admin, "note": note, "status": status}
        return await self._admin(shop_id, cart_id, CONFIRM, payload)

    async def unlock(
        self, shop_id: str, cart_id: str, *, admin: str = "admin", note: str | None = None
    ) -> CartView:
        """Let the customer continue with the same cart."""
        return await self._admin(shop_id, cart_id, UNLOCK, {"admin": admin, "note": note})

    async def delete(
        self, shop_id: str, cart_id: str, *, admin: str = "admin", note: str | None = None
    ) -> CartView:
        """Delete the cart (the customer starts again). Deleting twice is one deletion."""
        return await self._admin(shop_id, cart_id, DELETE, {"admin": admin, "note": note})

    async def resolve(
        self,
        shop_id: str,
        cart_id: str,
        *,
        admin: str = "admin",
        note: str | None = None,
        items: list[int] | None = None,
    ) -> CartView:
        """Resolve attention items (those numbered ``items``, else every open one), with
        a note of what was done."""
        payload: dict[str, Any] = {"admin": admin, "note": note}
        if items is not None:
            payload["items"] = list(items)
        return await self._admin(shop_id, cart_id, RESOLVE, payload)

    async def send_reminder(
        self,
        shop_id: str,
        cart_id: str,
        reminder_id: str,
        *,
        admin: str,
        note: str | None = None,
    ) -> CartView:
        """Send reminder ``reminder_id`` of the shop's campaign to an abandoned cart now
        (once per cart). The cart answers at once; the send-time checks then decide, and
        the outcome (sent, or skipped with its reason) lands on the cart's ``reminders``."""
        payload = {"admin": admin, "note": note, "reminder_id": reminder_id}
        return await self._admin(shop_id, cart_id, SEND_REMINDER, payload)

    # ------------------------------------------------------------------ reads

    async def get_cart(self, shop_id: str, cart_id: str) -> Cart:
        """The cart's whole state from its workflow (running or closed)."""
        check_ids(shop_id, cart_id)
        handle = self.client.get_workflow_handle(workflow_id(shop_id, cart_id))
        return await self._call(handle.query(GET_CART, result_type=Cart))

    def handle(self, shop_id: str, cart_id: str) -> WorkflowHandle[Any, Cart]:
        return self.client.get_workflow_handle(workflow_id(shop_id, cart_id), result_type=Cart)

    # ------------------------------------------------------------------ plumbing

    def _parsed(self, name: str, payload: dict[str, Any]) -> Any:
        """The payload read as the workflow will read it, and an admin's name and note
        checked as its validator will (refusals raised here, before Temporal is asked)."""
        event = _edge(lambda: ALL_MESSAGES_BY_NAME[name].parse(payload))
        if isinstance(event, AdminAction):
            _edge(lambda: machine.check_admin(event))
        return event

    def _input(self, shop_id: str, cart_id: str, restore_run_id: str | None) -> CartInput:
        return CartInput(
            shop_id=shop_id,
            cart_id=cart_id,
            policy=self._policy_for(shop_id),
            restore_run_id=restore_run_id,
        )

    @staticmethod
    def _initial_search_attributes(shop_id: str, new: bool) -> TypedSearchAttributes:
        pairs: list[SearchAttributePair[Any]] = [SearchAttributePair(sa.CART_SHOP, shop_id)]
        if new:
            pairs.append(SearchAttributePair(sa.CART_STATE, str(CartState.ACTIVE)))
        return TypedSearchAttributes(pairs)

    @staticmethod
    def _enum(kind: type[T], value: object, code: ErrorCode) -> T:
        try:
            return kind(value)  # type: ignore[call-arg]
        except ValueError:
            allowed = ", ".join(str(v) for v in kind)  # type: ignore[attr-defined]
            raise CartkeeperError(code, f"{value!r} is not one of: {allowed}") from None

    async def _storefront(
        self, shop_id: str, cart_id: str, update: str, payload: dict[str, Any]
    ) -> CartView:
        """An update that creates the cart's workflow if none runs: one RPC."""
        check_ids(shop_id, cart_id)
        return await retry_closing(lambda: self._storefront_once(shop_id, cart_id, update, payload))

    async def _storefront_once(
        self, shop_id: str, cart_id: str, update: str, payload: dict[str, Any]
    ) -> CartView:
        wid = workflow_id(shop_id, cart_id)
        if wid in self._running:
            self._running.move_to_end(wid)
            handle = self.client.get_workflow_handle(wid)
            uid = update_id(wid, update, payload)
            try:
                return await self._sent(
                    uid,
                    handle.execute_update(
                        update,
                        payload,
                        id=uid,
                        result_type=dict,
                        rpc_timeout=self._rpc_timeout,
                    ),
                )
            except CartkeeperError as error:
                if error.code is not ErrorCode.CART_NOT_FOUND:
                    raise
                self._running.pop(wid, None)  # it closed since: bring it back
        view = await self._with_start(shop_id, cart_id, update=(update, payload))
        assert view is not None
        self._seen_running(wid)
        return view

    def _seen_running(self, wid: str) -> None:
        self._running[wid] = None
        self._running.move_to_end(wid)
        while len(self._running) > RUNNING_CARTS_KEPT:
            self._running.popitem(last=False)

    async def _with_start(
        self,
        shop_id: str,
        cart_id: str,
        *,
        update: tuple[str, Any] | None = None,
        signal: tuple[str, Any] | None = None,
        restore_run_id: str | None = None,
    ) -> CartView | None:
        """Update- or signal-with-start. A new cart id starts a new cart; an open run
        takes the message; a closed run (refused by ``REJECT_DUPLICATE``) is continued by
        a new run that restores its state."""
        for _ in range(3):
            try:
                return await self._start_once(shop_id, cart_id, update, signal, restore_run_id)
            except WorkflowAlreadyStartedError as closed:
                # Temporal remembers a closed run of this id: continue from it.
                restore_run_id = closed.run_id
        raise CartkeeperError(
            ErrorCode.TEMPORAL_UNAVAILABLE, "the cart's workflow kept closing; try again"
        )

    async def _start_once(
        self,
        shop_id: str,
        cart_id: str,
        update: tuple[str, Any] | None,
        signal: tuple[str, Any] | None,
        restore_run_id: str | None,
    ) -> CartView | None:
        reuse = (
            WorkflowIDReusePolicy.ALLOW_DUPLICATE
            if restore_run_id
            else WorkflowIDReusePolicy.REJECT_DUPLICATE
        )
        options: dict[str, Any] = {
            "id": workflow_id(shop_id, cart_id),
            "task_queue": self.task_queue,
            "task_timeout": TASK_TIMEOUT,
            "id_reuse_policy": reuse,
            "search_attributes": self._initial_search_attributes(shop_id, not restore_run_id),
            "static_summary": f"cart {cart_id} of shop {shop_id}",
        }
        start_input = self._input(shop_id, cart_id, restore_run_id)
        if signal is not None:
            name, payload = signal
            await self._call(
                self.client.start_workflow(
                    WORKFLOW_NAME,
                    start_input,
                    start_signal=name,
                    start_signal_args=[payload],
                    **options,
                )
            )
            return None
        assert update is not None
        name, payload = update
        start: WithStartWorkflowOperation[Any, Cart] = WithStartWorkflowOperation(
            WORKFLOW_NAME,
            start_input,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            result_type=Cart,
            **options,
        )
        uid = update_id(options["id"], name, payload)
        try:
            return await self._sent(
                uid,
                self.client.execute_update_with_start_workflow(
                    name,
                    payload,
                    start_workflow_operation=start,
                    id=uid,
                    result_type=dict,
                    rpc_timeout=self._rpc_timeout,
                ),
            )
        finally:
            # The start's own future holds the same outcome: consume it (no warning).
            with contextlib.suppress(BaseException):
                await start.workflow_handle()

    async def _admin(
        self, shop_id: str, cart_id: str, update: str, payload: dict[str, Any]
    ) -> CartView:
        """An admin update: of the open run, or of a closed cart brought back (its state
        then says what is allowed). Never creates a cart."""
        check_ids(shop_id, cart_id)
        self._parsed(update, payload)
        return await retry_closing(lambda: self._admin_once(shop_id, cart_id, update, payload))

    async def _admin_once(
        self, shop_id: str, cart_id: str, update: str, payload: dict[str, Any]
    ) -> CartView:
        wid = workflow_id(shop_id, cart_id)
        handle = self.client.get_workflow_handle(wid)
        uid = update_id(wid, update, payload)
        try:
            return await self._sent(
                uid,
                handle.execute_update(
                    update,
                    payload,
                    id=uid,
                    result_type=dict,
                    rpc_timeout=self._rpc_timeout,
                ),
            )
        except CartkeeperError as error:
            if error.code is not ErrorCode.CART_NOT_FOUND:
                raise
        description = await self._call(handle.describe())
        view = await self._with_start(
            shop_id, cart_id, update=(update, payload), restore_run_id=description.run_id
        )
        assert view is not None
        return view

    async def _sent(self, uid: str | None, awaitable: Awaitable[Any]) -> CartView:
        """An update's answer (``_view``); for an update sent under ``idempotent_updates``
        (``uid`` not ``None``), what became of it is noted on the request's
        ``KeyedUpdates``."""
        keyed = _keyed.get()
        if uid is None or keyed is None:
            return await self._view(awaitable)
        try:
            view = await self._view(awaitable)
        except CartkeeperError as error:
            keyed.outcomes[uid] = not error.update_failed
            raise
        except BaseException:
            keyed.outcomes[uid] = True  # it may have reached the cart
            raise
        keyed.outcomes[uid] = True
        return view

    @classmethod
    async def _view(cls, awaitable: Awaitable[Any]) -> CartView:
        """An update's answer (a JSON object) as a ``CartView``."""
        return CartView.from_json(await cls._call(awaitable))

    _call = staticmethod(call)
