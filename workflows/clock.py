"""The cart workflow's guard against a stale clock (issue 5, ``bench/known_issues``).

Seen three times under ``make chaos``: a worker was killed while a cart's workflow task
waited on its sticky queue; the task timed out (schedule-to-start) and went to a fresh
worker, which replayed the history and then ran the new task on the time of the last
*replayed* task (``workflow.now()`` equal to it), not on the new task's start time. Acting
on that time, the cart decided differently from what a replay, which sees the true time,
decides (a timer where the replay schedules the projection): a nondeterminism error, and
the cart stuck for good. The cause is in the SDK's core, not pinned down.

What is certain: the first task a worker runs *live* after replaying a history is a new
workflow task, started after every task it replayed. So a live time that is not later
than the last replayed time is stale. ``ClockGuard`` notes the replayed times and, at the
first live reading, raises ``StaleWorkflowClock`` when the time did not move on. That
fails the workflow task before anything is decided on the stale time: the server records
the failure and gives the task again, to a worker that evicted the cart and replays it
afresh. Replays never raise (they see only replayed times and skip failed tasks), so
histories replay as before. Queries and update validators (read-only) are not checked:
they decide nothing, and a raise there would refuse the update.
"""

from datetime import datetime


class StaleWorkflowClock(RuntimeError):
    """The live task runs on a replayed task's time (fails the workflow task, not the
    workflow: the server gives the task again)."""


class ClockGuard:
    """Watches ``workflow.now()`` across one cached instance's activations."""

    def __init__(self) -> None:
        #: the latest time a replayed activation ran on
        self.replayed_until: datetime | None = None
        #: a live activation has been checked (a cached instance stays live)
        self.live = False

    def note(self, now: datetime, replaying: bool, read_only: bool) -> None:
        """Every reading of the time: note a replayed one; check the first live one."""
        if read_only or self.live:
            return
        if replaying:
            if self.replayed_until is None or now > self.replayed_until:
                self.replayed_until = now
            return
        if self.replayed_until is not None and now <= self.replayed_until:
            raise StaleWorkflowClock(
                f"the live workflow task runs on {now.isoformat()}, not after the last"
                f" replayed task's {self.replayed_until.isoformat()}: failing the task so"
                " that it is given again"
            )
        self.live = True
