"""Operating carts the way gateways and ops do, on the real dev server: raw JSON through
the Temporal CLI and a plain SDK client, admin actions as signals, and the Temporal UI's
buttons (Request Cancellation, Reset, Terminate).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.enums.v1 import EventType, ResetReapplyType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from starter.client import CartkeeperClient
from tests.conftest import new_id
from tests.test_workflow_dev import SHOP, TOTAL, eventually, succeed, to_payment
from workflows.contract import (
    PAYMENT_RESULT,
    AttentionKind,
    Cart,
    CartLine,
    CartPolicy,
    CartState,
    JournalKind,
    workflow_id,
)

TEMPORAL = str(Path(sys.executable).parent / "temporal")


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def temporal_cli(env: WorkflowEnvironment, *args: str) -> Ran:
    """The ``temporal`` CLI against the test's dev server (what ops type in a shell). Run
    without blocking the event loop: the test's worker runs on it."""
    address = env.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        TEMPORAL,
        *args,
        "--address",
        address,
        "--namespace",
        env.client.namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def cart_of(carts: CartkeeperClient, cart_id: str) -> Cart:
    return await carts.get_cart(SHOP, cart_id)


async def attention_raised(carts: CartkeeperClient, cart_id: str, count: int = 1) -> Cart:
    async def raised() -> Cart | None:
        cart = await cart_of(carts, cart_id)
        return cart if len(cart.attention) >= count else None

    result: Cart = await eventually(raised)
    return result


# --------------------------------------------------------------------------- raw JSON


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"attempt_id": "att-1", "status": "SUCCEEDED", "amount": TOTAL}, "SUCCEEDED"),
        ({"attempt_id": "att-1", "status": "succeeded", "amount": "2100"}, "amount"),
        ({"attempt_id": "att-1", "status": "partially_captured", "amount": 1}, "status"),
        ({"status": "succeeded", "amount": TOTAL}, "attempt_id is missing"),
    ],
)
async def test_a_gateway_payload_sent_with_the_temporal_cli_is_kept(
    dev_env: WorkflowEnvironment, carts: CartkeeperClient, payload: dict[str, Any], problem: str
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    payload = payload | {"card_number": "4242 4242 4242 4242"}
    run = await temporal_cli(
        dev_env,
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id(SHOP, cart_id),
        "--name",
        PAYMENT_RESULT,
        "--input",
        json.dumps(payload),
    )
    assert run.returncode == 0, run.stderr
    cart = await attention_raised(carts, cart_id)
    (item,) = cart.attention
    assert item.kind is AttentionKind.INVALID_PAYMENT_RESULT
    assert item.detail is not None and problem in item.detail
    assert "4242 4242 4242 4242" not in json.dumps(item.detail)
    assert "************4242" in item.detail
    assert cart.state is CartState.PAYMENT_PENDING, "nothing acted on, nothing lost"
    assert cart.journal[-2].kind is JournalKind.PAYMENT_RESULT_UNREADABLE
    assert cart.needs_admin


async def test_a_raw_update_with_a_fraction_is_refused_not_truncated(
    dev_env: WorkflowEnvironment, carts: CartkeeperClient
) -> None:
    cart_id = new_id()
    await carts.update_cart(SHOP, cart_id, [CartLine("tea", "Tea", 1, 450)], "EUR")
    handle = dev_env.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    raw = {"lines": [{"sku": "tea", "name": "Tea", "quantity": 2.7, "unit_price": 450}]}
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("update_cart", raw | {"currency": "EUR"})
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "invalid_quantity"
    # The same through the Temporal CLI.
    run = await temporal_cli(
        dev_env,
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        workflow_id(SHOP, cart_id),
        "--name",
        "update_cart",
        "--input",
        json.dumps(raw | {"currency": "EUR"}),
    )
    assert run.returncode != 0 and "invalid_quantity" in run.stderr + run.stdout
    cart = await cart_of(carts, cart_id)
    assert cart.lines[0].quantity == 1 and cart.version == 1


async def test_a_raw_update_through_the_cli_is_answered_with_the_compact_view(
    dev_env: WorkflowEnvironment, carts: CartkeeperClient
) -> None:
    cart_id = new_id()
    await carts.update_cart(SHOP, cart_id, [CartLine("tea", "Tea", 1, 450)], "EUR")
    raw = {"lines": [{"sku": "tea", "name": "Tea", "quantity": 3, "unit_price": 450}]}
    run = await temporal_cli(
        dev_env,
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        workflow_id(SHOP, cart_id),
        "--name",
        "update_cart",
        "--input",
        json.dumps(raw | {"currency": "EUR"}),
        "--output",
        "json",
    )
    assert run.returncode == 0, run.stderr
    assert '"total": 1350' in run.stdout.replace(":1350", ": 1350")


async def test_plain_sdk_payloads_that_are_not_json_objects_are_kept(
    dev_env: WorkflowEnvironment, carts: CartkeeperClient
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    handle = dev_env.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    await handle.signal(PAYMENT_RESULT, ["succeeded", TOTAL])
    await handle.signal(PAYMENT_RESULT, None)
    # ``Infinity`` is what Python's json accepts but no number: kept, never a crash.
    await handle.signal(
        PAYMENT_RESULT,
        RawValue(Payload(metadata={"encoding": b"json/plain"}, data=b'{"amount": Infinity}')),
    )
    await handle.signal(
        PAYMENT_RESULT,
        RawValue(Payload(metadata={"encoding": b"binary/plain"}, data=b"\x00\x01")),
    )
    cart = await attention_raised(carts, cart_id, count=4)
    problems = [item.detail or "" for item in cart.attention]
    assert "a list" in problems[0] and "null" in problems[1]
    assert "Infinity" in problems[2] and "binary/plain" in problems[3]
    # The cart still works: the real result arrives and makes the order.
    await succeed(carts, cart_id)
    view = await carts.await_order(SHOP, cart_id, timeout_seconds=10)
    assert view.order_paid and view.order_number is not None


# --------------------------------------------------------------------------- admin signals


async def locked_cart(carts: CartkeeperClient) -> str:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await carts.report_payment_result(
        SHOP, cart_id, attempt_id="att-1", status="pending", amount=TOTAL
    )
    return cart_id


async def test_confirm_as_a_signal_from_the_temporal_cli(
    dev_env: WorkflowEnvironment, carts: CartkeeperClient
) -> None:
    cart_id = await locked_cart(carts)
    run = await temporal_cli(
        dev_env,
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id(SHOP, cart_id),
        "--name",
        "confirm",
        "--input",
        json.dumps({"admin": "ops", "note": "seen in the gateway", "status": "P"}),
    )
    assert run.returncode == 0, run.stderr
    view = await carts.await_order(SHOP, cart_id, timeout_seconds=10)
    assert view.state is CartState.ORDERED and view.order_paid
    assert view.order_number is not None
    cart = await cart_of(carts, cart_id)
    confirmed = [e for e in cart.journal if e.kind is JournalKind.CART_CONFIRMED]
    assert confirmed[0].actor == "admin:ops" and confirmed[0].detail == "seen in the gateway"


async def test_a_refused_admin_signal_is_recorded_with_its_reason(
    dev_env: WorkflowEnvironment, carts: CartkeeperClient
) -> None:
    cart_id = new_id()
    await carts.update_cart(SHOP, cart_id, [CartLine("tea", "Tea", 1, 450)], "EUR")
    handle = dev_env.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    await handle.signal("confirm", {"admin": "ops"})
    await handle.signal("unlock", {"note": "who am I"})
    await handle.signal("delete", "please")

    async def recorded() -> Cart | None:
        cart = await cart_of(carts, cart_id)
        refused = [e for e in cart.journal if e.kind is JournalKind.ADMIN_ACTION_REFUSED]
        return cart if len(refused) == 3 else None

    cart = await eventually(recorded)
    details = [e.detail or "" for e in cart.journal if e.kind is JournalKind.ADMIN_ACTION_REFUSED]
    assert "confirm signal refused: not_locked" in details[0]
    assert "unlock signal refused: invalid_input" in details[1] and "admin" in details[1]
    assert "delete signal refused: invalid_input" in details[2]
    assert cart.state is CartState.ACTIVE


async def test_resolve_as_a_signal_and_through_the_client(
    dev_env: WorkflowEnvironment, carts: CartkeeperClient
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await succeed(carts, cart_id, attempt="att-1")
    await succeed(carts, cart_id, attempt="att-2")
    await succeed(carts, cart_id, attempt="att-3")
    cart = await attention_raised(carts, cart_id, count=2)
    first, second = (item.id for item in cart.attention)
    handle = dev_env.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    await handle.signal("resolve", {"admin": "ops", "note": "refunded", "items": [first]})
    view = await carts.resolve(SHOP, cart_id, admin="ann", note="refunded too", items=[second])
    assert view.attention == [] and not view.needs_admin
    cart = await cart_of(carts, cart_id)
    assert [(i.resolved_by, i.resolution) for i in cart.attention] == [
        ("ops", "refunded"),
        ("ann", "refunded too"),
    ]


async def test_handlers_carry_descriptions_for_the_ui(
    dev_env: WorkflowEnvironment, carts: CartkeeperClient
) -> None:
    from temporalio.api.sdk.v1 import WorkflowMetadata

    cart_id = new_id()
    await carts.update_cart(SHOP, cart_id, [CartLine("tea", "Tea", 1, 450)], "EUR")
    metadata = await dev_env.client.get_workflow_handle(workflow_id(SHOP, cart_id)).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    definition = metadata.definition
    signals = {s.name: s.description for s in definition.signal_definitions}
    updates = {u.name: u.description for u in definition.update_definitions}
    assert set(signals) == {
        "payment_result",
        "confirm",
        "unlock",
        "delete",
        "resolve",
        "send_reminder",
        "recovery_link_clicked",
        "set_order_status",
        "edit_delivery",
        "edit_order_lines",
        "record_payment",
        "add_order_note",
    }
    assert {"update_cart", "start_payment", "confirm", "await_order", "send_reminder"} <= set(
        updates
    )
    assert {"set_order_status", "edit_delivery", "record_payment"} <= set(updates)
    for name, description in {**signals, **updates}.items():
        assert len(description) > 20, name
    assert '"admin"' in signals["confirm"] and '"status"' in signals["payment_result"]


# --------------------------------------------------------------------------- UI buttons


async def test_request_cancellation_deletes_a_cart_and_keeps_running(
    carts: CartkeeperClient,
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await carts.handle(SHOP, cart_id).cancel()

    async def deleted() -> Cart | None:
        cart = await cart_of(carts, cart_id)
        return cart if cart.state is CartState.DELETED else None

    cart = await eventually(deleted)
    assert cart.journal[-2].kind is JournalKind.CANCELLATION_REQUESTED
    assert cart.journal[-1].actor == "temporal:cancel-request"
    # Still running: a late payment is recorded for an admin.
    await succeed(carts, cart_id)
    cart = await attention_raised(carts, cart_id)
    assert [a.kind for a in cart.attention] == [AttentionKind.PAID_AFTER_CLOSE]


async def test_request_cancellation_of_an_order_is_refused_and_recorded(
    carts: CartkeeperClient,
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await succeed(carts, cart_id)
    number = (await carts.await_order(SHOP, cart_id, 10)).order_number
    await carts.handle(SHOP, cart_id).cancel()

    async def recorded() -> Cart | None:
        cart = await cart_of(carts, cart_id)
        kinds = [e.kind for e in cart.journal]
        return cart if JournalKind.CANCELLATION_REQUESTED in kinds else None

    cart = await eventually(recorded)
    assert cart.state is CartState.ORDERED and cart.order is not None
    assert cart.order.number == number and cart.order.paid
    # (the order phase's own entries, e.g. a status e-mail skipped, may come after it)
    [request] = [e for e in cart.journal if e.kind is JournalKind.CANCELLATION_REQUESTED]
    assert "refused: already_ordered" in (request.detail or "")
    description = await carts.handle(SHOP, cart_id).describe()
    assert description.status is not None and description.status.name == "RUNNING"


async def test_reset_to_an_earlier_event_keeps_the_payment(
    dev_env: WorkflowEnvironment, carts: CartkeeperClient
) -> None:
    """Ops reset a cart to before its payment result: Temporal re-applies the signals
    that came after the reset point, so the success is applied again, not lost."""
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await succeed(carts, cart_id, card_last4="4242")
    view = await carts.await_order(SHOP, cart_id, timeout_seconds=10)
    handle = dev_env.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    events = [event async for event in handle.fetch_history_events()]
    signalled = next(
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )
    reset_point = max(
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and e.event_id < signalled
    )
    description = await handle.describe()
    await dev_env.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=dev_env.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id, run_id=description.run_id),
            reason="test: reset before the payment",
            workflow_task_finish_event_id=reset_point,
            request_id=new_id("reset"),
            reset_reapply_type=ResetReapplyType.RESET_REAPPLY_TYPE_SIGNAL,
        )
    )

    async def reordered() -> Cart | None:
        cart = await carts.get_cart(SHOP, cart_id)
        ok = cart.order is not None and cart.order.number is not None
        return cart if ok and (await handle.describe()).run_id != description.run_id else None

    cart = await eventually(reordered, within=20)
    assert cart.order is not None and cart.order.paid
    assert cart.payments[0].card_last4 == "4242"
    # The reset run allocated the number again: the database gives the same one.
    assert cart.order.number == view.order_number


async def test_terminate_then_a_late_payment_restores_the_cart(
    carts: CartkeeperClient,
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    before = await carts.get_cart(SHOP, cart_id)
    await carts.handle(SHOP, cart_id).terminate("ops: stuck?")
    # The gateway's late success: a new run continues from the terminated run's state
    # (replayed through the get_cart query) and creates the order.
    await succeed(carts, cart_id)
    view = await carts.await_order(SHOP, cart_id, timeout_seconds=15)
    assert view.state is CartState.ORDERED and view.order_paid
    cart = await carts.get_cart(SHOP, cart_id)
    assert cart.lineage == before.lineage and cart.lines == before.lines
    restored = [e for e in cart.journal if e.kind is JournalKind.CART_RESTORED]
    assert restored and "query" in (restored[0].detail or "")


async def test_a_restore_that_finds_nothing_is_flagged(
    dev_env: WorkflowEnvironment, carts: CartkeeperClient
) -> None:
    from workflows.contract import WORKFLOW_NAME, CartInput

    cart_id = new_id()
    handle = await dev_env.client.start_workflow(
        WORKFLOW_NAME,
        CartInput(shop_id=SHOP, cart_id=cart_id, restore_run_id="no-such-run"),
        id=workflow_id(SHOP, cart_id),
        task_queue=carts.task_queue,
        start_signal=PAYMENT_RESULT,
        start_signal_args=[{"attempt_id": "a1", "status": "succeeded", "amount": 500}],
    )
    cart = await attention_raised(carts, cart_id, count=2)
    kinds = [a.kind for a in cart.attention]
    assert kinds == [AttentionKind.CART_NOT_RESTORED, AttentionKind.PAYMENT_WITHOUT_CART]
    assert cart.lines == [] and cart.order is None
    assert handle.id == workflow_id(SHOP, cart_id)


async def test_a_restored_cart_keeps_the_policy_it_was_created_with(
    carts_with: Any,
) -> None:
    first: CartkeeperClient = carts_with(
        CartPolicy(retire_after_seconds=1, projection_interval_seconds=0, journal_limit=50)
    )
    cart_id = new_id()
    await first.update_cart(SHOP, cart_id, [CartLine("tea", "Tea", 1, 450)], "EUR")
    await first.delete(SHOP, cart_id, admin="ann")
    await first.handle(SHOP, cart_id).result()
    later: CartkeeperClient = carts_with(CartPolicy(journal_limit=7))
    await later.report_payment_result(
        SHOP, cart_id, attempt_id="late", status="succeeded", amount=450
    )
    cart = await attention_raised(later, cart_id)
    assert cart.policy.journal_limit == 50 and cart.policy.retire_after_seconds == 1
    assert [a.kind for a in cart.attention] == [AttentionKind.PAID_AFTER_CLOSE]


async def test_an_update_that_arrives_while_a_cart_is_restored_is_checked_after(
    carts_with: Any, dev_env: WorkflowEnvironment
) -> None:
    """No validator checks a cart that is not loaded: the update waits for the restore,
    then the restored state refuses it."""
    carts: CartkeeperClient = carts_with(
        CartPolicy(retire_after_seconds=1, projection_interval_seconds=0)
    )
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await succeed(carts, cart_id)
    await carts.await_order(SHOP, cart_id, 10)
    await carts.set_order_status(SHOP, cart_id, "C", admin="ann")  # final: it retires
    await carts.handle(SHOP, cart_id).result()
    client: Client = dev_env.client
    assert client is carts.client
    results = await asyncio.gather(
        carts.update_cart(SHOP, cart_id, [CartLine("tea", "Tea", 5, 450)], "EUR"),
        carts.record_visit(SHOP, cart_id, "/"),
        return_exceptions=True,
    )
    refused, visited = results
    assert getattr(refused, "code", None) == "already_ordered", refused
    assert not isinstance(visited, BaseException) and visited.state is CartState.ORDERED


def readme_queries() -> list[str]:
    """The queries of the README's "Queries to paste" table."""
    import re

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text.split("**Queries to paste**", 1)[1].split("\n\n", 2)[1]
    return re.findall(r"^\| [^|]+ \| `([^`]+)` \|$", section, flags=re.MULTILINE)


async def test_the_readme_queries_work(
    dev_env: WorkflowEnvironment, carts: CartkeeperClient
) -> None:
    queries = readme_queries()
    assert len(queries) >= 5
    cart_id = await locked_cart(carts)
    for query in queries:
        await dev_env.client.count_workflows(query)  # refused if the server cannot parse it

    async def found() -> bool:
        listed = [
            wf
            async for wf in dev_env.client.list_workflows(
                f'{queries[0]} AND WorkflowId = "{workflow_id(SHOP, cart_id)}"'
            )
        ]
        return bool(listed)

    await eventually(found)


def test_the_sdk_still_flags_an_eviction() -> None:
    """``being_evicted`` reads the SDK instance's ``_deleting`` flag: an SDK upgrade that
    renames it must fail here, not silently turn evictions into cancellation requests."""
    import inspect

    from temporalio.worker import _workflow_instance

    source = inspect.getsource(_workflow_instance._WorkflowInstanceImpl)
    assert "self._deleting = True" in source
