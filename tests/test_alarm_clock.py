"""The loop's clock (``workflows.alarm_clock``): never behind a timer that has fired, and
read by validators without being moved (a validator never runs on replay)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import workflow

from workflows.alarm_clock import AlarmClock

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class _Done:
    def done(self) -> bool:
        return True


class _Pending:
    def done(self) -> bool:
        return False


def _made(alarm: tuple[datetime, Any] | None) -> AlarmClock:
    clock = AlarmClock()
    clock._clock_floor = T0
    clock._alarm = alarm
    return clock


@pytest.fixture
def task_time(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The workflow task's time, as ``workflow.now()`` gives it."""
    now = [T0]
    monkeypatch.setattr(workflow, "now", lambda: now[0])
    return now


def test_a_validator_reads_the_clock_the_handler_acts_on_and_moves_nothing(
    task_time: list[datetime],
) -> None:
    # a task that delivered a fired timer with an earlier task's time
    rang = T0 + timedelta(seconds=30)
    task_time[0] = T0 + timedelta(seconds=10)
    clock = _made((rang, _Done()))
    assert clock._clock() == rang  # what the validator reads ...
    assert clock._clock_floor == T0  # ... changes nothing
    assert clock._now() == rang  # the handler acts on the same time
    assert clock._clock_floor == rang  # and the floor keeps it
    assert clock._clock() == rang


def test_the_clock_follows_the_task_time_above_the_floor(task_time: list[datetime]) -> None:
    later = T0 + timedelta(minutes=5)
    task_time[0] = later
    clock = _made((T0 + timedelta(seconds=30), _Done()))
    assert clock._clock() == clock._now() == later
    assert clock._clock_floor == T0 + timedelta(seconds=30)  # the fired timer's deadline


def test_a_timer_that_has_not_fired_does_not_move_the_clock(task_time: list[datetime]) -> None:
    task_time[0] = T0 + timedelta(seconds=1)
    clock = _made((T0 + timedelta(seconds=30), _Pending()))
    assert clock._clock() == clock._now() == T0 + timedelta(seconds=1)
    assert clock._clock_floor == T0
    assert not clock._alarm_rang()
