"""Coupons in the read-model database: issued once per (shop, cart, issued_for), checked
against a cart, redeemed exactly once.

- ``issue``: the first call for (shop, cart, issued_for) makes the coupon (a random code);
  every later call (an activity's retry, a replay) returns the same one.
- ``check``: whether a code applies to a cart now, and the discount in the cart's currency,
  or why not (``CouponRefused`` with a code: ``coupon_not_found``, ``coupon_expired``,
  ``coupon_used``, ``coupon_currency_mismatch``).
- ``redeem``: one conditional ``UPDATE``: a single-use coupon is redeemed by the first
  caller only; the same caller (``redeemed_by``) asking again gets the same answer (even
  after the expiry), anyone else ``coupon_used``. Safe with concurrent callers on SQLite
  and PostgreSQL. A multi-use coupon counts each redemption; the same caller twice in a
  row counts once.
- A coupon is the customer's: it applies to any cart of its shop, not only the one it was
  made for (a customer who comes back with a new cart keeps the discount).
- Times are timezone-aware UTC; a naive one is refused (``ValueError``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.checks import aware_utc
from activities.db import write_session
from activities.models import Coupon
from workflows.codes import ISO_4217

#: no 0/O, 1/I/L: a code read aloud or typed from a phone is typed right
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
MAX_PERCENT = 100


class CouponRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CouponTerms:
    kind: Literal["fixed", "percent"]
    #: minor units of ``currency`` (fixed) or a percent (1-100)
    amount: int
    currency: str | None
    valid_days: int
    single_use: bool = True

    def __post_init__(self) -> None:
        if self.kind == "fixed":
            if self.currency not in ISO_4217 or self.amount <= 0:
                raise ValueError("a fixed coupon needs a positive amount and an ISO currency")
        elif self.kind == "percent":
            if not 1 <= self.amount <= MAX_PERCENT or self.currency is not None:
                raise ValueError("a percent coupon is 1 to 100 percent, with no currency")
        else:
            raise ValueError(f"unknown coupon kind {self.kind!r}")
        if not 1 <= self.valid_days <= 3650:
            raise ValueError("a coupon is valid for 1 to 3650 days")


@dataclass(frozen=True)
class IssuedCoupon:
    shop_id: str
    code: str
    cart_id: str
    kind: str
    amount: int
    currency: str | None
    single_use: bool
    expires_at: datetime
    redeemed_at: datetime | None
    redeemed_by: str | None

    @classmethod
    def of(cls, row: Coupon) -> IssuedCoupon:
        return cls(
            shop_id=row.shop_id,
            code=row.code,
            cart_id=row.cart_id,
            kind=row.kind,
            amount=row.amount,
            currency=row.currency,
            single_use=row.single_use,
            expires_at=row.expires_at,
            redeemed_at=row.redeemed_at,
            redeemed_by=row.redeemed_by,
        )


def new_code(length: int = 8) -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(length))
    return f"{raw[:4]}-{raw[4:]}"


def normalize(code: str) -> str:
    """What a customer typed, as stored: upper case, only the code's letters and digits
    (spaces, dashes of any kind dropped), the dash put back (``szrc keey`` → ``SZRC-KEEY``)."""
    raw = "".join(char for char in code.upper() if char in ALPHABET)
    return f"{raw[:4]}-{raw[4:]}" if len(raw) == 8 else raw


def _aware(now: datetime) -> datetime:
    return aware_utc(now, "coupon")


async def issue(
    sessions: async_sessionmaker[AsyncSession],
    shop_id: str,
    cart_id: str,
    issued_for: str,
    terms: CouponTerms,
    now: datetime,
) -> IssuedCoupon:
    """The coupon of (shop, cart, issued_for): made on the first call, the same after."""
    now = _aware(now)
    existing = await _issued(sessions, shop_id, cart_id, issued_for)
    if existing is not None:
        return existing
    for _attempt in range(5):
        row = Coupon(
            shop_id=shop_id,
            code=new_code(),
            cart_id=cart_id,
            issued_for=issued_for,
            kind=terms.kind,
            amount=terms.amount,
            currency=terms.currency,
            single_use=terms.single_use,
            created_at=now,
            expires_at=now + timedelta(days=terms.valid_days),
            redeemed_at=None,
            redeemed_by=None,
            redemptions=0,
        )
        issued = IssuedCoupon.of(row)  # (the row expires with its session's commit)
        try:
            async with write_session(sessions) as session:
                session.add(row)
            return issued
        except IntegrityError:
            # Another call made it first (same key), or the random code was taken.
            existing = await _issued(sessions, shop_id, cart_id, issued_for)
            if existing is not None:
                return existing
    raise RuntimeError("could not find a free coupon code in 5 tries")


async def _issued(
    sessions: async_sessionmaker[AsyncSession], shop_id: str, cart_id: str, issued_for: str
) -> IssuedCoupon | None:
    async with sessions() as session:
        row = (
            await session.execute(
                select(Coupon).where(
                    Coupon.shop_id == shop_id,
                    Coupon.cart_id == cart_id,
                    Coupon.issued_for == issued_for,
                )
            )
        ).scalar_one_or_none()
        return IssuedCoupon.of(row) if row is not None else None


async def find(sessions: async_sessionmaker[AsyncSession], shop_id: str, code: str) -> IssuedCoupon:
    async with sessions() as session:
        row = await session.get(Coupon, (shop_id, normalize(code)))
        if row is None:
            raise CouponRefused("coupon_not_found", f"no coupon {code!r} in shop {shop_id!r}")
        return IssuedCoupon.of(row)


def discount(coupon: IssuedCoupon, total: int, currency: str) -> int:
    """The discount on a cart of ``total`` minor units of ``currency``: never more than the
    total, never negative; a percent is rounded down to the minor unit."""
    if total <= 0:
        return 0
    if coupon.kind == "percent":
        return total * coupon.amount // 100
    if coupon.currency != currency:
        raise CouponRefused(
            "coupon_currency_mismatch",
            f"the coupon is in {coupon.currency}, the cart in {currency}",
        )
    return min(coupon.amount, total)


async def check(
    sessions: async_sessionmaker[AsyncSession],
    shop_id: str,
    code: str,
    *,
    total: int,
    currency: str,
    now: datetime,
    by: str | None = None,
) -> tuple[IssuedCoupon, int]:
    """The coupon and its discount on this cart now, or ``CouponRefused``."""
    coupon = await find(sessions, shop_id, code)
    _usable(coupon, _aware(now), by)
    return coupon, discount(coupon, total, currency)


def _holds(coupon: IssuedCoupon, by: str | None) -> bool:
    """``by`` already redeemed this single-use coupon (its retry is answered the same)."""
    return coupon.single_use and coupon.redeemed_at is not None and coupon.redeemed_by == by


def usable(coupon: IssuedCoupon, now: datetime) -> bool:
    """Whether anyone could still redeem the coupon at ``now`` (not used up, not expired)."""
    try:
        _usable(coupon, _aware(now), None)
    except CouponRefused:
        return False
    return True


def _usable(coupon: IssuedCoupon, now: datetime, by: str | None) -> None:
    if _holds(coupon, by):
        return  # even past its expiry: the redemption happened in time
    if coupon.single_use and coupon.redeemed_at is not None:
        raise CouponRefused("coupon_used", f"coupon {coupon.code} was already used")
    if now >= coupon.expires_at:
        raise CouponRefused(
            "coupon_expired", f"coupon {coupon.code} expired at {coupon.expires_at.isoformat()}"
        )


async def redeem(
    sessions: async_sessionmaker[AsyncSession],
    shop_id: str,
    code: str,
    *,
    by: str,
    now: datetime,
) -> IssuedCoupon:
    """Redeem the coupon for ``by`` (e.g. the order): exactly once for a single-use
    coupon, whoever asks concurrently; ``by`` asking again is answered the same."""
    now = _aware(now)
    coupon = await find(sessions, shop_id, code)
    _usable(coupon, now, by)
    if _holds(coupon, by):
        return coupon  # a retry of the redemption that won
    conditions: list[Any] = [
        Coupon.shop_id == shop_id,
        Coupon.code == coupon.code,
        Coupon.expires_at > now,
    ]
    if coupon.single_use:
        conditions.append(Coupon.redeemed_at.is_(None))
    else:
        # the same caller twice in a row (a retry) counts once
        conditions.append(Coupon.redeemed_by.is_distinct_from(by))
    async with write_session(sessions) as session:
        result = await session.execute(
            update(Coupon)
            .where(*conditions)
            .values(
                redeemed_at=now,
                redeemed_by=by,
                redemptions=Coupon.redemptions + 1,
            )
            .execution_options(synchronize_session=False)
        )
        won = getattr(result, "rowcount", 0) == 1
    after = await find(sessions, shop_id, code)
    if not won and not (after.redeemed_by == by and after.redeemed_at is not None):
        _usable(after, now, by)  # raises coupon_used or coupon_expired
        raise CouponRefused("coupon_used", f"coupon {after.code} could not be redeemed")
    return after
