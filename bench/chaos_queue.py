"""The chaos run's view of the task queue (``bench.chaos``): every second, what the server
says of the carts' workflow task queue (``DescribeTaskQueue`` with its stats): the backlog
(tasks no poll took at once, and the age of the oldest), the rates tasks are added and
handed out, and the pollers it saw lately.

It tells apart the two readings of a timer's wait on the task queue after a kill: a
backlog that the workers drain at their pace (the count and age grow after a kill, and
the dispatch rate is the workers' throughput), or a task the server holds back while
polls wait (a backlog with an idle dispatch rate while a worker runs). ``pollers`` counts
the poller identities the server saw lately, killed workers' included: not live polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.measure import percentile

EVERY_S = 1.0


@dataclass
class QueueWatch:
    """Samples the workflow task queue ``task_queue`` every ``EVERY_S`` until stopped."""

    client: Client
    task_queue: str
    started: float
    samples: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        request = DescribeTaskQueueRequest(
            namespace=self.client.namespace,
            task_queue=TaskQueue(name=self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            report_stats=True,
        )
        while not stop.is_set():
            try:
                response = await self.client.workflow_service.describe_task_queue(
                    request, timeout=timedelta(seconds=2)
                )
            except Exception:  # the server restarts once: a gap in the samples
                self.errors += 1
            else:
                stats = response.stats
                age = stats.approximate_backlog_age.ToTimedelta().total_seconds()
                self.samples.append(
                    {
                        "t_s": round(time.monotonic() - self.started, 2),
                        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                        "backlog": stats.approximate_backlog_count,
                        "oldest_s": round(age, 2),
                        "added_per_s": round(stats.tasks_add_rate, 2),
                        "dispatched_per_s": round(stats.tasks_dispatch_rate, 2),
                        "pollers": len(response.pollers),
                    }
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), EVERY_S)

    def summary(self) -> dict[str, Any]:
        """The spread of the backlog, its age and the dispatch rate, the samples with the
        oldest backlog, and every sample (``t_s`` as the timeline's, ``at`` wall clock)."""
        oldest = sorted(self.samples, key=lambda sample: -sample["oldest_s"])[:10]
        return {
            "every_s": EVERY_S,
            "n": len(self.samples),
            "errors": self.errors,
            "backlog": _spread([float(s["backlog"]) for s in self.samples]),
            "oldest_s": _spread([s["oldest_s"] for s in self.samples]),
            "dispatched_per_s": _spread([s["dispatched_per_s"] for s in self.samples]),
            "worst": oldest,
            "samples": self.samples,
        }


def _spread(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "max": max(values) if values else None,
    }
