"""An admin sends one reminder of the shop's campaign to many carts now, with a dry run.

    selection = CartSelection("demo", abandoned_since=yesterday)      # or cart_ids=(...)
    report = await check_carts(sessions, selection, "winback", admin="ann")  # dry run
    report = await send_checked(carts, report, admin="ann")          # the ones that pass

**Which carts.** The candidates come from the read model (the carts' last projection,
``carts`` rows and their snapshots), paged through ``PAGE_SIZE`` at a time however many
match: the shop's carts in ``state`` (default ``abandoned``) abandoned since
``abandoned_since``, or exactly the carts named by ``cart_ids`` (then state and time do
not filter: each named cart is reported, with why it gets nothing).

**Would it go?** For each cart, the same checks as the real thing, in the same order:

1. the workflow's own refusals of the ``send_reminder`` request, by its own validation
   (``workflows.machine.check`` on the snapshot): not abandoned (or locked, ordered,
   expired, deleted), no address, the reminder already sent or another one being sent
   (the snapshot's ``reminders``);
2. the ledger: a ``sent`` row for the cart (lineage) and reminder (the snapshot may lag);
3. every check of the ``send_reminder`` activity at the moment of sending
   (``activities.reminder_checks.check_send``, called with the manual send's input):
   campaign and reminder, address, consent, suppressions, a newer cart or order of the
   same customer, the cap, the coupon, quiet hours (a manual send in quiet hours is
   skipped ``quiet_hours``, never moved).

A cart that passes is ``would_send``; one that does not is ``not_sent`` with the reason
(an ``ErrorCode`` for the workflow's refusals, a ``SkipReason`` for the send-time checks)
and a detail. Nothing is written.

**Sending.** ``send_checked`` sends the request (``CartkeeperClient.send_reminder``) to the
carts that passed, ``concurrency`` at a time, and reports per cart what the workflow
answered: refused (the cart changed since its projection: the workflow's code), or
accepted, and then the outcome the cart's ``reminders`` show within ``outcome_wait``
seconds: ``sent`` (Message-ID, coupon), ``skipped`` (reason) or still ``sending``. A
failure of one cart (a refusal, Temporal or a worker unavailable) never stops the others.
The read model may lag the carts by the projection interval; the workflow and the
activity check again, so a stale row costs a refusal or a skip, never a wrong e-mail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from activities import reminder_ledger
from activities.campaigns import CampaignConfig, load_campaign
from activities.coupons import CouponTerms
from activities.db import SessionFactory
from activities.models import CartRecord
from activities.read_model import decode_cart
from activities.reminder_checks import Defer, Go, ReminderKey, Skip, check_send
from starter.client import CartkeeperClient, CartkeeperError
from starter.errors import EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, exit_code_for
from starter.output import format_money
from workflows import machine, reminders
from workflows.codes import ReminderStatus, SkipReason
from workflows.contract import (
    SEND_REMINDER,
    Cart,
    CartState,
    ErrorCode,
    SendReminderInput,
)
from workflows.events import SendReminder
from workflows.parsing import MESSAGE_BY_NAME
from workflows.state import ReminderStep
from workflows.validation import check_admin

__all__ = [
    "PAGE_SIZE",
    "PROBLEMS",
    "CartResult",
    "CartSelection",
    "SendReport",
    "SendStatus",
    "check_cart",
    "check_carts",
    "exit_status",
    "request_event",
    "select_carts",
    "send_checked",
    "send_reminders",
]

#: candidates read from the read model at a time
PAGE_SIZE = 100
#: requests in flight at a time
CONCURRENCY = 8
#: how long to wait for a requested reminder's outcome (seconds)
OUTCOME_WAIT = 20.0

#: the request could not be made or its answer is unknown (exit 4 in the CLI)
UNAVAILABLE_CODES = frozenset({ErrorCode.TEMPORAL_UNAVAILABLE, ErrorCode.UPDATE_PENDING})


class SendStatus(StrEnum):
    """What became of one selected cart."""

    #: dry run: every check passes, the reminder would go now
    WOULD_SEND = "would_send"
    #: the checks say no (``reason``): nothing was asked of the cart
    NOT_SENT = "not_sent"
    #: asked, and sent (``message_id``, ``coupon_code``)
    SENT = "sent"
    #: asked; the workflow took it and the send-time checks skipped it (``reason``)
    SKIPPED = "skipped"
    #: asked; the workflow took it, its outcome was not known within the wait
    SENDING = "sending"
    #: asked; the workflow refused the request (``reason`` is its ``ErrorCode``)
    REFUSED = "refused"
    #: the request could not be made, or its answer is unknown (``reason``: the code)
    FAILED = "failed"
    #: a named cart the read model does not have
    NOT_FOUND = "not_found"


#: the statuses of carts a request was not carried out for
PROBLEMS = (SendStatus.REFUSED, SendStatus.FAILED, SendStatus.NOT_FOUND)


@dataclass(frozen=True)
class CartSelection:
    """Which carts: the shop's carts in ``state`` (``None``: any) abandoned at or after
    ``abandoned_since``; or, when ``cart_ids`` is given, exactly those carts (state and
    time then do not filter)."""

    shop_id: str
    state: CartState | None = CartState.ABANDONED
    abandoned_since: datetime | None = None
    cart_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        since = self.abandoned_since
        if since is not None and since.tzinfo is None:
            raise ValueError("abandoned_since must be timezone-aware")


@dataclass(frozen=True)
class CartResult:
    """One selected cart: what happened to it (``status``), and why (``reason``)."""

    shop_id: str
    cart_id: str
    status: SendStatus
    #: the cart as the read model has it (``None``: not found)
    state: CartState | None = None
    email: str | None = None
    abandoned_at: datetime | None = None
    #: why not: an ``ErrorCode`` (the workflow's refusal, or the request's failure) or a
    #: ``SkipReason`` (a send-time check)
    reason: str | None = None
    detail: str | None = None
    #: the reminder's variant (``a``/``b``) when it has two
    variant: str | None = None
    #: the coupon the e-mail offers (would offer), e.g. ``10 % off for 7 days``
    offer: str | None = None
    message_id: str | None = None
    coupon_code: str | None = None


@dataclass(frozen=True)
class SendReport:
    shop_id: str
    reminder_id: str
    #: ``True`` while nothing was sent (``check_carts``'s report)
    dry_run: bool
    #: when the checks ran
    checked_at: datetime
    results: list[CartResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many carts have each status (statuses without carts left out)."""
        out: dict[str, int] = {}
        for result in self.results:
            out[result.status] = out.get(result.status, 0) + 1
        return out

    def reasons(self) -> dict[str, int]:
        """How many carts got nothing, per reason (not sent, skipped, refused, failed)."""
        out: dict[str, int] = {}
        for result in self.results:
            if result.reason is not None:
                out[result.reason] = out.get(result.reason, 0) + 1
        return out

    def with_status(self, *statuses: SendStatus) -> list[CartResult]:
        return [result for result in self.results if result.status in statuses]


# --------------------------------------------------------------------------- selecting


async def select_carts(
    sessions: SessionFactory, selection: CartSelection, *, page_size: int = PAGE_SIZE
) -> AsyncIterator[tuple[str, Cart | None]]:
    """``(cart_id, cart)`` for every selected cart from the read model, by cart id (named
    carts: in the order given, ``None`` for those it does not have), a page at a time."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    if selection.cart_ids is not None:
        named = list(dict.fromkeys(selection.cart_ids))
        for start in range(0, len(named), page_size):
            page = named[start : start + page_size]
            query = select(CartRecord.cart_id, CartRecord.snapshot).where(
                CartRecord.shop_id == selection.shop_id, CartRecord.cart_id.in_(page)
            )
            async with sessions() as session:
                found = {row.cart_id: row.snapshot for row in await session.execute(query)}
            for cart_id in page:
                snapshot = found.get(cart_id)
                yield cart_id, decode_cart(snapshot) if snapshot is not None else None
        return
    after: str | None = None
    while True:
        query = select(CartRecord.cart_id, CartRecord.snapshot).where(
            CartRecord.shop_id == selection.shop_id
        )
        if selection.state is not None:
            query = query.where(CartRecord.state == str(selection.state))
        if selection.abandoned_since is not None:
            query = query.where(CartRecord.abandoned_at >= selection.abandoned_since)
        if after is not None:
            query = query.where(CartRecord.cart_id > after)
        query = query.order_by(CartRecord.cart_id).limit(page_size)
        async with sessions() as session:
            rows = (await session.execute(query)).all()
        for row in rows:
            yield row.cart_id, decode_cart(row.snapshot)
        if len(rows) < page_size:
            return
        after = rows[-1].cart_id


# --------------------------------------------------------------------------- checking


def request_event(reminder_id: str, admin: str, note: str | None = None) -> SendReminder:
    """The ``send_reminder`` request as the workflow reads it; an invalid admin, note or
    reminder id is refused here, for every cart at once (``CartkeeperError``)."""
    payload = {"admin": admin, "note": note, "reminder_id": reminder_id}
    try:
        event = MESSAGE_BY_NAME[SEND_REMINDER].parse(payload)
        assert isinstance(event, SendReminder)
        check_admin(event)
        if not machine.valid_id(reminder_id):
            raise machine.CartRefused(ErrorCode.INVALID_REMINDER, "reminder_id is not a valid id")
    except machine.CartRefused as refused:
        raise CartkeeperError(refused.code, refused.message) from None
    return event


def _offer(terms: CouponTerms | None) -> str | None:
    """The coupon a reminder offers, in words: ``10 % off for 7 days``."""
    if terms is None:
        return None
    value = (
        f"{terms.amount} %"
        if terms.kind == "percent"
        else format_money(terms.amount, terms.currency)
    )
    return f"{value} off for {terms.valid_days} day{'s' if terms.valid_days != 1 else ''}"


async def check_cart(
    session: AsyncSession,
    cart: Cart,
    event: SendReminder,
    campaign: CampaignConfig | None,
    now: datetime,
) -> CartResult:
    """Whether ``event`` (an admin's ``send_reminder``) would send its reminder to ``cart``
    (its read-model snapshot) now: ``would_send``, or ``not_sent`` with the reason."""
    customer = cart.customer
    base = CartResult(
        shop_id=cart.shop_id,
        cart_id=cart.cart_id,
        status=SendStatus.NOT_SENT,
        state=cart.state,
        email=customer.email if customer else None,
        abandoned_at=cart.abandoned_at,
    )
    try:
        machine.check(cart, event)  # the workflow's own validation of the request
    except machine.CartRefused as refused:
        return replace(base, reason=str(refused.code), detail=refused.message)
    key = ReminderKey(cart.shop_id, cart.cart_id, cart.lineage or "", event.reminder_id)
    stored = await reminder_ledger.stored(session, key)
    if stored is not None and stored.status == "sent":
        when = (stored.sent_at or stored.updated_at).isoformat()
        return replace(
            base,
            reason=str(ErrorCode.REMINDER_ALREADY_SENT),
            detail=f"the ledger has reminder {event.reminder_id} sent to this cart at {when}",
        )
    step: ReminderStep | None = reminders.step(cart, event.reminder_id)
    request = SendReminderInput(
        cart=cart,
        reminder_id=event.reminder_id,
        sequence=cart.reminder_sequence,
        due_at=now,
        variant=step.variant if step is not None else None,
        manual=True,
    )
    decision = await check_send(session, request, key, campaign, now)
    if isinstance(decision, Skip):
        return replace(base, reason=str(decision.reason), detail=decision.detail)
    if isinstance(decision, Defer):
        # A manual send is never moved: the workflow skips it (``workflows.reminders``).
        detail = f"{decision.detail}, until {decision.until.isoformat()}"
        return replace(base, reason=str(SkipReason.QUIET_HOURS), detail=detail)
    assert isinstance(decision, Go)
    return replace(
        base,
        status=SendStatus.WOULD_SEND,
        variant=decision.variant,
        offer=_offer(decision.terms),
    )


async def check_carts(
    sessions: SessionFactory,
    selection: CartSelection,
    reminder_id: str,
    *,
    admin: str = "admin",
    note: str | None = None,
    now: datetime | None = None,
    page_size: int = PAGE_SIZE,
) -> SendReport:
    """The dry run: every selected cart, ``would_send`` or why not. Writes nothing."""
    event = request_event(reminder_id, admin, note)
    now = now or datetime.now(UTC)
    campaign = await load_campaign(sessions, selection.shop_id)
    results: list[CartResult] = []
    pages = select_carts(sessions, selection, page_size=page_size)
    async with sessions() as session:
        async for cart_id, cart in pages:
            if cart is None:
                results.append(
                    CartResult(
                        shop_id=selection.shop_id,
                        cart_id=cart_id,
                        status=SendStatus.NOT_FOUND,
                        reason=str(ErrorCode.CART_NOT_FOUND),
                        detail=f"no cart {cart_id!r} of shop {selection.shop_id!r} in the"
                        " read model",
                    )
                )
                continue
            results.append(await check_cart(session, cart, event, campaign, now))
            # a read-only session: end its transaction so it never pins a snapshot
            await session.rollback()
    return SendReport(selection.shop_id, reminder_id, dry_run=True, checked_at=now, results=results)


# --------------------------------------------------------------------------- sending


async def send_checked(
    carts: CartkeeperClient,
    report: SendReport,
    *,
    admin: str,
    note: str | None = None,
    concurrency: int = CONCURRENCY,
    outcome_wait: float = OUTCOME_WAIT,
    request_timeout: float | None = None,
) -> SendReport:
    """Send the request to the carts of a dry run's report that would get the reminder,
    at most ``concurrency`` at a time (the others keep their reason), then follow the
    accepted ones until each is sent or skipped, for at most ``outcome_wait`` seconds in
    all. ``request_timeout``: past it a request's answer is unknown (``failed``,
    ``update_pending``: it may still be applied)."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    gate = asyncio.Semaphore(concurrency)

    async def request(result: CartResult) -> CartResult:
        if result.status is not SendStatus.WOULD_SEND:
            return result
        async with gate:
            return await _request(carts, result, report.reminder_id, admin, note, request_timeout)

    results = list(await asyncio.gather(*(request(result) for result in report.results)))
    await _follow(carts, results, report.reminder_id, gate, outcome_wait)
    return replace(report, dry_run=False, results=results)


async def send_reminders(
    sessions: SessionFactory,
    carts: CartkeeperClient,
    selection: CartSelection,
    reminder_id: str,
    *,
    admin: str,
    note: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    **sending: Any,
) -> SendReport:
    """``check_carts``, then (unless ``dry_run``) ``send_checked`` (its options in
    ``sending``)."""
    report = await check_carts(sessions, selection, reminder_id, admin=admin, note=note, now=now)
    if dry_run:
        return report
    return await send_checked(carts, report, admin=admin, note=note, **sending)


async def _request(
    carts: CartkeeperClient,
    result: CartResult,
    reminder_id: str,
    admin: str,
    note: str | None,
    request_timeout: float | None,
) -> CartResult:
    """One cart's request: ``sending`` (the workflow took it), ``refused`` or ``failed``.
    Nothing raised: one cart's failure never stops the others."""
    try:
        request = carts.send_reminder(
            result.shop_id, result.cart_id, reminder_id, admin=admin, note=note
        )
        view = await asyncio.wait_for(request, request_timeout)
    except TimeoutError:
        within = f" within {request_timeout:g}s" if request_timeout is not None else ""
        return replace(
            result,
            status=SendStatus.FAILED,
            reason=str(ErrorCode.UPDATE_PENDING),
            detail=f"no answer{within}; the request may still be applied",
        )
    except CartkeeperError as error:
        failed = error.code in UNAVAILABLE_CODES or error.code is ErrorCode.CART_NOT_FOUND
        status = SendStatus.FAILED if failed else SendStatus.REFUSED
        return replace(result, status=status, reason=str(error.code), detail=error.message)
    except Exception as error:
        return replace(
            result,
            status=SendStatus.FAILED,
            reason=str(ErrorCode.INTERNAL),
            detail=f"{type(error).__name__}: {error}",
        )
    return replace(
        result,
        status=SendStatus.SENDING,
        state=view.state,
        detail="the workflow took the request; its outcome was not known in time"
        " (`carts show` will show it)",
    )


async def _follow(
    carts: CartkeeperClient,
    results: list[CartResult],
    reminder_id: str,
    gate: asyncio.Semaphore,
    wait: float,
) -> None:
    """Replace each ``sending`` result by its outcome (``sent`` or ``skipped``) as the
    cart's ``reminders`` show it, asking the carts in rounds, until ``wait`` is over."""
    clock = asyncio.get_running_loop().time
    deadline = clock() + wait
    pause = 0.1

    async def step_of(result: CartResult) -> ReminderStep | None:
        async with gate:
            remaining = max(deadline - clock(), 1.0)
            try:
                cart = await asyncio.wait_for(
                    carts.get_cart(result.shop_id, result.cart_id), remaining
                )
            except (TimeoutError, CartkeeperError):
                return None
            return reminders.step(cart, reminder_id)

    while True:
        pending = [n for n, result in enumerate(results) if result.status is SendStatus.SENDING]
        if not pending:
            return
        steps = await asyncio.gather(*(step_of(results[n]) for n in pending))
        for n, step in zip(pending, steps, strict=True):
            results[n] = _outcome(results[n], step)
        if clock() >= deadline:
            return
        await asyncio.sleep(min(pause, max(deadline - clock(), 0)))
        pause = min(pause * 2, 1.0)


def _outcome(result: CartResult, step: ReminderStep | None) -> CartResult:
    """A ``sending`` result once the cart's step says sent or skipped (else unchanged)."""
    if step is None:
        return result
    if step.status is ReminderStatus.SENT:
        return replace(
            result,
            status=SendStatus.SENT,
            variant=step.variant,
            message_id=step.message_id,
            coupon_code=step.coupon_code,
            detail=None,
        )
    if step.status is ReminderStatus.SKIPPED:
        return replace(
            result,
            status=SendStatus.SKIPPED,
            variant=step.variant,
            offer=None,
            reason=str(step.reason or SkipReason.SEND_FAILED),
            detail=step.detail,
        )
    return result


def exit_status(results: Sequence[CartResult]) -> tuple[int, CartResult | None]:
    """The command line's exit code for a report's results, and the first cart that
    decided it: 4 when a request could not be made or its answer is unknown, else 1 when
    one was refused, else 3 when a named cart is not in the read model (or its workflow is
    gone), else 0: every selected cart was sent, is being sent, or gets nothing for a
    reason."""
    first: dict[int, CartResult] = {}
    for result in results:
        if result.status is SendStatus.FAILED:
            code = exit_code_for(result.reason or str(ErrorCode.INTERNAL))
        elif result.status is SendStatus.REFUSED:
            code = EXIT_REFUSED
        elif result.status is SendStatus.NOT_FOUND:
            code = exit_code_for(ErrorCode.CART_NOT_FOUND)
        else:
            continue
        first.setdefault(code, result)
    for code in (EXIT_UNAVAILABLE, EXIT_REFUSED, *sorted(first)):
        if code in first:
            return code, first[code]
    return EXIT_OK, None
