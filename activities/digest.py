"""The daily digest: one e-mail a day to a shop's admins with what needs them (seed 004:
"the daily notification e-mail ... orders on hold, orders submitted but not confirmed,
locked carts") and what the reminders recovered.

Read from the read model (``carts``; it may lag the workflows by seconds):

1. **Locked carts**, locked longest first: cart, total, since when and why.
2. **Payments that need an admin**: carts with open attention items (an amount that
   differs, a payment without a cart, an unreadable result ...), oldest first.
3. **Payments on deleted or expired carts**: carts with a ``paid_after_close`` item (they
   are listed here, not in 2).
4. **Recovered orders of the day before**: carts ordered that day (in the shop's time
   zone) after a recovery link of a reminder (``recovered_via``), and the revenue per
   currency of the paid ones (their totals).

Each list shows at most ``LIST_LIMIT`` carts and says how many more there are. A digest
with nothing in it is not sent (``nothing_to_report``). No customer data: ids, states,
amounts, times.

``send_daily_digest(DigestInput(shop_id, day))`` (contract: ``workflows.alerts_contract``)
sends it once per (shop, day) (``activities.admin_mail.deliver``, table
``admin_notices``) with a Message-ID derived from (shop, day). The ``DailyDigest``
workflow calls it every day; ``cartkeeper digest send`` builds one now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import TemplateError
from sqlalchemy import ColumnElement, and_, func, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import admin_mail
from activities.alerts import LOCK_REASONS
from activities.db import SessionFactory
from activities.models import CartRecord
from activities.settings import Settings
from activities.smtp import MailError, SmtpConfig
from workflows.alerts_contract import (
    ACTIVITY_SEND_DAILY_DIGEST,
    ALERT_ALREADY_SENT,
    ALERT_FAILED,
    ALERT_NO_ADMINS,
    ALERT_NOTHING_TO_REPORT,
    AlertResult,
    DigestInput,
)

log = admin_mail.log

#: at most this many carts per list (the digest says how many more there are)
LIST_LIMIT = 50
PAID_AFTER_CLOSE = "paid_after_close"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def digest_key(day: date) -> str:
    return f"digest:{day.isoformat()}"


def local_day(now: datetime, time_zone: str) -> date:
    """``now``'s date in ``time_zone``: the digest's day when none is given."""
    return now.astimezone(ZoneInfo(time_zone)).date()


def day_bounds(day: date, time_zone: str) -> tuple[datetime, datetime]:
    """``day`` in ``time_zone`` as a UTC range [start, end) (23 or 25 hours on DST days)."""
    zone = ZoneInfo(time_zone)
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class LockedCart:
    cart_id: str
    total: int
    currency: str | None
    locked_at: datetime | None
    lock_reason: str | None


@dataclass(frozen=True)
class AttentionCart:
    cart_id: str
    state: str
    #: the open attention kinds, oldest first
    kinds: tuple[str, ...]
    total: int
    currency: str | None
    updated_at: datetime


@dataclass(frozen=True)
class Revenue:
    currency: str
    #: recovered orders in this currency, and how many of them are paid
    orders: int
    paid_orders: int
    #: the paid orders' totals, in minor units
    amount: int


@dataclass(frozen=True)
class Digest:
    """What a shop's digest of ``day`` says (the recovered part covers the day before)."""

    shop_id: str
    day: date
    time_zone: str
    generated_at: datetime
    locked: list[LockedCart] = field(default_factory=list)
    locked_count: int = 0
    attention: list[AttentionCart] = field(default_factory=list)
    attention_count: int = 0
    paid_after_close: list[AttentionCart] = field(default_factory=list)
    paid_after_close_count: int = 0
    recovered: list[Revenue] = field(default_factory=list)

    @property
    def yesterday(self) -> date:
        return self.day - timedelta(days=1)

    @property
    def recovered_orders(self) -> int:
        return sum(item.orders for item in self.recovered)

    @property
    def empty(self) -> bool:
        return not (
            self.locked_count
            or self.attention_count
            or self.paid_after_close_count
            or self.recovered_orders
        )


def _kinds(attention: str | None) -> tuple[str, ...]:
    return tuple(kind for kind in (attention or "").split(",") if kind)


async def build_digest(
    session_factory: SessionFactory, shop_id: str, day: date, time_zone: str, now: datetime
) -> Digest:
    """The shop's digest of ``day``, from the read model as it is ``now``."""
    carts = CartRecord
    in_shop = carts.shop_id == shop_id
    has_attention = and_(
        carts.needs_admin.is_(True), carts.attention.is_not(None), carts.attention != ""
    )
    closed_paid = carts.attention.like(f"%{PAID_AFTER_CLOSE}%")
    start, end = day_bounds(day - timedelta(days=1), time_zone)

    async with session_factory() as session:

        async def count(*where: ColumnElement[bool]) -> int:
            found = (await session.execute(select(func.count()).where(*where))).scalar_one()
            return int(found)

        locked_where = (in_shop, carts.state == "locked")
        locked_rows = (
            await session.execute(
                select(
                    carts.cart_id, carts.total, carts.currency, carts.locked_at, carts.lock_reason
                )
                .where(*locked_where)
                .order_by(
                    func.coalesce(carts.locked_at, carts.updated_at).asc(), carts.cart_id.asc()
                )
                .limit(LIST_LIMIT)
            )
        ).all()
        locked_count = await count(*locked_where)

        async def attention(*where: ColumnElement[bool]) -> tuple[list[AttentionCart], int]:
            rows = (
                await session.execute(
                    select(
                        carts.cart_id,
                        carts.state,
                        carts.attention,
                        carts.total,
                        carts.currency,
                        carts.updated_at,
                    )
                    .where(in_shop, has_attention, *where)
                    .order_by(carts.updated_at.asc(), carts.cart_id.asc())
                    .limit(LIST_LIMIT)
                )
            ).all()
            listed = [
                AttentionCart(
                    row.cart_id,
                    row.state,
                    _kinds(row.attention),
                    row.total,
                    row.currency,
                    row.updated_at,
                )
                for row in rows
            ]
            return listed, await count(in_shop, has_attention, *where)

        open_items, open_count = await attention(~closed_paid)
        after_close, after_close_count = await attention(closed_paid)

        recovered_rows = (
            await session.execute(
                select(
                    carts.currency,
                    carts.order_paid,
                    func.count().label("orders"),
                    func.coalesce(func.sum(carts.total), 0).label("amount"),
                )
                .where(
                    in_shop,
                    carts.recovered_via.is_not(None),
                    carts.ordered_at >= start,
                    carts.ordered_at < end,
                )
                .group_by(carts.currency, carts.order_paid)
            )
        ).all()

    revenue: dict[str, dict[str, int]] = {}
    for row in recovered_rows:
        entry = revenue.setdefault(row.currency or "", {"orders": 0, "paid": 0, "amount": 0})
        entry["orders"] += int(row.orders)
        if row.order_paid:
            entry["paid"] += int(row.orders)
            entry["amount"] += int(row.amount)
    return Digest(
        shop_id=shop_id,
        day=day,
        time_zone=time_zone,
        generated_at=now,
        locked=[
            LockedCart(row.cart_id, row.total, row.currency, row.locked_at, row.lock_reason)
            for row in locked_rows
        ],
        locked_count=locked_count,
        attention=open_items,
        attention_count=open_count,
        paid_after_close=after_close,
        paid_after_close_count=after_close_count,
        recovered=[
            Revenue(currency, entry["orders"], entry["paid"], entry["amount"])
            for currency, entry in sorted(revenue.items())
        ],
    )


def render_digest(
    digest: Digest, templates: admin_mail.AdminTemplates
) -> admin_mail.RenderedAdminMail:
    """The digest's subject, text and HTML."""
    shop = digest.shop_id
    now = digest.generated_at
    zone = ZoneInfo(digest.time_zone)

    def local(at: datetime | None) -> str:
        return at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at is not None else "unknown"

    def listed(items: list[AttentionCart]) -> list[dict[str, Any]]:
        return [
            {
                "cart_id": item.cart_id,
                "state": item.state,
                "kinds": ", ".join(item.kinds),
                "total": admin_mail.amount(item.total, item.currency),
                "updated": local(item.updated_at),
            }
            for item in items
        ]

    return templates.render(
        "digest",
        {
            "shop_id": shop,
            "day": digest.day.isoformat(),
            "yesterday": digest.yesterday.isoformat(),
            "time_zone": digest.time_zone,
            "generated_at": local(now),
            "locked": [
                {
                    "cart_id": item.cart_id,
                    "total": admin_mail.amount(item.total, item.currency),
                    "locked_at": local(item.locked_at),
                    "locked_for": admin_mail.duration((now - item.locked_at).total_seconds())
                    if item.locked_at
                    else "unknown",
                    "reason": LOCK_REASONS.get(item.lock_reason or "", item.lock_reason or "-"),
                }
                for item in digest.locked
            ],
            "locked_count": digest.locked_count,
            "locked_more": digest.locked_count - len(digest.locked),
            "attention": listed(digest.attention),
            "attention_count": digest.attention_count,
            "attention_more": digest.attention_count - len(digest.attention),
            "closed": listed(digest.paid_after_close),
            "closed_count": digest.paid_after_close_count,
            "closed_more": digest.paid_after_close_count - len(digest.paid_after_close),
            "recovered_orders": digest.recovered_orders,
            "revenue": [
                {
                    "currency": item.currency or "(none)",
                    "orders": item.orders,
                    "paid_orders": item.paid_orders,
                    "amount": admin_mail.amount(item.amount, item.currency or None),
                }
                for item in digest.recovered
            ],
            "list_command": f"cartkeeper carts list --shop {shop} --needs-admin",
            "confirm_command": f"cartkeeper carts confirm CART --shop {shop}",
            "unlock_command": f"cartkeeper carts unlock CART --shop {shop}",
            "show_command": f"cartkeeper carts show CART --shop {shop}",
            "resolve_command": f"cartkeeper carts resolve CART --shop {shop} --note TEXT",
        },
    )


class DigestActivities:
    """``send_daily_digest``, bound to the read model's sessions and the settings (admins,
    time zones, relay, sender). ``clock`` is the activity's clock (tests set it)."""

    def __init__(
        self,
        session_factory: SessionFactory,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _utcnow,
        templates: admin_mail.AdminTemplates | None = None,
        smtp: SmtpConfig | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.clock = clock
        self.templates = templates or admin_mail.AdminTemplates()
        self.smtp = smtp or SmtpConfig.from_settings(settings)

    def all(self) -> list[Any]:
        """The activities to register on a worker."""
        return [self.send_daily_digest]

    @activity.defn(name=ACTIVITY_SEND_DAILY_DIGEST)
    async def send_daily_digest(self, request: DigestInput) -> AlertResult:
        """Send the shop's digest of ``request.day`` once (see the module's docstring)."""
        try:
            day = date.fromisoformat(request.day)
        except ValueError:
            return AlertResult(status=ALERT_FAILED, detail=f"{request.day!r} is not a day")
        try:
            return await self.send(request.shop_id, day)
        except MailError as error:
            if error.transient:
                raise ApplicationError(
                    f"digest of shop {request.shop_id} for {day} not sent yet:"
                    f" {error.code}: {error.message}",
                    type=error.code,
                ) from None
            log.warning("digest of shop %s for %s not sent: %s", request.shop_id, day, error)
            return AlertResult(status=ALERT_FAILED, detail=f"{error.code}: {error.message}")
        except (TemplateError, ValueError) as error:
            log.warning("digest of shop %s for %s not made: %s", request.shop_id, day, error)
            return AlertResult(status=ALERT_FAILED, detail=f"the digest could not be made: {error}")

    def today(self, shop_id: str) -> date:
        """Today in the shop's time zone."""
        return local_day(self.clock(), self.settings.time_zone_for(shop_id))

    async def build(self, shop_id: str, day: date) -> Digest:
        return await build_digest(
            self.session_factory, shop_id, day, self.settings.time_zone_for(shop_id), self.clock()
        )

    def render(self, digest: Digest) -> admin_mail.RenderedAdminMail:
        return render_digest(digest, self.templates)

    def message(self, digest: Digest, message_id: str | None = None) -> EmailMessage:
        """The digest as an e-mail to the shop's admins."""
        key = digest_key(digest.day)
        return admin_mail.build_admin_message(
            self.render(digest),
            sender=self.settings.alert_sender,
            recipients=self.settings.admins_for(digest.shop_id),
            message_id=message_id
            or admin_mail.notice_message_id(digest.shop_id, key, self.settings),
            date=self.clock(),
        )

    async def send(self, shop_id: str, day: date) -> AlertResult:
        """Build and send the digest of ``day`` unless it was sent; ``MailError`` when
        the relay does not take it."""
        admins = self.settings.admins_for(shop_id)
        if not admins:
            detail = f"shop {shop_id!r} has no admin addresses (CARTKEEPER_SHOP_ADMINS)"
            log.warning("digest of shop %s for %s not sent: %s", shop_id, day, detail)
            return AlertResult(status=ALERT_NO_ADMINS, detail=detail)
        key = digest_key(day)
        done = await admin_mail.sent_at(self.session_factory, shop_id, key)
        if done is not None:
            return AlertResult(
                status=ALERT_ALREADY_SENT,
                message_id=admin_mail.notice_message_id(shop_id, key, self.settings),
                sent_at=done,
            )
        digest = await self.build(shop_id, day)
        if digest.empty:
            log.info("digest of shop %s for %s: nothing to report", shop_id, day)
            return AlertResult(
                status=ALERT_NOTHING_TO_REPORT,
                detail="no locked carts, no payments needing an admin, no recovered orders",
            )
        return await admin_mail.deliver(
            self.session_factory,
            self.settings,
            shop_id=shop_id,
            key=key,
            kind=admin_mail.KIND_DAILY_DIGEST,
            make=lambda message_id: self.message(digest, message_id),
            clock=self.clock,
            smtp=self.smtp,
        )
