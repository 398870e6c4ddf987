"""Replay the recorded histories and print the cart each one ends with, as JSON.

    python -m tests.replay_carts            # {"<history>": <cart>, ...}

Used by ``tests/test_replay.py`` in subprocesses with different ``PYTHONHASHSEED``, time
zones and locales: the cart must be a function of its history alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from activities.read_model import encode_cart
from worker import WORKFLOW_RUNNER
from workflows.cart_workflow import CartWorkflow
from workflows.converter import DATA_CONVERTER

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))

#: the workflow object of each replayed run, by run id (read after the replay)
_INSTANCES: dict[str, Any] = {}


class _Keep(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        _INSTANCES[workflow.info().run_id] = workflow.instance()
        return await super().execute_workflow(input)


class _KeepInstances(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Keep


async def replayed_carts() -> dict[str, Any]:
    replayer = Replayer(
        workflows=[CartWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
        interceptors=[_KeepInstances()],
        data_converter=DATA_CONVERTER,
    )
    carts: dict[str, Any] = {}
    for path in HISTORIES:
        history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
        _INSTANCES.clear()
        await replayer.replay_workflow(history)
        (instance,) = _INSTANCES.values()
        carts[path.stem] = encode_cart(instance._cart)
    return carts


if __name__ == "__main__":
    sys.stdout.write(json.dumps(asyncio.run(replayed_carts()), sort_keys=True) + "\n")
    sys.stdout.flush()
    # the SDK's Rust threads can outlive the interpreter and abort its shutdown (SIGABRT,
    # "PyGILState_Release"): the result is written, so leave without finalizing
    os._exit(0)
