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
    until_timeout: timedelta | None, until_give_up: timedelta | None = None
) -> float | None:
    """Seconds the attempt may still run: the sooner of the time left until its
    start-to-close timeout and until the workflow gives up, less ``ATTEMPT_MARGIN`` (at
    least a second); ``None`` without either."""
    limits = [limit for limit in (until_timeout, until_give_up) if limit is not None]
    if not limits:
        return None
    return max((min(limits) - ATTEMPT_MARGIN).total_seconds(), 1.0)


def budget_of(info: activity.Info) -> float | None:
    """The attempt's budget from now: counted from when the attempt started (its
    start-to-close) and from when the activity was scheduled (the workflow's give-up)."""
    now = datetime.now(UTC)
    until_timeout = until_give_up = None
    if info.start_to_close_timeout is not None:
        until_timeout = info.started_time + info.start_to_close_timeout - now
    if info.schedule_to_close_timeout is not None:
        until_give_up = info.scheduled_time + info.schedule_to_close_timeout - now
    return attempt_budget(until_timeout, until_give_up)


class AttemptBudget:
    """``async with AttemptBudget():`` bounds the running activity's attempt (no bound
    outside an activity); past it, ``TimeoutError`` and ``expired()``. ``limit``: never
    longer than this, in an activity or not (a lease that must outlast the attempt)."""

    def __init__(self, limit: timedelta | None = None) -> None:
        budget = budget_of(activity.info()) if activity.in_activity() else None
        if limit is not None:
            seconds = limit.total_seconds()
            budget = seconds if budget is None else min(budget, seconds)
        self._timeout = asyncio.timeout(budget)
        self._token: contextvars.Token[asyncio.Timeout | None] | None = None

    async def __aenter__(self) -> AttemptBudget:
        await self._timeout.__aenter__()
        self._token = _CURRENT.set(self._timeout)
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
    # Expired already (its cancellation lost in a race with the relay's answer): nothing
    # to lift; the message is accepted all the same and is recorded as sent.
    if running is not None and not running.expired():
        running.reschedule(None)
