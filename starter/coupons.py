"""The coupon client for admin tools: a code checked against a cart of the read model, and
redeemed for it exactly once (``activities.coupons`` does the work).

    coupons = CouponClient(sessions)
    offer = await coupons.check("demo", "7kq2 m9xd", "cart-1")    # the discount, or why not
    used = await coupons.redeem("demo", "7KQ2-M9XD", "cart-1")     # once; again: the same

A refusal is a ``CouponRefused`` with a code: ``coupon_not_found``, ``coupon_expired``,
``coupon_used``, ``coupon_currency_mismatch`` (``activities.coupons``), and here
``cart_not_found`` (no such cart in the read model), ``cart_empty`` (the cart has no
currency to discount), ``cart_expired`` / ``cart_deleted`` (a closed cart takes no coupon).

The cart is its last projection (its total and currency); a coupon is the customer's and
applies to any cart of its shop. ``redeem`` redeems for the cart (``redeemed_by`` is the
cart id): the same cart asking again is answered the same (even after the expiry), any
other cart gets ``coupon_used`` (single-use coupons), whoever races.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from activities import coupons
from activities.coupons import CouponRefused, IssuedCoupon
from activities.read_model import get_cart_record
from starter.read_model_client import ReadModelClient
from workflows.contract import Cart, CartState, ErrorCode

__all__ = ["CouponClient", "CouponOnCart", "CouponRefused"]

#: closed carts take no coupon: their refusal codes
_CLOSED = {
    CartState.EXPIRED: (ErrorCode.CART_EXPIRED, "has expired"),
    CartState.DELETED: (ErrorCode.CART_DELETED, "was deleted"),
}


@dataclass(frozen=True)
class CouponOnCart:
    """A coupon applied to a cart: its terms and the discount on the cart's total."""

    shop_id: str
    cart_id: str
    cart_state: CartState
    code: str
    #: ``fixed`` (``amount`` minor units of ``coupon_currency``) or ``percent``
    kind: str
    amount: int
    coupon_currency: str | None
    single_use: bool
    expires_at: datetime
    #: the cart's total and currency, the discount on it and what is left to pay
    total: int
    currency: str
    discount: int
    to_pay: int
    redeemed_at: datetime | None
    redeemed_by: str | None

    @property
    def redeemed_by_this_cart(self) -> bool:
        return self.redeemed_at is not None and self.redeemed_by == self.cart_id


class CouponClient(ReadModelClient):
    """Check and redeem shops' coupons against carts of the read model. ``clock``: the
    time coupons are checked at (tests set it)."""

    async def check(self, shop_id: str, code: str, cart_id: str) -> CouponOnCart:
        """The discount the coupon gives on the cart now, or ``CouponRefused``. Changes
        nothing; a coupon this cart redeemed is still answered with its discount."""
        cart = await self._cart(shop_id, cart_id)
        coupon = await coupons.find(self.sessions, shop_id, code)
        currency = self._usable_cart(cart, coupon)
        coupon, discount = await coupons.check(
            self.sessions,
            shop_id,
            coupon.code,
            total=cart.total,
            currency=currency,
            now=self._clock(),
            by=cart_id,
        )
        return self._on_cart(cart, coupon, currency, discount)

    async def redeem(self, shop_id: str, code: str, cart_id: str) -> CouponOnCart:
        """Redeem the coupon for the cart: exactly once (see the module's docstring)."""
        cart = await self._cart(shop_id, cart_id)
        coupon = await coupons.find(self.sessions, shop_id, code)
        currency = self._usable_cart(cart, coupon)
        now = self._clock()
        # the cart's currency first (redeeming does not look at the cart) ...
        await coupons.check(
            self.sessions,
            shop_id,
            coupon.code,
            total=cart.total,
            currency=currency,
            now=now,
            by=cart_id,
        )
        # ... then the one conditional UPDATE that decides
        redeemed = await coupons.redeem(self.sessions, shop_id, coupon.code, by=cart_id, now=now)
        discount = coupons.discount(redeemed, cart.total, currency)
        return self._on_cart(cart, redeemed, currency, discount)

    async def _cart(self, shop_id: str, cart_id: str) -> Cart:
        cart = await get_cart_record(self.sessions, shop_id, cart_id)
        if cart is None:
            raise CouponRefused(
                str(ErrorCode.CART_NOT_FOUND),
                f"no cart {cart_id!r} of shop {shop_id!r} in the read model",
            )
        return cart

    @staticmethod
    def _usable_cart(cart: Cart, coupon: IssuedCoupon) -> str:
        """The cart's currency; a cart without one, or a closed cart (unless it holds this
        coupon already: its redemption is answered again), is refused."""
        held = coupon.redeemed_at is not None and coupon.redeemed_by == cart.cart_id
        closed = _CLOSED.get(cart.state)
        if closed is not None and not held:
            code, what = closed
            raise CouponRefused(str(code), f"cart {cart.cart_id} {what}: it takes no coupon")
        if cart.currency is None:
            raise CouponRefused(
                str(ErrorCode.CART_EMPTY), f"cart {cart.cart_id} is empty: nothing to discount"
            )
        return cart.currency

    @staticmethod
    def _on_cart(cart: Cart, coupon: IssuedCoupon, currency: str, discount: int) -> CouponOnCart:
        return CouponOnCart(
            shop_id=cart.shop_id,
            cart_id=cart.cart_id,
            cart_state=cart.state,
            code=coupon.code,
            kind=coupon.kind,
            amount=coupon.amount,
            coupon_currency=coupon.currency,
            single_use=coupon.single_use,
            expires_at=coupon.expires_at,
            total=cart.total,
            currency=currency,
            discount=discount,
            to_pay=max(cart.total - discount, 0),
            redeemed_at=coupon.redeemed_at,
            redeemed_by=coupon.redeemed_by,
        )
