"""``carts confirm`` reports what was applied (``starter.cli.carts.confirm_and_number``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from starter.cli.carts import confirm_and_number
from starter.client import CartkeeperError
from workflows.contract import CartState, ErrorCode
from workflows.state import CartView


def view(number: int | None) -> CartView:
    return CartView(
        shop_id="s",
        cart_id="c",
        state=CartState.ORDERED,
        version=5,
        total=2100,
        currency="EUR",
        item_count=1,
        order_number=number,
        order_status="P",
        order_paid=True,
        amount_paid=2100,
    )


class FakeCarts:
    """A client whose confirm is applied and whose wait for the number ends as told."""

    def __init__(self, number_outcome: Any) -> None:
        self.number_outcome = number_outcome
        self.calls: list[str] = []

    async def confirm(self, shop_id: str, cart_id: str, **_: Any) -> CartView:
        self.calls.append("confirm")
        return view(None)

    async def await_order(self, shop_id: str, cart_id: str, timeout_seconds: float) -> CartView:
        self.calls.append("await_order")
        if isinstance(self.number_outcome, BaseException):
            raise self.number_outcome
        if self.number_outcome == "hang":
            await asyncio.sleep(3600)
        return view(self.number_outcome)


async def confirm(carts: FakeCarts) -> CartView:
    return await confirm_and_number(
        carts,  # type: ignore[arg-type]
        "s",
        "c",
        "ann",
        None,
        "P",
        number_wait=0.05,
    )


async def test_the_number_is_printed_when_it_comes() -> None:
    carts = FakeCarts(7)
    assert (await confirm(carts)).order_number == 7
    assert carts.calls == ["confirm", "await_order"]


@pytest.mark.parametrize(
    "outcome",
    [CartkeeperError(ErrorCode.UPDATE_PENDING, "no worker applied it in time"), "hang"],
)
async def test_an_applied_confirmation_whose_number_is_late_is_reported(outcome: Any) -> None:
    """Not 'not applied' (exit 4): the order exists, its number is pending."""
    result = await confirm(FakeCarts(outcome))
    assert result.state is CartState.ORDERED and result.order_number is None


async def test_other_failures_of_the_wait_are_shown() -> None:
    with pytest.raises(CartkeeperError) as raised:
        await confirm(FakeCarts(CartkeeperError(ErrorCode.TEMPORAL_UNAVAILABLE, "down")))
    assert raised.value.code is ErrorCode.TEMPORAL_UNAVAILABLE
