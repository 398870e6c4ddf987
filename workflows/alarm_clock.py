"""The cart workflow's one timer and its clock, as a part of ``CartWorkflow``.

The loop sleeps on a single timer (the alarm), re-armed only when the time it should ring
changes, and reads the time through ``_now``: the workflow's time, never behind a timer
that has fired. (Added when a cart under chaos seemed to get a fired timer with the
previous task's time; the nondeterminism errors of that kind were later traced to Core
folding an empty workflow task on a fresh worker, ``workflows.signal_marks``. The floor
stays: a recorded history may depend on it.)
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow


class AlarmClock:
    """The alarm and the clock of ``CartWorkflow``."""

    def _init_clock(self) -> None:
        #: the one timer of the loop: (when, its task), re-armed only when ``when`` changes
        self._alarm: tuple[datetime, asyncio.Task[None]] | None = None
        #: the latest deadline of a timer that fired (see ``_now``)
        self._clock_floor = workflow.now()

    def _arm(self, wake_at: datetime | None) -> None:
        """One timer for the loop, replaced only when the time it should ring changes (a
        timer started and cancelled at every wake-up would cost history events)."""
        alarm = self._alarm
        if alarm is not None and alarm[0] == wake_at and not alarm[1].done():
            return
        if alarm is not None and not alarm[1].done():
            alarm[1].cancel()
        self._alarm = None
        if wake_at is not None:
            delay = max((wake_at - self._now()).total_seconds(), 0.001)
            self._alarm = (wake_at, asyncio.create_task(asyncio.sleep(delay)))

    def _alarm_rang(self) -> bool:
        return self._alarm is not None and self._alarm[1].done()

    def _now(self) -> datetime:
        """The workflow's clock, never behind a timer that has fired (see the module)."""
        self._clock_floor = self._floor()
        return max(workflow.now(), self._clock_floor)

    def _clock(self) -> datetime:
        """``_now`` without moving the floor: a validator (never replayed) reads the clock
        the handler will act on, and changes nothing."""
        return max(workflow.now(), self._floor())

    def _floor(self) -> datetime:
        """The latest deadline of a timer that has fired (the clock's floor)."""
        alarm = self._alarm
        if alarm is not None and alarm[1].done() and alarm[0] > self._clock_floor:
            return alarm[0]
        return self._clock_floor
