"""E-mail to a shop's admins (the lock alert, the daily digest): templates, the message,
and sending it once per notice (``AdminMailer``, the base of both activities).

**Once per notice.** ``admin_notices`` holds one row per (shop, key): a lock alert's key
names the cart, its lineage and the lock's time, a digest's key its day.
``AdminMailer.deliver``

1. claims the row in one committed transaction before any SMTP traffic (``claim``):
   it makes the row if it is missing, then takes it with one ``UPDATE`` only while it is
   unsent and unclaimed (``claimed_at`` NULL, or older than ``CLAIM_FOR``), so of two
   deliveries at once (the digest sent by hand while its schedule sends it) one takes it;
2. answers ``already_sent`` (and sends nothing) when the row says it was sent, and
   ``sending`` (sends nothing) when another delivery holds a live claim: an activity
   raises a retryable ``ApplicationError`` instead (type ``sending``, retried after
   ``BUSY_RETRY_DELAY``), whose retry then finds it sent;
3. hands the message to the relay, with a Message-ID derived from (shop, key): the same
   on every retry. This takes ``SEND_LIMIT`` at most (``AttemptBudget``; less in an
   activity whose timeouts are shorter), and a claim holds ``CLAIM_FOR``, longer by
   ``ATTEMPT_MARGIN`` and ``RECORDING_ALLOWANCE`` (the ledger's write in step 4, a
   database's busy wait included): a delivery under way is not overtaken;
4. marks the row sent; or, when it failed before the relay accepted the message (a
   relay error, a template error, the attempt out of time or cancelled), gives the claim
   back (``give_back``), so a retry may go at once.

Temporal runs an activity's attempts one after the other, and the claim keeps any other
delivery out meanwhile. The windows left: a crash (or a lost database) between the relay
accepting the message and step 4, or an attempt stopped while the relay was taking it,
and the retry sends it again; a delivery whose process died holds its claim until it
expires (``CLAIM_FOR``), then the next one sends; a ledger write slower than
``RECORDING_ALLOWANCE`` after a send that took all of ``SEND_LIMIT`` lets another
delivery send it again. Either way the resent message carries
the same Message-ID, which mail clients and receiving systems deduplicate. No SMTP
client can close that window. The claim's age is read against the clock of the process
that delivers: the machines' clocks must agree to well within ``ATTEMPT_MARGIN``.

The templates live in ``activities/mail_templates/<name>/`` (``subject.txt``, ``text.txt``
and ``html.html``; the HTML extends ``_layout.html`` and is autoescaped, its CSS inlined).
Admin e-mail is in English. It carries ids, states and amounts, never a customer's
personal data (name, e-mail, address).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import css_inline
from jinja2 import TemplateError
from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.exceptions import ApplicationError

from activities.attempt_budget import ATTEMPT_MARGIN, AttemptBudget, lift
from activities.db import SessionFactory, insert_for, write_session
from activities.mail_render import (
    TEMPLATES,
    MailRenderer,
    address,
    message_domain,
    message_id,
    money,
)
from activities.models import AdminNotice
from activities.settings import Settings
from activities.smtp import MailError, SmtpConfig, send_message
from workflows.alerts_contract import (
    ALERT_ALREADY_SENT,
    ALERT_FAILED,
    ALERT_NO_ADMINS,
    ALERT_SENDING,
    ALERT_SENT,
    AlertResult,
)

log = logging.getLogger("cartkeeper.alerts")

#: ``admin_notices.kind``
KIND_LOCK_ALERT = "lock_alert"
KIND_DAILY_DIGEST = "daily_digest"

#: the ``cart_id`` part of an admin message's Message-ID (``mail_render.message_id``)
_MESSAGE_SCOPE = "admin"

#: the longest a delivery runs from its claim until the relay accepted the message (its
#: ``AttemptBudget``: in an activity, and outside one, e.g. ``cartkeeper digest send``)
SEND_LIMIT = timedelta(minutes=2)
#: the time left, after the relay accepted the message, for marking it sent (SQLite's
#: busy wait is 30 s)
RECORDING_ALLOWANCE = timedelta(seconds=30)
#: how long a claim holds off other deliveries of the notice: longer than a delivery
#: under way can take, so a claim this old is one whose process died
CLAIM_FOR = SEND_LIMIT + ATTEMPT_MARGIN + RECORDING_ALLOWANCE
#: an activity that finds the notice claimed by another delivery asks Temporal to try
#: again after this long (it then finds the notice sent, or the claim given back)
BUSY_RETRY_DELAY = timedelta(seconds=5)

#: how an admin reads a ``LockReason``
LOCK_REASONS = {
    "payment_pending": "the payment gateway answered that the payment is pending",
    "no_payment_result": "no payment result came back from the gateway in time",
}


def lock_reason(reason: str | None, *, missing: str) -> str:
    """A ``LockReason`` as an admin reads it (an unknown one as it is; ``missing``: none)."""
    return LOCK_REASONS.get(reason or "", reason or missing)


@dataclass(frozen=True)
class RenderedAdminMail:
    subject: str
    text: str
    html: str


class AdminTemplates:
    """The admin e-mail templates (``mail_templates/<name>/subject.txt|text.txt|html.html``),
    rendered with ``MailRenderer``'s Jinja environments (HTML autoescaped, text not)."""

    def __init__(self, templates: Path = TEMPLATES) -> None:
        self._jinja = MailRenderer(templates)

    def render(self, name: str, values: Mapping[str, Any]) -> RenderedAdminMail:
        context = {"lang": "en", **values}
        text, html = self._jinja.text, self._jinja.html
        subject = text.get_template(f"{name}/subject.txt").render(context)
        return RenderedAdminMail(
            subject=" ".join(subject.split()),  # one line, whatever the template holds
            text=text.get_template(f"{name}/text.txt").render(context),
            html=css_inline.inline(html.get_template(f"{name}/html.html").render(context)),
        )


def amount(total: int, currency: str | None) -> str:
    """``total`` minor units as an admin reads it (``€49.00``); without a currency, the
    bare number of minor units."""
    if not currency:
        return f"{total} (no currency)"
    try:
        return money(total, currency, "en")
    except ValueError:
        return f"{total} {currency} (minor units)"


def duration(seconds: float) -> str:
    """``2 d 3 h``, ``3 h 20 min``, ``31 min`` (never less than a minute)."""
    minutes = max(int(seconds // 60), 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def notice_message_id(shop_id: str, key: str, settings: Settings) -> str:
    """The same for the same (shop, notice key): a retry sends the same message. Its
    domain is ``mail_domain``, else the alert sender's (an address the settings checked)."""
    domain = message_domain(settings.mail_domain, settings.alert_sender)
    return message_id(shop_id, _MESSAGE_SCOPE, key, domain)


def build_admin_message(
    rendered: RenderedAdminMail,
    *,
    sender: str,
    recipients: list[str],
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """One message to every admin of the shop: text and HTML alternatives."""
    message = EmailMessage()
    message["From"] = address("cartkeeper", sender)
    message["To"] = [address(None, recipient) for recipient in recipients]
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date.astimezone(UTC))
    message["Message-ID"] = message_id
    # an automatic message: no out-of-office replies (RFC 3834)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    # (after the content: ``set_content`` drops every Content-* header set before it)
    message["Content-Language"] = "en"
    return message


# --------------------------------------------------------------------------- the ledger


async def _sent_at(session: AsyncSession, shop_id: str, key: str) -> datetime | None:
    found: datetime | None = (
        await session.execute(
            select(AdminNotice.sent_at).where(
                AdminNotice.shop_id == shop_id, AdminNotice.key == key
            )
        )
    ).scalar_one_or_none()
    return found


async def sent_at(session_factory: SessionFactory, shop_id: str, key: str) -> datetime | None:
    """When the notice was sent (``None``: not yet, or never claimed)."""
    async with session_factory() as session:
        return await _sent_at(session, shop_id, key)


def _unsent(shop_id: str, key: str, *conditions: Any) -> Any:
    """An ``UPDATE`` of the notice's row while it is unsent (and ``conditions`` hold)."""
    return (
        update(AdminNotice)
        .where(
            AdminNotice.shop_id == shop_id,
            AdminNotice.key == key,
            AdminNotice.sent_at.is_(None),
            *conditions,
        )
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class Claim:
    """``claim``'s answer: ``taken`` (this delivery sends it, its claim stamped
    ``claimed_at``), ``sent`` (at ``sent_at``) or ``busy`` (another delivery holds a
    live claim)."""

    outcome: Literal["taken", "sent", "busy"]
    sent_at: datetime | None = None
    claimed_at: datetime | None = None


async def claim(
    session_factory: SessionFactory, shop_id: str, key: str, kind: str, now: datetime
) -> Claim:
    """Make the notice's row (if missing) and take it ``now``, unless it was sent or
    another delivery's claim is younger than ``CLAIM_FOR``: one ``UPDATE`` whose row
    count says whether it was taken (a concurrent one waits for the row and then finds
    it claimed)."""
    async with write_session(session_factory) as session:
        await session.execute(
            insert_for(session, AdminNotice.__table__)
            .values(
                shop_id=shop_id, key=key, kind=kind, created_at=now, sent_at=None, claimed_at=None
            )
            .on_conflict_do_nothing()
        )
        unclaimed = or_(AdminNotice.claimed_at.is_(None), AdminNotice.claimed_at <= now - CLAIM_FOR)
        taken = await session.execute(_unsent(shop_id, key, unclaimed).values(claimed_at=now))
        if getattr(taken, "rowcount", 0) == 1:
            return Claim("taken", claimed_at=now)
        done = await _sent_at(session, shop_id, key)
    return Claim("busy") if done is None else Claim("sent", sent_at=done)


async def release(
    session_factory: SessionFactory, shop_id: str, key: str, claimed_at: datetime | None
) -> None:
    """Give back the claim made at ``claimed_at`` (not another delivery's, should this one
    have expired) after a failed delivery; best effort: it expires anyway. ``None``:
    nothing was claimed, nothing to give back."""
    if claimed_at is None:
        return
    try:
        async with write_session(session_factory) as session:
            await session.execute(
                _unsent(shop_id, key, AdminNotice.claimed_at == claimed_at).values(claimed_at=None)
            )
    except (SQLAlchemyError, OSError) as error:
        log.warning("notice %s of shop %s: claim not released: %r", key, shop_id, error)


async def give_back(
    session_factory: SessionFactory, shop_id: str, key: str, stamp: datetime
) -> None:
    """``release`` the claim a delivery made (or may have made) at ``stamp``, after it
    failed before the relay accepted the message, cancelled too: the delivery knows its
    stamp before it claims, so a claim committed whose answer was lost (the attempt
    cancelled at its commit, the connection gone) is given back as well. Shielded: a
    cancelled delivery still gives its claim back."""
    await asyncio.shield(release(session_factory, shop_id, key, stamp))


async def mark_sent(
    session_factory: SessionFactory, shop_id: str, key: str, when: datetime
) -> None:
    async with write_session(session_factory) as session:
        await session.execute(_unsent(shop_id, key).values(sent_at=when))


def busy_error(what: str) -> ApplicationError:
    """What an activity raises for a notice another delivery is sending (``claim``:
    ``busy``): retryable, after ``BUSY_RETRY_DELAY``; the retry finds it sent, or the
    claim given back (or expired) and sends it. ``what`` names the notice."""
    return ApplicationError(
        f"{what} not sent now: another delivery of it is under way",
        type=ALERT_SENDING,
        non_retryable=False,
        next_retry_delay=BUSY_RETRY_DELAY,
    )


# --------------------------------------------------------------------------- the activities


def _utcnow() -> datetime:
    return datetime.now(UTC)


@cache
def _default_templates() -> AdminTemplates:
    """The templates every ``AdminMailer`` shares, made on first use (not at start-up)."""
    return AdminTemplates()


class AdminMailer:
    """What the lock alert and the digest activities share: the read model's sessions,
    the settings (admins, relay, sender), the activity's ``clock`` (tests set it), the
    templates and the relay."""

    def __init__(
        self,
        session_factory: SessionFactory,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _utcnow,
        templates: AdminTemplates | None = None,
        smtp: SmtpConfig | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.clock = clock
        self.smtp = smtp or SmtpConfig.from_settings(settings)
        self._templates = templates

    @property
    def templates(self) -> AdminTemplates:
        return self._templates or _default_templates()

    async def answer(self, what: str, noun: str, work: Awaitable[AlertResult]) -> AlertResult:
        """``work``'s result, its failures as the activity reports them: a relay that may
        take it later raises a retryable ``ApplicationError`` (type: the ``MailError``'s
        code), and so does a notice another delivery is sending (type ``sending``, retried
        after ``BUSY_RETRY_DELAY``: the retry finds it sent); a refusal for good, or a
        message that could not be made, is ``failed``. ``what`` names the notice in logs
        (``digest of shop demo for 2025-03-02``)."""
        try:
            result = await work
        except MailError as error:
            if error.transient:
                raise ApplicationError(
                    f"{what} not sent yet: {error.code}: {error.message}", type=error.code
                ) from None
            log.warning("%s not sent: %s", what, error)
            return AlertResult(status=ALERT_FAILED, detail=f"{error.code}: {error.message}")
        except (TemplateError, ValueError) as error:
            log.warning("%s not made: %s", what, error)
            return AlertResult(status=ALERT_FAILED, detail=f"the {noun} could not be made: {error}")
        if result.status == ALERT_SENDING:
            raise busy_error(what)
        return result

    async def settled(self, shop_id: str, key: str, what: str) -> AlertResult | None:
        """The answer when there is nothing to send: the shop has no admins, or the
        notice was sent already (``None``: go on)."""
        if not self.settings.admins_for(shop_id):
            detail = f"shop {shop_id!r} has no admin addresses (CARTKEEPER_SHOP_ADMINS)"
            log.warning("%s not sent: %s", what, detail)
            return AlertResult(status=ALERT_NO_ADMINS, detail=detail)
        done = await sent_at(self.session_factory, shop_id, key)
        if done is None:
            return None
        return AlertResult(
            status=ALERT_ALREADY_SENT,
            message_id=notice_message_id(shop_id, key, self.settings),
            sent_at=done,
        )

    async def deliver(
        self, shop_id: str, key: str, kind: str, render: Callable[[], RenderedAdminMail]
    ) -> AlertResult:
        """Send the notice ``(shop_id, key)`` to the shop's admins once (see the module's
        docstring); ``render`` makes its content once it is claimed. ``sending`` when
        another delivery holds it; ``MailError`` when the relay does not take it."""
        id_ = notice_message_id(shop_id, key, self.settings)
        budget = AttemptBudget(SEND_LIMIT)  # (see ``activities.attempt_budget``)
        stamp = self.clock()  # the claim's, known before it is made: see ``give_back``
        try:
            async with budget:
                claimed = await claim(self.session_factory, shop_id, key, kind, stamp)
                if claimed.outcome != "taken":
                    return self._not_taken(claimed, shop_id, key, kind, id_)
                message = build_admin_message(
                    render(),
                    sender=self.settings.alert_sender,
                    recipients=self.settings.admins_for(shop_id),
                    message_id=id_,
                    date=self.clock(),
                )
                sent = await send_message(self.smtp, message)
                lift()  # accepted: record it whatever it takes
        except BaseException as error:
            # Not accepted (a relay or template error, out of time, cancelled): a retry
            # may go at once.
            await give_back(self.session_factory, shop_id, key, stamp)
            if not isinstance(error, TimeoutError) or not budget.expired():
                raise
            raise MailError(
                "smtp_timeout", f"{kind} {key}: the attempt took too long", transient=True
            ) from None
        when = self.clock()
        await mark_sent(self.session_factory, shop_id, key, when)
        log.info(
            "%s %s of shop %s sent as %s to %d admin(s)%s",
            kind,
            key,
            shop_id,
            id_,
            len(sent.recipients),
            f"; {len(sent.refused)} refused" if sent.refused else "",
        )
        detail = (
            f"{len(sent.refused)} admin address(es) refused by the relay" if sent.refused else None
        )
        return AlertResult(
            status=ALERT_SENT,
            message_id=id_,
            sent_at=when,
            recipients=len(sent.recipients),
            detail=detail,
        )

    def _not_taken(
        self, claimed: Claim, shop_id: str, key: str, kind: str, id_: str
    ) -> AlertResult:
        """The answer when ``claim`` did not take the notice: sent, or being sent."""
        if claimed.outcome == "sent" and claimed.sent_at is not None:
            done = claimed.sent_at
            log.info("%s %s of shop %s: already sent at %s", kind, key, shop_id, done.isoformat())
            return AlertResult(status=ALERT_ALREADY_SENT, message_id=id_, sent_at=done)
        log.info("%s %s of shop %s: another delivery is sending it", kind, key, shop_id)
        return AlertResult(
            status=ALERT_SENDING,
            message_id=id_,
            detail="another delivery of it is under way: ask again shortly",
        )
