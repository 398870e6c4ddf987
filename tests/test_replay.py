"""Recorded histories of the cart workflow replay against today's code.

A change to ``workflows/`` that would break carts already running (non-determinism) fails
here. Record new histories with ``python -m tests.record_histories``; never edit old ones.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from worker import SANDBOX
from workflows.cart_workflow import CartWorkflow

COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_recorded() -> None:
    assert len(HISTORIES) >= 7, "tests/histories must hold the recorded cart histories"


async def _histories(replayed: list[str]) -> AsyncIterator[WorkflowHistory]:
    for path in HISTORIES:
        history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
        # A history without a completed workflow task would leave the Replayer waiting.
        assert any(e.event_type == COMPLETED for e in history.events), f"{path.name} is empty"
        replayed.append(path.stem)
        yield history


async def test_recorded_histories_replay() -> None:
    replayer = Replayer(workflows=[CartWorkflow], workflow_runner=SANDBOX)
    replayed: list[str] = []
    results = await replayer.replay_workflows(_histories(replayed), raise_on_replay_failure=False)
    failures = {run_id: str(failure) for run_id, failure in results.replay_failures.items()}
    assert not failures, failures
    assert len(replayed) == len(HISTORIES)
