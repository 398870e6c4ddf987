"""``cartkeeper coupons``: a coupon's discount on a cart (``check``), and redeeming it for
the cart exactly once (``redeem``), in the read-model database (no Temporal needed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import click

from starter.cli.common import (
    CONTEXT_SETTINGS,
    echo,
    json_option,
    load_settings,
    read_model,
    run,
    shop_option,
    shop_or_default,
)
from starter.cli.root import cli
from starter.errors import EXIT_NOT_FOUND, EXIT_REFUSED, Failure

if TYPE_CHECKING:
    from starter.coupons import CouponClient, CouponOnCart


@cli.group(context_settings=CONTEXT_SETTINGS)
def coupons() -> None:
    """Coupons of the reminders: a code's discount on a cart, and redeeming it once.

    A coupon is the customer's: it applies to any cart of its shop. The cart's total and
    currency are read from the read model (its last projection).
    """


def _run(
    work: Callable[[CouponClient, str], Awaitable[CouponOnCart]],
    shop: str | None,
    as_json: bool,
    verb: str,
) -> None:
    """Run ``work`` (with the shop id) on the read model; print the coupon on the cart, or
    one error line (exit 1 refused, 3 no such cart)."""
    from activities.coupons import CouponRefused
    from starter.coupons import CouponClient

    settings = load_settings()
    shop_id = shop_or_default(shop, settings)

    async def main() -> int:
        engine, sessions = read_model(settings)
        try:
            result = await work(CouponClient(sessions), shop_id)
        except CouponRefused as refused:
            code = EXIT_NOT_FOUND if refused.code == "cart_not_found" else EXIT_REFUSED
            raise Failure(refused.code, refused.message, code) from None
        finally:
            await engine.dispose()
        _print(result, as_json, verb)
        return 0

    run(click.get_current_context(), main)


def _print(result: CouponOnCart, as_json: bool, verb: str) -> None:
    from starter.output import dumps, format_money, format_time, jsonable, safe

    if as_json:
        data = jsonable(result)
        data["redeemed_by_this_cart"] = result.redeemed_by_this_cart
        echo(dumps(data))
        return
    if result.kind == "percent":
        terms = f"{result.amount} % off"
    else:
        terms = f"{format_money(result.amount, result.coupon_currency)} off"
    if result.redeemed_by_this_cart:
        used = f"redeemed for this cart at {format_time(result.redeemed_at)} UTC"
    elif result.redeemed_at is not None:
        used = f"redeemed before (last at {format_time(result.redeemed_at)} UTC)"
    else:
        used = "not redeemed yet"
    use = "single use" if result.single_use else "multiple use"
    echo(
        safe(
            f"coupon {result.code} {verb} cart {result.cart_id} ({result.cart_state}):"
            f" {terms}: {format_money(result.discount, result.currency)} off"
            f" {format_money(result.total, result.currency)},"
            f" {format_money(result.to_pay, result.currency)} to pay"
        )
    )
    echo(f"valid until {format_time(result.expires_at)} UTC, {use}, {used}")


@coupons.command(context_settings=CONTEXT_SETTINGS)
@click.argument("code")
@click.option("--cart", "cart_id", required=True, metavar="CART", help="The cart to apply it to.")
@shop_option
@json_option
def check(code: str, cart_id: str, shop: str | None, as_json: bool) -> None:
    """Show the discount coupon CODE gives on a cart now, or why it gives none.

    Changes nothing. The code is found however it is typed ("szrc keey", "SZRC-KEEY").
    Refused (exit 1) with coupon_not_found, coupon_expired, coupon_used (another cart
    redeemed it), coupon_currency_mismatch (a fixed amount in another currency than the
    cart's), cart_empty, cart_expired or cart_deleted; a cart the read model does not have
    exits 3.

    \b
    Examples:
      cartkeeper coupons check 7KQ2-M9XD --cart sim-8wt08t-004
    """

    async def work(client: CouponClient, shop_id: str) -> CouponOnCart:
        return await client.check(shop_id, code, cart_id)

    _run(work, shop, as_json, "on")


@coupons.command(context_settings=CONTEXT_SETTINGS)
@click.argument("code")
@click.option("--cart", "cart_id", required=True, metavar="CART", help="The cart it is used for.")
@shop_option
@json_option
def redeem(code: str, cart_id: str, shop: str | None, as_json: bool) -> None:
    """Redeem coupon CODE for a cart: exactly once.

    A single-use coupon is redeemed by one cart only, whoever asks at the same time: the
    same cart asking again is answered the same (even after the coupon's expiry), another
    cart is refused with coupon_used. Refused (exit 1) as `coupons check` is; a cart the
    read model does not have exits 3.

    \b
    Examples:
      cartkeeper coupons redeem 7KQ2-M9XD --cart sim-8wt08t-004
    """

    async def work(client: CouponClient, shop_id: str) -> CouponOnCart:
        return await client.redeem(shop_id, code, cart_id)

    _run(work, shop, as_json, "redeemed for")
