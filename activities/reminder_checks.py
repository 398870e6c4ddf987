"""What the reminder activities decide before an e-mail leaves: the pure rules (variant
split, quiet hours, what a plan skips) and the read-model queries (suppressions, a newer
cart or order of the same customer, the customer's cap).

``check_send`` is every check at the moment of sending, in order, and only reads: the
``send_reminder`` activity calls it, and so does the admins' dry run
(``starter.reminder_sending``), so "would it be sent now?" has one answer.

Every "no" is a ``Skip`` with a ``SkipReason`` and a short detail without personal data
(cart ids and times, never the address); quiet hours are a ``Defer`` to the next allowed
time (the workflow moves the reminder there, or skips it); a yes is a ``Go``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, and_, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from activities import coupons
from activities.campaigns import CampaignConfig, ReminderDefinition
from activities.models import CartRecord, ReminderSend, Suppression
from activities.read_model import normalize_email
from workflows.codes import CartState, SkipReason
from workflows.contract import SendReminderInput
from workflows.reminders import STOP_REASONS
from workflows.state import Cart


@dataclass(frozen=True)
class ReminderKey:
    """One reminder of one cart (lineage): the ledger's key, and what the Message-ID and
    the coupon are derived from."""

    shop_id: str
    cart_id: str
    lineage: str
    reminder_id: str

    @property
    def ident(self) -> tuple[str, str, str, str]:
        """The ``reminder_sends`` primary key, in column order."""
        return (self.shop_id, self.cart_id, self.lineage, self.reminder_id)

    @property
    def message_key(self) -> str:
        """The key of ``mail_render.message_id``: the same on every retry and replay."""
        return f"{self.lineage}:{self.reminder_id}"

    def where(self) -> list[ColumnElement[bool]]:
        return [
            ReminderSend.shop_id == self.shop_id,
            ReminderSend.cart_id == self.cart_id,
            ReminderSend.lineage == self.lineage,
            ReminderSend.reminder_id == self.reminder_id,
        ]


@dataclass(frozen=True)
class Skip:
    reason: SkipReason
    detail: str | None = None


@dataclass(frozen=True)
class Defer:
    """Quiet hours: not now, at ``until`` (UTC)."""

    until: datetime
    detail: str


@dataclass(frozen=True)
class Go:
    """Every check passed: the reminder, its variant and the coupon to issue."""

    definition: ReminderDefinition
    variant: str | None
    terms: coupons.CouponTerms | None


def scrub(text: str, email: str | None) -> str:
    """``text`` without the customer's address (relay answers quote it)."""
    if not email:
        return text
    for form in {email, email.strip(), email.strip().lower()}:
        if form:
            text = text.replace(form, "<recipient>")
    return text


# --------------------------------------------------------------------------- planning


def variant_for(key: ReminderKey, has_b: bool, asked: str | None = None) -> str | None:
    """``a`` or ``b`` for a reminder with two variants (``None`` with one): ``asked`` when
    it names one (the plan's), else the cart's split, the same for the same cart and
    reminder in every process and run (CRC-32, never ``hash``)."""
    if not has_b:
        return None
    if asked in ("a", "b"):
        return asked
    split = zlib.crc32(f"{key.shop_id}:{key.cart_id}:{key.lineage}:{key.reminder_id}".encode())
    return "b" if split % 2 else "a"


def plan_skip(
    campaign: CampaignConfig, email: str | None, marketing_consent: bool
) -> SkipReason | None:
    """Why a plan's reminders are skipped from the start, if they are."""
    if not campaign.enabled:
        return SkipReason.CAMPAIGN_DISABLED
    if not email or not email.strip():
        return SkipReason.NO_ADDRESS
    if campaign.requires_consent and not marketing_consent:
        return SkipReason.NO_CONSENT
    return None


# --------------------------------------------------------------------------- the cart


def cart_state_skip(cart: Cart) -> Skip | None:
    """The cart is no longer abandoned (the copy the workflow sent): nothing to remind of,
    with the reason the workflow's own sequence stops for (``workflows.reminders.stop``)."""
    if cart.state is CartState.ABANDONED:
        return None
    return Skip(STOP_REASONS.get(cart.state, SkipReason.CART_ACTIVE), f"the cart is {cart.state}")


# --------------------------------------------------------------------------- quiet hours


def time_zone(name: str | None, default: str) -> ZoneInfo:
    """The customer's zone; an unknown or missing one falls back to the campaign's
    default, and an unknown default to UTC."""
    for candidate in (name, default):
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
            continue
    return ZoneInfo("UTC")


def _minutes(value: int) -> str:
    return f"{value // 60:02d}:{value % 60:02d}"


def quiet_until(
    now: datetime, zone: ZoneInfo, start_minute: int, end_minute: int
) -> datetime | None:
    """When quiet hours (local minutes after midnight, ``start`` to ``end``, wrapping
    midnight when ``start > end``; equal: none) that hold ``now`` end, in UTC; ``None``
    when ``now`` is outside them."""
    start, end = start_minute % 1440, end_minute % 1440
    if start == end:
        return None
    local = now.astimezone(zone)
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return None
    day = local.date() if minute < end else local.date() + timedelta(days=1)
    until = datetime.combine(day, time(end // 60, end % 60), tzinfo=zone).astimezone(UTC)
    # A local time that does not exist (a DST gap) resolves after the gap: still later.
    return until if until > now else now + timedelta(minutes=1)


def quiet_hours(campaign: CampaignConfig, customer_zone: str | None, now: datetime) -> Defer | None:
    zone = time_zone(customer_zone, campaign.default_time_zone)
    until = quiet_until(now, zone, campaign.quiet_start_minute, campaign.quiet_end_minute)
    if until is None:
        return None
    window = f"{_minutes(campaign.quiet_start_minute)}-{_minutes(campaign.quiet_end_minute)}"
    return Defer(until=until, detail=f"quiet hours {window} {zone.key}")


# --------------------------------------------------------------------------- the database


async def suppressed(session: AsyncSession, shop_id: str, email: str) -> Skip | None:
    """The address unsubscribed from the shop, or bounced."""
    row = await session.get(Suppression, (shop_id, normalize_email(email)))
    if row is None:
        return None
    reason = SkipReason.BOUNCED if row.reason == "bounced" else SkipReason.UNSUBSCRIBED
    return Skip(reason, f"{row.reason} ({row.source}) at {row.created_at.isoformat()}")


async def newer_cart(session: AsyncSession, cart: Cart, email: str) -> Skip | None:
    """Another cart of the same customer (same shop, same address whatever its case) that
    was created after this one was abandoned, or ordered after this one was created."""
    abandoned_at = cart.abandoned_at or cart.last_activity_at or cart.created_at
    created_at = cart.created_at or abandoned_at
    if abandoned_at is None or created_at is None:
        return None
    query = (
        select(CartRecord.cart_id, CartRecord.created_at, CartRecord.ordered_at)
        .where(
            CartRecord.shop_id == cart.shop_id,
            func.lower(CartRecord.customer_email) == normalize_email(email),
            CartRecord.cart_id != cart.cart_id,
            or_(
                CartRecord.created_at > abandoned_at,
                and_(CartRecord.ordered_at.is_not(None), CartRecord.ordered_at > created_at),
            ),
        )
        .order_by(CartRecord.created_at.desc())
        .limit(1)
    )
    found = (await session.execute(query)).first()
    if found is None:
        return None
    other, other_created, other_ordered = found
    if other_ordered is not None and other_ordered > created_at:
        return Skip(SkipReason.NEWER_CART, f"cart {other} ordered at {other_ordered.isoformat()}")
    return Skip(SkipReason.NEWER_CART, f"cart {other} created at {other_created.isoformat()}")


async def cap_reached(
    session: AsyncSession, key: ReminderKey, email: str, campaign: CampaignConfig, now: datetime
) -> Skip | None:
    """The customer was sent ``cap_count`` reminders of this shop within the last
    ``cap_period_days`` (this reminder itself not counted). A cap or period of 0: no cap."""
    if campaign.cap_count <= 0 or campaign.cap_period_days <= 0:
        return None
    query = (
        select(func.count())
        .select_from(ReminderSend)
        .where(
            ReminderSend.email == normalize_email(email),
            ReminderSend.status == "sent",
            ReminderSend.sent_at >= now - timedelta(days=campaign.cap_period_days),
            ReminderSend.shop_id == key.shop_id,
            not_(and_(*key.where())),
        )
    )
    count = int((await session.execute(query)).scalar_one())
    if count < campaign.cap_count:
        return None
    return Skip(
        SkipReason.CAP_REACHED,
        f"{count} reminders sent in {campaign.cap_period_days} days (cap {campaign.cap_count})",
    )


# --------------------------------------------------------------------------- all of them


async def check_send(
    session: AsyncSession,
    request: SendReminderInput,
    key: ReminderKey,
    campaign: CampaignConfig | None,
    now: datetime,
) -> Skip | Defer | Go:
    """Every condition, at the moment of sending, in order: the cart is still abandoned;
    campaign missing or disabled; reminder missing, removed, or made manual (for an
    automatic send); no address; no consent; the address unsubscribed or bounced; a newer
    cart or order of the same customer; the customer's cap; an empty cart or an unusable
    coupon; quiet hours. Reads only (the ledger is the caller's)."""
    cart = request.cart
    state = cart_state_skip(cart)
    if state is not None:
        return state
    if campaign is None:
        return Skip(SkipReason.CAMPAIGN_DISABLED, "the shop has no reminder campaign")
    if not campaign.enabled:
        return Skip(SkipReason.CAMPAIGN_DISABLED, "the campaign is disabled")
    definition = campaign.reminder(request.reminder_id)
    if definition is None or definition.removed:
        return Skip(SkipReason.REMINDER_REMOVED, "the campaign no longer has this reminder")
    if not request.manual and not definition.automatic:
        return Skip(SkipReason.REMINDER_REMOVED, "the reminder is now sent by hand only")
    customer = cart.customer
    if customer is None or not customer.email or not customer.email.strip():
        return Skip(SkipReason.NO_ADDRESS, "the cart has no customer address")
    if campaign.requires_consent and not customer.marketing_consent:
        return Skip(SkipReason.NO_CONSENT, "the campaign requires marketing consent")
    skip = (
        await suppressed(session, cart.shop_id, customer.email)
        or await newer_cart(session, cart, customer.email)
        or await cap_reached(session, key, customer.email, campaign, now)
    )
    if skip is not None:
        return skip
    if not cart.lines or cart.currency is None:
        return Skip(SkipReason.SEND_FAILED, "the cart has no lines to remind of")
    variant = variant_for(key, definition.b is not None, request.variant)
    offer = definition.variant(variant).coupon
    terms: coupons.CouponTerms | None = None
    if offer is not None:
        try:
            terms = coupons.CouponTerms(
                kind=offer.kind,
                amount=offer.amount,
                currency=cart.currency if offer.kind == "fixed" else None,
                valid_days=offer.expiry_days,
            )
        except ValueError as error:
            return Skip(SkipReason.SEND_FAILED, f"the reminder's coupon: {error}")
    defer = quiet_hours(campaign, customer.time_zone, now)
    if defer is not None:
        return defer
    return Go(definition, variant, terms)
