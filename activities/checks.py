"""Checks the read-model stores share: a shop id (refused with each store's own error
class) and an aware time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from workflows.validation import valid_id

SHOP_ID_RULE = "letters, digits, '.', '_', '-'; 1-64 characters, starting with a letter or digit"


def checked_shop_id(shop_id: object, refused: Callable[[str, str], Exception]) -> str:
    """``shop_id`` if it is a valid id, else ``refused("invalid_shop_id", message)``."""
    if not isinstance(shop_id, str) or not valid_id(shop_id):
        raise refused("invalid_shop_id", f"{shop_id!r} is not a valid shop id ({SHOP_ID_RULE})")
    return shop_id


def aware_utc(now: datetime | None, what: str) -> datetime:
    """``now`` (the current time if ``None``); a naive time is a programming error."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"{what} times must be timezone-aware (UTC)")
    return now
