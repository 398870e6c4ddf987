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

from worker import WORKFLOW_RUNNER
from workflows.cart_workflow import CartWorkflow
from workflows.converter import DATA_CONVERTER

COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_recorded() -> None:
    assert len(HISTORIES) >= 12, "tests/histories must hold the recorded cart histories"


async def _histories(replayed: list[str]) -> AsyncIterator[WorkflowHistory]:
    for path in HISTORIES:
        history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
        # A history without a completed workflow task would leave the Replayer waiting.
        assert any(e.event_type == COMPLETED for e in history.events), f"{path.name} is empty"
        replayed.append(path.stem)
        yield history


async def test_recorded_histories_replay() -> None:
    replayer = Replayer(
        workflows=[CartWorkflow], workflow_runner=WORKFLOW_RUNNER, data_converter=DATA_CONVERTER
    )
    replayed: list[str] = []
    results = await replayer.replay_workflows(_histories(replayed), raise_on_replay_failure=False)
    failures = {run_id: str(failure) for run_id, failure in results.replay_failures.items()}
    assert not failures, failures
    assert len(replayed) == len(HISTORIES)


# --------------------------------------------------------------------------- determinism

#: interpreters that differ in everything a careless workflow could depend on
PROCESSES = [
    {"PYTHONHASHSEED": "0", "TZ": "UTC", "LC_ALL": "C"},
    {"PYTHONHASHSEED": "1", "TZ": "Asia/Tokyo", "LC_ALL": "C.UTF-8"},
    {"PYTHONHASHSEED": "12345", "TZ": "America/Los_Angeles", "LC_ALL": "C"},
    {"PYTHONHASHSEED": "random", "TZ": "Pacific/Chatham", "LC_ALL": "C.UTF-8"},
]


def _replay_in_a_process(env: dict[str, str]) -> str:
    import os
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "tests.replay_carts"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_every_process_replays_the_same_carts() -> None:
    """The cart is a function of its history alone: no hash seed, time zone or locale
    shapes it (a ``set``'s order once did)."""
    outputs = [_replay_in_a_process(env) for env in PROCESSES]
    carts = json.loads(outputs[0])
    assert set(carts) == {path.stem for path in HISTORIES}
    for env, output in zip(PROCESSES[1:], outputs[1:], strict=True):
        assert output == outputs[0], f"another cart under {env}"
    removed = carts["lines_removed"]["journal"]
    skus = [e["detail"] for e in removed if e["kind"] == "item_removed"]
    kept = [0, 5, 10]
    order = [n for n in range(12) if n not in kept] + kept
    assert skus == [f"sku-{n}" for n in order], "in the cart's own order"


def _subset(expected: object, actual: object, path: str = "cart") -> list[str]:
    """Where ``actual`` differs from ``expected``; fields added since are allowed."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: {actual!r} is not an object"]
        return [
            problem
            for key, value in expected.items()
            for problem in (
                _subset(value, actual[key], f"{path}.{key}")
                if key in actual
                else [f"{path}.{key}: missing"]
            )
        ]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: {actual!r} != {expected!r}"]
        return [
            problem
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for problem in _subset(e, a, f"{path}[{i}]")
        ]
    return [] if expected == actual else [f"{path}: {actual!r} != {expected!r}"]


async def test_old_histories_replay_to_the_carts_they_made() -> None:
    """Replaying a recorded history today gives the cart it gave when it was recorded
    (new fields aside): a change of behaviour for running carts needs ``workflow.patched``,
    even one that issues the same commands (e.g. reading a new payment status)."""
    from tests.replay_carts import replayed_carts

    expected = json.loads((Path(__file__).parent / "replayed_carts.json").read_text())
    assert set(expected) == {path.stem for path in HISTORIES}
    carts = await replayed_carts()
    problems = {
        name: problems[:5]
        for name, cart in expected.items()
        if (problems := _subset(cart, carts[name], name))
    }
    assert not problems, problems
