"""The admin API's coupons: one coupon of a shop by its code, with its state.

    GET /api/v1/admin/shops/{shop_id}/coupons/{code}

Coupons are made by reminders (``activities.coupons``): a code is the customer's and
applies to any cart of its shop. Checking one against a cart and redeeming it are the
storefront's (``POST /api/v1/coupons/validate``); an admin reads what a code is: its
terms, the cart and reminder it was made for, its expiry and its redemptions. Codes are
found however they are typed (``7kq2 m9xd`` is ``7KQ2-M9XD``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from fastapi.responses import Response

from activities.coupons import CouponRefused, normalize
from activities.models import Coupon
from starter.web.admin_api_calls import Reader, admin_router, answers, check_shop
from starter.web.admin_api_carts import ShopId

router = admin_router("admin: shop")

#: what a coupon is now
ACTIVE, REDEEMED, EXPIRED = "active", "redeemed", "expired"

_COUPON_EXAMPLE = {
    "shop_id": "demo",
    "code": "7KQ2-M9XD",
    "state": "active",
    "cart_id": "cart-42",
    "issued_for": "run-1:coupon-24h",
    "kind": "percent",
    "amount": 10,
    "currency": None,
    "single_use": True,
    "created_at": "2026-11-30T09:00:00+00:00",
    "expires_at": "2026-12-07T09:00:00+00:00",
    "redeemed_at": None,
    "redeemed_by": None,
    "redemptions": 0,
}


def state_of(row: Coupon, now: datetime) -> str:
    """``redeemed`` (a single-use coupon used), ``expired``, else ``active``."""
    if row.single_use and row.redeemed_at is not None:
        return REDEEMED
    return EXPIRED if now >= row.expires_at else ACTIVE


def coupon_json(row: Coupon, now: datetime) -> dict[str, Any]:
    return {
        "shop_id": row.shop_id,
        "code": row.code,
        "state": state_of(row, now),
        "cart_id": row.cart_id,
        "issued_for": row.issued_for,
        "kind": row.kind,
        "amount": row.amount,
        "currency": row.currency,
        "single_use": row.single_use,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "redeemed_at": row.redeemed_at.isoformat() if row.redeemed_at else None,
        "redeemed_by": row.redeemed_by,
        "redemptions": row.redemptions,
    }


@router.get(
    "/shops/{shop_id}/coupons/{code}",
    summary="Get a coupon",
    description="The shop's coupon with this code (any case, spaces or dashes as typed):"
    " `state` `active`, `redeemed` (a single-use coupon used: `redeemed_by` is the cart"
    " that used it) or `expired`; the cart it was made for (`cart_id`) and what made it"
    " (`issued_for`: the reminder's send); its terms (`kind` `percent`, or `fixed` with"
    " `amount` in minor units of `currency`), `expires_at` and `redemptions`. 404"
    " `coupon_not_found`; 422 `invalid_id` (the shop).",
    responses=answers("The coupon", _COUPON_EXAMPLE),
)
async def get_coupon(
    shop_id: ShopId,
    code: Annotated[str, Path(max_length=64, description="The code.", examples=["7KQ2-M9XD"])],
    call: Reader,
) -> Response:
    async def work() -> dict[str, Any]:
        check_shop(shop_id)
        key = normalize(code)
        async with call.sessions() as session:
            row = await session.get(Coupon, (shop_id, key)) if key else None
            if row is None:
                raise CouponRefused(
                    "coupon_not_found", f"no coupon {code[:70]!r} in shop {shop_id!r}"
                )
            now = call.context.now()
            return coupon_json(row, now)

    return await call.read(work)
