"""``POST /api/v1/coupons/validate`` (``starter.web.storefront``): whether a coupon of a
shop applies now, and its discount, against an amount or a cart of the read model.

The body is read strictly (``coupon_query``): ``code`` and either ``cart_id`` or
``total`` (whole minor units) and ``currency`` (ISO 4217); a wrong type is refused with
its code, never coerced. A coupon that does not apply is an answer (``applies: false``
and why), not an error; a cart that cannot take a coupon is a coded error
(``cart_not_found``, ``cart_empty``, ``cart_expired``, ``cart_deleted``). Nothing is
changed: redeeming is the order's business (``starter.coupons``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from activities import coupons
from activities.read_model import get_cart_record
from starter.client import check_ids
from starter.client_errors import CartkeeperError
from starter.coupons import CouponClient, CouponRefused
from starter.web.deps import WebContext
from workflows.codes import ISO_4217, ErrorCode
from workflows.validation import MAX_AMOUNT

#: the longest coupon code read (a code is 9 characters; what a customer types, more)
MAX_COUPON_CODE = 64


class CouponRefusal(BaseModel):
    code: str
    message: str


class CouponValidation(BaseModel):
    """Whether a coupon applies, and its discount."""

    #: the code as stored (``szrc keey`` → ``SZRC-KEEY``)
    code: str
    applies: bool
    #: why it does not apply: ``coupon_not_found``, ``coupon_expired``, ``coupon_used``,
    #: ``coupon_currency_mismatch``
    refusal: CouponRefusal | None = None
    #: ``fixed`` or ``percent``, and its amount (minor units, or percent)
    kind: str | None = None
    amount: int | None = None
    coupon_currency: str | None = None
    single_use: bool | None = None
    expires_at: datetime | None = None
    #: the amount it was checked against, the discount and what is left to pay
    total: int
    currency: str
    discount: int
    to_pay: int


@dataclass(frozen=True)
class CouponQuery:
    code: str
    cart_id: str | None
    total: int | None
    currency: str | None


def coupon_query(body: object) -> CouponQuery:
    """The request's body, read strictly (a refusal is a coded ``CartkeeperError``)."""

    def refuse(code: ErrorCode, message: str) -> CartkeeperError:
        return CartkeeperError(code, f"coupon: {message}")

    if not isinstance(body, dict):
        raise refuse(ErrorCode.INVALID_INPUT, "the body must be a JSON object")
    unknown = sorted(set(body) - {"code", "cart_id", "total", "currency"})
    if unknown:
        raise refuse(ErrorCode.INVALID_INPUT, f"unknown field(s) {', '.join(unknown)[:200]}")
    code, cart_id = body.get("code"), body.get("cart_id")
    total, currency = body.get("total"), body.get("currency")
    if not isinstance(code, str) or not 0 < len(code.strip()) <= MAX_COUPON_CODE:
        raise refuse(ErrorCode.INVALID_INPUT, f"code must be 1 to {MAX_COUPON_CODE} characters")
    if cart_id is not None:
        if total is not None or currency is not None:
            raise refuse(ErrorCode.INVALID_INPUT, "give either cart_id or total and currency")
        if not isinstance(cart_id, str):
            raise refuse(ErrorCode.INVALID_ID, "cart_id must be a string")
        return CouponQuery(code, cart_id, None, None)
    if isinstance(total, bool) or not isinstance(total, int) or not 0 <= total <= MAX_AMOUNT:
        raise refuse(ErrorCode.INVALID_AMOUNT, "total must be whole minor units, 0 or more")
    if not isinstance(currency, str) or currency not in ISO_4217:
        raise refuse(ErrorCode.INVALID_CURRENCY, "currency must be an ISO 4217 code")
    return CouponQuery(code, None, total, currency)


#: refusals that concern the cart, not the coupon: coded errors, not ``applies: false``
_CART_REFUSALS = {
    str(code): code
    for code in (
        ErrorCode.CART_NOT_FOUND,
        ErrorCode.CART_EMPTY,
        ErrorCode.CART_EXPIRED,
        ErrorCode.CART_DELETED,
    )
}


async def validate_coupon(
    context: WebContext, shop_id: str, query: CouponQuery
) -> CouponValidation:
    """The answer to ``query`` for the shop, at ``context.now()``."""
    total, currency = query.total or 0, query.currency or ""
    try:
        if query.cart_id is not None:
            check_ids(shop_id, query.cart_id)
            cart = await get_cart_record(context.sessions, shop_id, query.cart_id)
            if cart is None:
                raise CartkeeperError(
                    ErrorCode.CART_NOT_FOUND, f"no cart {query.cart_id!r} (not projected yet?)"
                )
            total, currency = cart.total, cart.currency or ""
            client = CouponClient(context.sessions, clock=context.now)
            on_cart = await client.check(shop_id, query.code, query.cart_id)
            return CouponValidation(
                code=on_cart.code,
                applies=True,
                kind=on_cart.kind,
                amount=on_cart.amount,
                coupon_currency=on_cart.coupon_currency,
                single_use=on_cart.single_use,
                expires_at=on_cart.expires_at,
                total=on_cart.total,
                currency=on_cart.currency,
                discount=on_cart.discount,
                to_pay=on_cart.to_pay,
            )
        coupon, discount = await coupons.check(
            context.sessions, shop_id, query.code, total=total, currency=currency, now=context.now()
        )
    except CouponRefused as refused:
        cart_code = _CART_REFUSALS.get(refused.code)
        if cart_code is not None:
            raise CartkeeperError(cart_code, refused.message) from None
        return CouponValidation(
            code=coupons.normalize(query.code) or query.code.strip(),
            applies=False,
            refusal=CouponRefusal(code=refused.code, message=refused.message),
            total=total,
            currency=currency,
            discount=0,
            to_pay=total,
        )
    return CouponValidation(
        code=coupon.code,
        applies=True,
        kind=coupon.kind,
        amount=coupon.amount,
        coupon_currency=coupon.currency,
        single_use=coupon.single_use,
        expires_at=coupon.expires_at,
        total=total,
        currency=currency,
        discount=discount,
        to_pay=max(total - discount, 0),
    )
