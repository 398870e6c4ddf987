"""Which effects a change calls for. The state machine decides; the workflow performs them
through activities (or commands) without blocking its handlers or timers.

Every effect is also recoverable from the state alone (an order without a number, a
version the read model does not hold yet), so a continue-as-new, a crash or an outage
never loses one: the next run or the next attempt performs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from workflows.codes import CartState
from workflows.state import Cart


class Effect(StrEnum):
    #: allocate the order's number (once per order, whatever the retries)
    ASSIGN_ORDER_NUMBER = "assign_order_number"
    #: write the cart to the read model
    PROJECT = "project"
    #: upsert the search attributes ops filter by
    PUBLISH_SEARCH_ATTRIBUTES = "publish_search_attributes"


#: states an admin acts on: their carts are written at once, not after the interval
URGENT_STATES = frozenset(
    {CartState.ORDERED, CartState.LOCKED, CartState.EXPIRED, CartState.DELETED}
)


@dataclass(frozen=True)
class Decision:
    """The outcome of an event or a timer: whether the cart changed, the effects it calls
    for, and whether they are urgent (written at once instead of after the interval)."""

    changed: bool
    effects: tuple[Effect, ...] = ()
    urgent: bool = False


UNCHANGED = Decision(changed=False)

SearchFields = tuple[str, str, int, str | None, int | None, datetime | None, datetime | None, bool]


def search_fields(cart: Cart) -> SearchFields:
    """The values of the cart's search attributes (no personal data: ids, states, money),
    in the order of ``workflows.search_attributes.ALL_KEYS``."""
    order = cart.order
    return (
        str(cart.state),
        cart.shop_id,
        cart.total,
        cart.currency,
        order.number if order else None,
        cart.locked_at,
        cart.abandoned_at,
        cart.needs_admin,
    )


def needs_number(cart: Cart) -> bool:
    return cart.order is not None and cart.order.number is None


def is_urgent(cart: Cart) -> bool:
    """Admins act on it: write it at once (an order once it has its number)."""
    if needs_number(cart):
        return False
    return cart.state in URGENT_STATES or cart.needs_admin


def decide(before: SearchFields, cart: Cart, changed: bool) -> Decision:
    """The effects of a change from a cart whose search fields were ``before``."""
    if not changed:
        return UNCHANGED
    effects = [Effect.PROJECT]
    if search_fields(cart) != before:
        effects.append(Effect.PUBLISH_SEARCH_ATTRIBUTES)
    if needs_number(cart):
        effects.append(Effect.ASSIGN_ORDER_NUMBER)
    return Decision(changed=True, effects=tuple(effects), urgent=is_urgent(cart))
