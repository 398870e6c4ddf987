"""How long an e-mail activity's attempt may run before the relay accepted its message.

Temporal starts the next attempt once the start-to-close timeout has passed, and the
workflow starts the effect again once it gave up on it (schedule-to-close), whether the
attempt still runs or not: an activity without heartbeats cannot be told to stop. An
attempt that stops itself ``ATTEMPT_MARGIN`` before either can never overlap the next
one, so no two attempts hand the same message to the relay at once. Once the relay
accepted the message the budget is lifted (``lift``): the record that it was sent is
written whatever it takes (a resend after a crash still carries the same Message-ID).
"""

from __future__ import annotations

import asyncio
import contextvars
from datetime import UTC, datetime, timedelta
from types import TracebackType

from temporalio import activity

#: an attempt stops this long before its start-to-close timeout or the workflow's give-up
ATTEMPT_MARGIN = timedelta(seconds=10)

_CURRENT: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar(
    "attempt_budget", default=None
)


def attempt_budget(
    start_to_close: timedelta | None, until_give_up: timedelta | None = None
) -> float | None:
    """Seconds the attempt may run: the sooner of its start-to-close timeout and the time
    until the workflow gives up, less ``ATTEMPT_MARGIN`` (at least a second); ``None``
    without either."""
    limits = [limit for limit in (start_to_close, until_give_up) if limit is not None]
    if not limits:
        return None
    return max((min(limits) - ATTEMPT_MARGIN).total_seconds(), 1.0)


def budget_of(info: activity.Info) -> float | None:
    until_give_up = None
    if info.schedule_to_close_timeout is not None:
        deadline = info.scheduled_time + info.schedule_to_close_timeout
        until_give_up = deadline - datetime.now(UTC)
    return attempt_budget(info.start_to_close_timeout, until_give_up)


class AttemptBudget:
    """``async with AttemptBudget():`` bounds the running activity's attempt (no bound
    outside an activity); past it, ``TimeoutError`` and ``expired()``."""

    def __init__(self) -> None:
        self._timeout = asyncio.timeout(
            budget_of(activity.info()) if activity.in_activity() else None
        )
        self._token: contextvars.Token[asyncio.Timeout | None] | None = None

    async def __aenter__(self) -> AttemptBudget:
        self._token = _CURRENT.set(self._timeout)
        await self._timeout.__aenter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._timeout.__aexit__(kind, error, traceback)
        finally:
            if self._token is not None:
                _CURRENT.reset(self._token)

    def expired(self) -> bool:
        return self._timeout.expired()


def lift() -> None:
    """The relay accepted the message: the rest of the running attempt is not bounded."""
    running = _CURRENT.get()
    if running is not None:
        running.reschedule(None)
