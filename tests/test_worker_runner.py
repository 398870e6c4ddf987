"""The worker's workflow runner: the sandbox, answering the SDK's per-payload context
questions itself only when the data converter does not use the answers."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.converter import (
    DataConverter,
    DefaultPayloadConverter,
    NexusSerializationContext,
    PayloadCodec,
    SerializationContext,
    StorageDriverStoreContext,
    WithSerializationContext,
)
from temporalio.worker import Replayer, WorkflowInstance
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from worker import (
    PROBE_CONTEXTS,
    WORKFLOW_RUNNER,
    ContextFreeInstance,
    ContextFreeSandbox,
    is_context_free,
    workflow_runner,
)
from workflows.cart_workflow import CartWorkflow
from workflows.contract import WORKFLOW_NAME
from workflows.converter import DATA_CONVERTER

HISTORIES = Path(__file__).parent / "histories"


class Passthrough(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


class ContextCodec(Passthrough, WithSerializationContext):
    """A codec that keys its encryption by workflow, say: it needs the context."""

    def with_context(self, context: SerializationContext) -> ContextCodec:
        return ContextCodec()


class ContextJson(DefaultPayloadConverter, WithSerializationContext):
    def with_context(self, context: SerializationContext) -> ContextJson:
        return ContextJson()


def test_the_product_converter_is_context_free_and_the_same_in_every_context() -> None:
    assert is_context_free(DATA_CONVERTER)
    assert is_context_free(DataConverter.default)
    # what makes answering ``None`` exact: the SDK's context-bound converter is this one
    for context in PROBE_CONTEXTS:
        assert DATA_CONVERTER.with_context(context) is DATA_CONVERTER
    assert DATA_CONVERTER._with_store_context(StorageDriverStoreContext(target=None)) is (
        DATA_CONVERTER
    )


class NexusOnly(DefaultPayloadConverter, WithSerializationContext):
    """Takes a context only for Nexus operations."""

    def with_context(self, context: SerializationContext) -> NexusOnly:
        if isinstance(context, NexusSerializationContext):
            return NexusOnly()
        return self


@pytest.mark.parametrize(
    "converter",
    [
        dataclasses.replace(DATA_CONVERTER, payload_codec=ContextCodec()),
        dataclasses.replace(DataConverter.default, payload_converter_class=ContextJson),
        dataclasses.replace(DataConverter.default, payload_converter_class=NexusOnly),
    ],
    ids=["context_codec", "context_payload_converter", "nexus_only"],
)
def test_a_converter_that_takes_a_context_gets_the_plain_sandbox(converter: DataConverter) -> None:
    assert not is_context_free(converter)
    runner = workflow_runner(converter)
    assert type(runner) is SandboxedWorkflowRunner
    assert "workflows" in runner.restrictions.passthrough_modules


def test_a_codec_that_ignores_contexts_keeps_the_shortcut() -> None:
    converter = dataclasses.replace(DATA_CONVERTER, payload_codec=Passthrough())
    assert is_context_free(converter)
    assert isinstance(workflow_runner(converter), ContextFreeSandbox)


def test_the_worker_and_the_replayers_use_the_shortcut_over_the_sandbox() -> None:
    assert isinstance(WORKFLOW_RUNNER, ContextFreeSandbox)
    assert "workflows" in WORKFLOW_RUNNER.restrictions.passthrough_modules
    runner = workflow_runner(DATA_CONVERTER, ("bench",))
    assert isinstance(runner, ContextFreeSandbox)
    assert {"workflows", "bench"} <= runner.restrictions.passthrough_modules
    # what the SDK does to a sandbox (debug mode's and plugins' passthrough modules)
    # keeps the shortcut: it replaces the restrictions of any SandboxedWorkflowRunner
    debugged = dataclasses.replace(
        runner, restrictions=runner.restrictions.with_passthrough_modules("debugpy")
    )
    assert isinstance(debugged, ContextFreeSandbox)


@dataclass(frozen=True)
class Recording(ContextFreeSandbox):
    """Counts the instances it makes and the context questions they answer."""

    instances: list[Counting] = field(default_factory=list)

    def create_instance(self, det: Any) -> WorkflowInstance:
        made = super().create_instance(det)
        assert isinstance(made, ContextFreeInstance)
        instance = Counting(made.inner)
        self.instances.append(instance)
        return instance


class Counting(ContextFreeInstance):
    def __init__(self, inner: WorkflowInstance) -> None:
        super().__init__(inner)
        self.asked = 0

    def get_serialization_context(self, command_info: Any) -> SerializationContext | None:
        self.asked += 1
        return super().get_serialization_context(command_info)


async def test_recorded_histories_replay_through_the_context_free_instances() -> None:
    """The recorded histories (every path, several runs) replay through the wrapped
    sandbox: the SDK asks it, not the sandbox, for every payload's context."""
    runner = Recording(restrictions=WORKFLOW_RUNNER.restrictions)
    replayer = Replayer(
        workflows=[CartWorkflow], workflow_runner=runner, data_converter=DATA_CONVERTER
    )
    paths = sorted(HISTORIES.glob("*.json"))
    assert paths
    for path in paths:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, (path.name, result.replay_failure)
    # one instance per history asked (the others are the sandbox's checks of the workflow
    # class, made by ``prepare_workflow`` and never activated)
    asked = [instance for instance in runner.instances if instance.asked]
    assert len(asked) == len(paths)
    assert {instance.get_info().workflow_type for instance in asked} == {WORKFLOW_NAME}
