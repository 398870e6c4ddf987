"""Replay saved cart histories against the current workflow code (the worker's sandbox):
``python -m bench.replay_history FILE.json ...``. The chaos run saves the history of every
workflow it could not read afterwards in ``bench/chaos.histories/``; a nondeterminism
error here reproduces what the worker hit. Exit 1 if a replay fails."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.converter import DATA_CONVERTER


async def replay(paths: list[Path]) -> int:
    from bench.processes import quiet_sdk_logs
    from worker import WORKFLOW_RUNNER
    from workflows.cart_workflow import CartWorkflow

    quiet_sdk_logs()

    replayer = Replayer(
        workflows=[CartWorkflow], workflow_runner=WORKFLOW_RUNNER, data_converter=DATA_CONVERTER
    )
    failed = 0
    for path in paths:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is None:
            print(f"{path}: replays")
        else:
            failed += 1
            print(f"{path}: FAILS: {str(result.replay_failure).splitlines()[0][:400]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(replay([Path(arg) for arg in sys.argv[1:]])))
