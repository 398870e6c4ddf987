"""Opaque keyset cursors of the read model's lists (the orders list, a customer's journal):
a JSON object, URL-safe base64 without padding. Each list puts its own fields in it and
checks them; this module only packs, unpacks and reads the time a cursor holds."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any


def encode_cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: object, *, version: int, max_length: int) -> dict[str, Any] | None:
    """The object a cursor of ``version`` holds; ``None`` if it is not one (not text, too
    long, not base64 of a JSON object, another version)."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > max_length:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw.decode())
    except (binascii.Error, ValueError):
        return None
    if not isinstance(data, dict) or data.get("v") != version:
        return None
    return data


def cursor_time(value: object) -> datetime | None:
    """An aware ISO 8601 time of a cursor, in UTC; ``None`` if it is not one (naive, or at
    the edge of the calendar)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
        return moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None
