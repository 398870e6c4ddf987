"""The reminder ledger (``reminder_sends``): one row per (shop, cart, lineage, reminder),
``sending`` before the e-mail leaves, ``sent`` after, or ``skipped`` with the reason. It
makes ``send_reminder`` idempotent and it is what statistics count.

Writers lock the row for their transaction (``locked_row``: made if missing, then
``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write transactions hold the database's
write lock), so two attempts for the same reminder take turns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from activities.db import SessionFactory, write_session
from activities.models import ReminderSend, Suppression
from activities.reminder_checks import ReminderKey, normalize_email
from workflows.codes import SkipReason


def insert(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    """The dialect's ``INSERT`` (with ``ON CONFLICT``)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the read model supports PostgreSQL and SQLite, not {dialect}")


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


async def stored(sessions: SessionFactory, key: ReminderKey) -> Stored | None:
    async with sessions() as session:
        row = await session.get(ReminderSend, key.ident)
        return Stored.of(row) if row is not None else None


async def locked_row(session: AsyncSession, key: ReminderKey, now: datetime) -> ReminderSend:
    """The row of ``key``, made (``planned``, replaced before the commit) if missing, and
    locked for the rest of the transaction."""
    dialect = session.get_bind().dialect.name
    await session.execute(
        insert(dialect, ReminderSend.__table__)
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


async def record_sent(sessions: SessionFactory, key: ReminderKey, sent_at: datetime) -> None:
    """The row becomes ``sent`` (the commit that closes the at-least-once window)."""
    async with write_session(sessions) as session:
        await session.execute(
            update(ReminderSend)
            .where(*key.where())
            .values(status="sent", sent_at=sent_at, updated_at=sent_at, reason=None, detail=None)
            .execution_options(synchronize_session=False)
        )


async def suppress(
    session: AsyncSession, key: ReminderKey, email: str, reason: str, source: str, now: datetime
) -> None:
    """The address gets no more reminders from the shop (an earlier suppression is kept)."""
    dialect = session.get_bind().dialect.name
    await session.execute(
        insert(dialect, Suppression.__table__)
        .values(
            shop_id=key.shop_id,
            email=normalize_email(email),
            reason=reason,
            source=source,
            cart_id=key.cart_id,
            created_at=now,
        )
        .on_conflict_do_nothing()
    )
