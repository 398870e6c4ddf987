"""The order phase's activities (contract: ``workflows.order_contract``):

- ``read_order_statuses``: the shop's order statuses, hidden ``N`` included
  (``activities.order_statuses``), as ``StatusDefinition``s, with the registry's version.
- ``move_order_stock``: take or give back an order's stock (``activities.stock``), once
  per movement key. A take that finds too little stock of a tracked SKU takes nothing and
  answers ``short`` with those SKUs (the same key may be tried again later); every other
  answer is ``done``, a repeated key's too (its recorded result: nothing moves again).
- ``send_order_status_mail``: the e-mail of one status entry of an order to the customer
  or to the shop's orders department, **once per (shop, cart, lineage, entry,
  recipient)** whatever the retries (below). Templates and message:
  ``activities.order_mail``.

Errors. A refusal that no retry can change (an invalid shop id, a movement key reused for
another movement, invalid lines, an invalid e-mail request) is a non-retryable
``ApplicationError`` whose ``type`` is the refusal's code (``invalid_shop_id``,
``stock_movement_conflict``, ``invalid_stock_movement``, ``invalid_status_mail`` ...). A
database error propagates as it is (retryable: Temporal tries again). A relay that is down,
answers "try later" or does not answer in time is a retryable ``ApplicationError`` of type
``smtp_unavailable`` / ``smtp_timeout``, as in the other e-mail activities.

**Once per e-mail.** The ledger is ``admin_notices`` (``activities.admin_mail``: one row
per (shop, key), claimed before any SMTP traffic for a while (a lease: another delivery
that comes meanwhile raises a retryable ``ApplicationError`` of type ``sending``), given
back when the relay did not take it, marked sent after); the key is
``status:<cart>:<lineage>:<entry>:<recipient>`` and the kind ``order_status_mail``. The
Message-ID is derived from (shop, key) (``admin_mail.notice_message_id``), the same on
every retry: a crash between the relay accepting the message and the ledger recording it
resends it with the same Message-ID, which receiving systems deduplicate. Each attempt
stops itself before its timeout (``activities.attempt_budget``), so two attempts never
talk to the relay at once. The row holds no address.

The answers (``StatusMailResult``): ``sent`` (now, or by an earlier call: the same
Message-ID), or ``skipped`` with a reason that will not change:

- ``no_address``: the customer has no e-mail address;
- ``invalid_address``: the customer's address is not one (no SMTP traffic);
- ``no_department``: the shop has neither ``CARTKEEPER_ORDER_DEPARTMENTS`` nor admins;
- ``send_failed``: the relay refused it for good, or it could not be made (a template
  missing, an unknown currency); ``detail`` says why.

The shop signs its customer e-mail with the name and sender of its reminder campaign
(``activities.campaigns``) when it has one, else with its id and
``CARTKEEPER_ALERT_SENDER``. Logs and errors carry ids, letters and codes, never the
customer's name or address.

Register them on a worker with ``order_activities(session_factory, settings)``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jinja2 import TemplateError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import admin_mail
from activities.attempt_budget import AttemptBudget, lift
from activities.campaigns import load_campaign
from activities.db import SessionFactory
from activities.mail_render import RenderedMail, TemplateMissing
from activities.order_mail import ShopIdentity, StatusTemplates, build_status_message
from activities.order_statuses import OrderStatusDef, StatusRefused, load_registry
from activities.reminder_checks import scrub
from activities.settings import Settings
from activities.smtp import MailError, SmtpConfig, send_message
from activities.stock import StockRefused, give_back_stock, take_stock
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
from workflows.order_state import (
    MAIL_SENT,
    MAIL_SKIPPED,
    MOVE_DONE,
    MOVE_SHORT,
    RECIPIENTS,
    STOCK_GIVE_BACK,
    STOCK_TAKE,
    TO_CUSTOMER,
    StatusDefinition,
)
from workflows.validation import valid_id

log = logging.getLogger("cartkeeper.orders")

#: ``admin_notices.kind`` of an order status e-mail
KIND_STATUS_MAIL = "order_status_mail"
#: ``StatusMailResult.reason``
NO_ADDRESS = "no_address"
INVALID_ADDRESS = "invalid_address"
NO_DEPARTMENT = "no_department"
SEND_FAILED = "send_failed"
#: the refusal of an e-mail request no retry can change
INVALID_STATUS_MAIL = "invalid_status_mail"

_LETTER_RE = re.compile(r"^[A-Z]\Z")
#: a run id (Temporal's first execution run id), "" for a cart without one; the key
#: ``status:<cart>:<lineage>:<entry>:<recipient>`` stays within ``admin_notices.key`` (255)
_LINEAGE_RE = re.compile(r"^[!-~]{0,128}\Z")
_ADDRESS_BAD = frozenset(' <>,;"()[]\\')


def _utcnow() -> datetime:
    return datetime.now(UTC)


def refused(code: str, message: str) -> ApplicationError:
    """A refusal no retry can change: non-retryable, ``type`` the code."""
    return ApplicationError(f"{code}: {message}", type=code, non_retryable=True)


def status_definition(status: OrderStatusDef) -> StatusDefinition:
    """A registry status as the order phase keeps it (without position and ``builtin``)."""
    return StatusDefinition(
        letter=status.letter,
        name=status.name,
        colour=status.colour,
        paid=status.paid,
        final=status.final,
        notify_customer=status.notify_customer,
        notify_department=status.notify_department,
        inventory=str(status.inventory),
        contents_editable=status.contents_editable,
        hidden=status.hidden,
    )


async def read_statuses(sessions: SessionFactory, shop_id: str) -> OrderStatuses:
    """The shop's statuses by position (hidden ``N`` included) and the registry's version,
    as the order phase takes them; ``StatusRefused`` for an invalid shop id."""
    registry = await load_registry(sessions, shop_id)
    return OrderStatuses(
        statuses=[status_definition(status) for status in registry.statuses],
        version=registry.version,
    )


def status_mail_key(request: StatusMailInput) -> str:
    """The e-mail's ledger key: (cart, lineage, entry, recipient); the shop is the row's."""
    return f"status:{request.cart_id}:{request.lineage}:{request.entry}:{request.recipient}"


def check_status_mail(request: StatusMailInput) -> None:
    """Refuse (``invalid_status_mail``, ``invalid_shop_id``) a request that names no e-mail
    a retry could send: its key would be wrong or too long."""
    if not valid_id(request.shop_id):
        raise refused("invalid_shop_id", f"{request.shop_id!r} is not a valid shop id")
    problems = []
    if not valid_id(request.cart_id):
        problems.append(f"the cart id {request.cart_id!r} is not valid")
    if not isinstance(request.lineage, str) or not _LINEAGE_RE.match(request.lineage):
        problems.append("the lineage must be 0-128 printable ASCII characters, no spaces")
    if isinstance(request.entry, bool) or not isinstance(request.entry, int):
        problems.append(f"the entry must be a whole number, not {request.entry!r}")
    elif not 1 <= request.entry < 10**9:
        problems.append(f"the entry must be from 1, not {request.entry}")
    if request.recipient not in RECIPIENTS:
        problems.append(f"the recipient must be one of {', '.join(RECIPIENTS)}")
    if not isinstance(request.letter, str) or not _LETTER_RE.match(request.letter):
        problems.append(f"the status letter must be one of A-Z, not {request.letter!r}")
    if problems:
        raise refused(INVALID_STATUS_MAIL, "; ".join(problems))


def _plain_address(email: str) -> bool:
    local, at, domain = email.rpartition("@")
    return bool(
        at
        and local
        and domain
        and email.isprintable()
        and not any(char in _ADDRESS_BAD for char in email)
    )


class OrderActivities:
    """The order phase's activities, bound to the read model's sessions and the settings
    (relay, orders departments, admins, Message-ID domain). ``clock`` is the activity's
    clock (tests set it)."""

    def __init__(
        self,
        session_factory: SessionFactory,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _utcnow,
        templates: StatusTemplates | None = None,
        smtp: SmtpConfig | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.clock = clock
        self.smtp = smtp or SmtpConfig.from_settings(settings)
        self._templates = templates

    @property
    def templates(self) -> StatusTemplates:
        if self._templates is None:
            self._templates = StatusTemplates()  # on first use, not at start-up
        return self._templates

    def all(self) -> list[Any]:
        """The activities to register on a worker."""
        return [self.read_order_statuses, self.move_order_stock, self.send_order_status_mail]

    # ------------------------------------------------------------------ statuses

    @activity.defn(name=ACTIVITY_READ_ORDER_STATUSES)
    async def read_order_statuses(self, request: ReadOrderStatusesInput) -> OrderStatuses:
        """The shop's statuses by position (hidden ``N`` included) and the version."""
        try:
            return await read_statuses(self.session_factory, request.shop_id)
        except StatusRefused as refusal:
            raise refused(refusal.code, refusal.message) from None

    # ------------------------------------------------------------------ stock

    @activity.defn(name=ACTIVITY_MOVE_ORDER_STOCK)
    async def move_order_stock(self, request: StockMoveInput) -> StockMoveResult:
        """Take or give back the lines' stock once per ``request.key``."""
        if request.kind not in (STOCK_TAKE, STOCK_GIVE_BACK):
            raise refused(
                "invalid_stock_movement",
                f"the kind must be {STOCK_TAKE} or {STOCK_GIVE_BACK}, not {request.kind!r}",
            )
        move = take_stock if request.kind == STOCK_TAKE else give_back_stock
        lines = [(line.sku, line.quantity) for line in request.lines]
        try:
            moved = await move(
                self.session_factory, request.shop_id, request.key, lines, now=self.clock()
            )
        except StockRefused as refusal:
            raise refused(refusal.code, refusal.message) from None
        if not moved.applied:
            log.info(
                "stock take %s of cart %s/%s: short of %d sku(s), nothing taken",
                request.key,
                request.shop_id,
                request.cart_id,
                len(moved.short),
            )
            return StockMoveResult(
                key=request.key,
                outcome=MOVE_SHORT,
                short=list(moved.short),
                detail=f"too little stock of {', '.join(moved.short)}",
            )
        detail = None
        if moved.repeated and moved.at is not None:
            detail = f"applied before, at {moved.at.isoformat()}"
        return StockMoveResult(key=request.key, outcome=MOVE_DONE, detail=detail)

    # ------------------------------------------------------------------ status e-mail

    @activity.defn(name=ACTIVITY_SEND_STATUS_MAIL)
    async def send_order_status_mail(self, request: StatusMailInput) -> StatusMailResult:
        """The status entry's e-mail to the customer or the department, once (see the
        module's docstring)."""
        check_status_mail(request)
        what = (
            f"status mail {request.entry}/{request.recipient} ({request.letter}) of cart"
            f" {request.shop_id}/{request.cart_id}"
        )
        try:
            return await self._send(request, what)
        except MailError as error:
            answer = scrub(f"{error.code}: {error.message}", request.customer_email)
            if error.transient:
                raise ApplicationError(f"{what} not sent yet: {answer}", type=error.code) from None
            log.warning("%s not sent: %s", what, answer)
            return self._skipped(request, SEND_FAILED, answer)

    def _skipped(
        self, request: StatusMailInput, reason: str, detail: str | None = None
    ) -> StatusMailResult:
        return StatusMailResult(
            entry=request.entry,
            recipient=request.recipient,
            outcome=MAIL_SKIPPED,
            reason=reason,
            detail=detail,
        )

    def _sent(
        self, request: StatusMailInput, message_id: str, detail: str | None = None
    ) -> StatusMailResult:
        return StatusMailResult(
            entry=request.entry,
            recipient=request.recipient,
            outcome=MAIL_SENT,
            message_id=message_id,
            detail=detail,
        )

    def recipients(self, request: StatusMailInput) -> list[tuple[str | None, str]] | str:
        """Who gets it (name, address), or the reason to skip it."""
        if request.recipient == TO_CUSTOMER:
            email = (request.customer_email or "").strip()
            if not email:
                return NO_ADDRESS
            if not _plain_address(email):
                return INVALID_ADDRESS
            return [(request.customer_name, email)]
        department = self.settings.department_for(request.shop_id)
        if not department:
            return NO_DEPARTMENT
        return [(None, email) for email in department]

    async def shop_identity(self, shop_id: str) -> ShopIdentity:
        """The name and From address of the shop's e-mail (see the module's docstring)."""
        campaign = await load_campaign(self.session_factory, shop_id)
        if campaign is None:
            return ShopIdentity(name=shop_id, sender=self.settings.alert_sender)
        return ShopIdentity(name=campaign.shop_name, sender=campaign.sender)

    def render(self, request: StatusMailInput, shop: ShopIdentity) -> RenderedMail:
        if request.recipient == TO_CUSTOMER:
            return self.templates.customer(request, shop)
        return self.templates.department(request, shop)

    async def _send(self, request: StatusMailInput, what: str) -> StatusMailResult:
        shop_id, key = request.shop_id, status_mail_key(request)
        id_ = admin_mail.notice_message_id(shop_id, key, self.settings)
        if await admin_mail.sent_at(self.session_factory, shop_id, key) is not None:
            log.info("%s: sent before as %s", what, id_)
            return self._sent(request, id_)
        recipients = self.recipients(request)
        if isinstance(recipients, str):
            log.info("%s skipped: %s", what, recipients)
            return self._skipped(request, recipients)
        budget = AttemptBudget(admin_mail.SEND_LIMIT)  # (see ``activities.attempt_budget``)
        stamp = self.clock()  # the claim's (``admin_mail.give_back``)
        try:
            async with budget:
                claimed = await admin_mail.claim(
                    self.session_factory, shop_id, key, KIND_STATUS_MAIL, stamp
                )
                if claimed.outcome == "sent":
                    log.info("%s: sent before as %s", what, id_)
                    return self._sent(request, id_)
                if claimed.outcome == "busy":
                    raise admin_mail.busy_error(what)
                shop = await self.shop_identity(shop_id)
                try:
                    message = build_status_message(
                        self.render(request, shop),
                        sender=(shop.name, shop.sender),
                        recipients=recipients,
                        message_id=id_,
                        date=self.clock(),
                    )
                except (TemplateMissing, TemplateError, ValueError) as error:
                    detail = scrub(f"the e-mail could not be made: {error}", request.customer_email)
                    log.warning("%s not made: %s", what, detail)
                    await admin_mail.give_back(self.session_factory, shop_id, key, stamp)
                    return self._skipped(request, SEND_FAILED, detail)
                sent = await send_message(self.smtp, message)
                lift()  # accepted: record it whatever it takes
        except BaseException as error:
            # Not accepted (a relay error, out of time, cancelled): a retry may go at once.
            await admin_mail.give_back(self.session_factory, shop_id, key, stamp)
            if not isinstance(error, TimeoutError) or not budget.expired():
                raise
            raise MailError(
                "smtp_timeout", f"{what}: the attempt took too long", transient=True
            ) from None
        await admin_mail.mark_sent(self.session_factory, shop_id, key, self.clock())
        log.info(
            "%s sent as %s to %d recipient(s)%s",
            what,
            id_,
            len(sent.recipients),
            f"; {len(sent.refused)} refused" if sent.refused else "",
        )
        refusals = f"{len(sent.refused)} address(es) refused by the relay" if sent.refused else None
        return self._sent(request, id_, refusals)


def order_activities(
    session_factory: SessionFactory, settings: Settings, **options: Any
) -> list[Callable[..., Any]]:
    """The order phase's activities for a worker (``options``: ``OrderActivities``')."""
    return OrderActivities(session_factory, settings, **options).all()
