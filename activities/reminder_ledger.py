"""The reminder ledger (``reminder_sends``): one row per (shop, cart, lineage, reminder),
``sending`` before the e-mail leaves, ``sent`` after, or ``skipped`` with the reason. It
makes ``send_reminder`` idempotent and it is what statistics count.

Every change of a row is here, each in its own committed transaction: ``claim`` (the row
becomes ``sending`` and the coupon is issued, before any SMTP traffic), ``record_sent``
(after the relay accepted the message) and ``record_skip``. Writers lock the row for their
transaction (``locked_row``: made if missing, then ``SELECT ... FOR UPDATE`` on PostgreSQL;
SQLite's write transactions hold the database's write lock), so two attempts for the same
reminder take turns; a row another attempt decided meanwhile is left as it is, and
returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities import coupons
from activities.db import SessionFactory, insert_for, write_session
from activities.models import ReminderSend, Suppression
from activities.read_model import clip_detail, normalize_email
from activities.reminder_checks import ReminderKey, Skip
from workflows.codes import SkipReason
from workflows.contract import SendReminderInput

#: added to a skip decided when an earlier attempt may already have sent the e-mail
MAYBE_SENT = "an earlier attempt may have handed the e-mail to the relay"


@dataclass(frozen=True)
class Stored:
    """A ledger row as read (usable after its session)."""

    status: str
    reason: SkipReason | None
    detail: str | None
    variant: str | None
    message_id: str | None
    coupon_code: str | None
    due_at: datetime | None
    updated_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, row: ReminderSend) -> Stored:
        reason: SkipReason | None
        try:
            reason = SkipReason(row.reason) if row.reason else None
        except ValueError:  # a reason this version does not know: still a decision
            reason = SkipReason.SEND_FAILED
        return cls(
            status=row.status,
            reason=reason,
            detail=row.detail,
            variant=row.variant,
            message_id=row.message_id,
            coupon_code=row.coupon_code,
            due_at=row.due_at,
            updated_at=row.updated_at,
            sent_at=row.sent_at,
        )

    def decides(self, due_at: datetime) -> bool:
        """The row is the answer to a send due at ``due_at``: it was sent, or skipped for
        that very time (a skip for another time is an earlier decision: an earlier
        abandonment, a workflow-side skip)."""
        return self.status == "sent" or (
            self.status == "skipped" and self.reason is not None and self.due_at == due_at
        )


async def stored(session: AsyncSession, key: ReminderKey) -> Stored | None:
    row = await session.get(ReminderSend, key.ident)
    return Stored.of(row) if row is not None else None


async def locked_row(session: AsyncSession, key: ReminderKey, now: datetime) -> ReminderSend:
    """The row of ``key``, made (``planned``, replaced before the commit) if missing, and
    locked for the rest of the transaction."""
    await session.execute(
        insert_for(session, ReminderSend.__table__)
        .values(
            shop_id=key.shop_id,
            cart_id=key.cart_id,
            lineage=key.lineage,
            reminder_id=key.reminder_id,
            status="planned",
            manual=False,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    row = await session.get(ReminderSend, key.ident, with_for_update=True, populate_existing=True)
    assert row is not None
    return row


def _describe(
    row: ReminderSend, request: SendReminderInput, variant: str | None, status: str, now: datetime
) -> None:
    """The row's fields that say which e-mail (or none) this is, and its new status."""
    cart = request.cart
    email = cart.customer.email if cart.customer else None
    row.email = normalize_email(email) if email else None
    row.variant = variant
    row.manual = request.manual
    row.due_at = request.due_at
    row.currency = cart.currency
    row.status = status
    row.updated_at = now


async def claim(
    sessions: SessionFactory,
    key: ReminderKey,
    request: SendReminderInput,
    variant: str | None,
    terms: coupons.CouponTerms | None,
    message_id: str,
    now: datetime,
) -> tuple[Stored, coupons.IssuedCoupon | None]:
    """The row becomes ``sending`` (with ``message_id`` unless it has one: a retry keeps
    its Message-ID and coupon) and the coupon of ``terms`` is issued, in one committed
    transaction. A row that already ``decides`` the send is returned as it is."""
    async with write_session(sessions) as session:
        row = await locked_row(session, key, now)
        current = Stored.of(row)
        if current.decides(request.due_at):
            return current, None
        _describe(row, request, variant, "sending", now)
        if row.message_id is None:
            row.message_id = message_id
        row.reason = row.detail = None
        row.sent_at = None
        # The coupon's own sessions join this transaction (savepoints): the coupon and the
        # row commit together, or neither does.
        joined = async_sessionmaker(
            bind=await session.connection(),
            expire_on_commit=False,
            join_transaction_mode="create_savepoint",
        )
        coupon: coupons.IssuedCoupon | None = None
        if terms is not None:
            coupon = await coupons.issue(
                joined, key.shop_id, key.cart_id, key.reminder_id, terms, now
            )
        elif row.coupon_code is not None:
            try:  # an earlier attempt's coupon (the variant has none now)
                coupon = await coupons.find(joined, key.shop_id, row.coupon_code)
            except coupons.CouponRefused:
                coupon = None
        row.coupon_code = coupon.code if coupon is not None else None
        return Stored.of(row), coupon


async def record_sent(sessions: SessionFactory, key: ReminderKey, sent_at: datetime) -> None:
    """The row becomes ``sent`` (the commit that closes the at-least-once window)."""
    async with write_session(sessions) as session:
        await session.execute(
            update(ReminderSend)
            .where(*key.where())
            .values(status="sent", sent_at=sent_at, updated_at=sent_at, reason=None, detail=None)
            .execution_options(synchronize_session=False)
        )


async def record_skip(
    sessions: SessionFactory,
    key: ReminderKey,
    request: SendReminderInput,
    skip: Skip,
    now: datetime,
    *,
    bounced: str | None = None,
) -> Stored:
    """The row becomes ``skipped``; a row already ``sent`` wins (it is returned as it is).
    ``bounced``: the address the relay refused for good, suppressed in the same
    transaction."""
    async with write_session(sessions) as session:
        row = await locked_row(session, key, now)
        if row.status == "sent":
            return Stored.of(row)
        detail = skip.detail
        if row.status == "sending" and skip.reason is not SkipReason.SEND_FAILED:
            detail = f"{detail}; {MAYBE_SENT}" if detail else MAYBE_SENT
        _describe(row, request, row.variant or request.variant, "skipped", now)
        row.reason = str(skip.reason)
        row.detail = clip_detail(detail)
        if bounced:
            await suppress(
                session,
                key.shop_id,
                bounced,
                reason="bounced",
                source="smtp",
                cart_id=key.cart_id,
                now=now,
            )
        return Stored.of(row)


async def suppress(
    session: AsyncSession,
    shop_id: str,
    email: str,
    *,
    reason: str,
    source: str,
    cart_id: str | None,
    now: datetime,
) -> bool:
    """No more reminders to ``email`` from the shop (unsubscribed, bounced); ``False``
    when it already was (the first suppression is kept). One ``INSERT ... ON CONFLICT DO
    NOTHING``: safe with concurrent callers."""
    result = await session.execute(
        insert_for(session, Suppression.__table__)
        .values(
            shop_id=shop_id,
            email=normalize_email(email),
            reason=reason,
            source=source,
            cart_id=cart_id,
            created_at=now,
        )
        .on_conflict_do_nothing()
    )
    return bool(getattr(result, "rowcount", 0))
