"""The floor: the cheapest workflow that accepts the same client calls as a cart.

``BenchFloor`` does nothing but take updates: ``step`` appends its argument to a list and
returns at once; the step that says ``last`` lets the workflow finish. The benchmark drives
it exactly like a cart (update-with-start, then seven updates), so what a cart costs beyond
it is the cart's own work: the state machine, its history, timers, activities, payloads.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contract import FLOOR_WORKFLOW_NAME

STEP = "step"


@dataclass
class FloorStep:
    n: int
    last: bool = False


@workflow.defn(name=FLOOR_WORKFLOW_NAME)
class BenchFloor:
    def __init__(self) -> None:
        self._steps: list[int] = []
        self._done = False

    @workflow.run
    async def run(self, key: str) -> int:
        await workflow.wait_condition(lambda: self._done)
        # Let the last update's reply go out before the workflow completes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return len(self._steps)

    @workflow.update(name=STEP)
    def step(self, step: FloorStep) -> int:
        self._steps.append(step.n)
        if step.last:
            self._done = True
        return len(self._steps)
