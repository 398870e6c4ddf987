"""Search attributes the cart workflow keeps for ops. No personal data: ids, states, money."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CART_STATE = SearchAttributeKey.for_keyword("CartState")
CART_SHOP = SearchAttributeKey.for_keyword("CartShop")
CART_TOTAL = SearchAttributeKey.for_int("CartTotal")
CART_CURRENCY = SearchAttributeKey.for_keyword("CartCurrency")
CART_ORDER_NUMBER = SearchAttributeKey.for_int("CartOrderNumber")
CART_LOCKED_AT = SearchAttributeKey.for_datetime("CartLockedAt")
CART_ABANDONED_AT = SearchAttributeKey.for_datetime("CartAbandonedAt")
CART_NEEDS_ADMIN = SearchAttributeKey.for_bool("CartNeedsAdmin")

ALL_KEYS: tuple[SearchAttributeKey, ...] = (  # type: ignore[type-arg]
    CART_STATE,
    CART_SHOP,
    CART_TOTAL,
    CART_CURRENCY,
    CART_ORDER_NUMBER,
    CART_LOCKED_AT,
    CART_ABANDONED_AT,
    CART_NEEDS_ADMIN,
)

_CLI_TYPES = {"KEYWORD": "Keyword", "INT": "Int", "DATETIME": "Datetime", "BOOL": "Bool"}


def dev_server_args() -> list[str]:
    """``--search-attribute Name=Type`` arguments for ``temporal server start-dev``."""
    args: list[str] = []
    for key in ALL_KEYS:
        kind = _CLI_TYPES[key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_")]
        args += ["--search-attribute", f"{key.name}={kind}"]
    return args
