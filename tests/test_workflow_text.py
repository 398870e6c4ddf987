"""Text no database takes (a NUL, a lone surrogate) and other control characters, sent to
a real cart workflow (dev server) with its read model on SQLite and on PostgreSQL
(``TEST_DATABASE_URL``), and through the HTTP API.

Before the text rules, such text was accepted and kept: the projection still wrote it
(NUL dropped from the text columns, the snapshot in a JSON column), but on PostgreSQL the
cart's journal and its customer's journal could no longer be read (503
``database_unavailable`` for good: ``\\u0000`` and lone surrogates do not come back out
of JSON), a lone surrogate made the storefront's write a 500 (the idempotency digest)
and the admin API's cart a 500 (its JSON answer), and the order's status e-mail could not
be made. Now a storefront or admin text is refused with ``invalid_text`` (422), and a
gateway's result is recorded, escaped and flagged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import journal_query
from activities.cart_activities import CartActivities
from activities.db import SessionFactory
from activities.models import CartRecord
from activities.read_model import get_cart_record
from starter.client import CartkeeperClient
from starter.client_errors import CartkeeperError
from tests.conftest import new_id
from tests.conftest_db import scratch_database
from tests.outage import outage_database, worker_on
from tests.test_web_storefront import Api, api_on, auth, refused
from tests.test_workflow_dev import eventually
from workflows import machine
from workflows.codes import AttentionKind, CartState, ErrorCode, JournalKind
from workflows.contract import (
    Cart,
    CartLine,
    CartPolicy,
    CartUpdated,
    CustomerIdentified,
    CustomerInfo,
    PaymentResultReported,
    ProjectCartInput,
    workflow_id,
)
from workflows.validation import TEXT_PATCH, legacy_text

SHOP = "text-shop"
POLICY = CartPolicy(projection_interval_seconds=0, lock_after_seconds=3600)
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
TEA = [CartLine("tea", "Tea", 1, 2100)]


async def refused_with(call: Any) -> str:
    """The code of a refusal (the client's, or the workflow's validator's)."""
    try:
        await call
    except CartkeeperError as error:
        return str(error.code)
    except WorkflowUpdateFailedError as error:
        assert isinstance(error.cause, ApplicationError)
        return str(error.cause.type)
    raise AssertionError("not refused")


async def patch_markers(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The patches the cart's history has a marker of."""
    history = await handle.fetch_history()
    found = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            for payload in event.marker_recorded_event_attributes.details.values():
                for item in payload.payloads:
                    found.append(json.loads(item.data).get("id", ""))
    return found


@pytest.mark.parametrize("backend", BACKENDS)
async def test_bad_text_is_refused_or_kept_escaped_and_the_read_model_stays_readable(
    dev_env: WorkflowEnvironment, tmp_path: Path, backend: str
) -> None:
    async with (
        outage_database(backend, tmp_path) as database,
        worker_on(dev_env.client, database, POLICY) as carts,
    ):
        cart_id = new_id()
        handle = dev_env.client.get_workflow_handle(workflow_id(SHOP, cart_id))
        nul_line = [CartLine("tea", "Te\x00a", 1, 2100)]
        assert await refused_with(carts.update_cart(SHOP, cart_id, nul_line, "EUR")) == (
            "invalid_text"
        )
        await carts.update_cart(SHOP, cart_id, TEA, "EUR")
        # Past the client's checks (Temporal's UI or CLI): the workflow's validator refuses.
        line = {"sku": "tea", "name": "Te\ud800a", "quantity": 1, "unit_price": 2100}
        raw_update = handle.execute_update("update_cart", {"lines": [line], "currency": "EUR"})
        assert await refused_with(raw_update) == "invalid_text"
        ann = CustomerInfo(email="ann@example.com", name="Ann\x00")
        assert await refused_with(carts.identify_customer(SHOP, cart_id, ann)) == "invalid_text"
        raw_identify = handle.execute_update(
            "identify_customer", {"customer": {"email": "ann@example.com", "name": "Ann\x00"}}
        )
        assert await refused_with(raw_identify) == "invalid_text"
        await carts.identify_customer(SHOP, cart_id, CustomerInfo(email="ann@example.com"))

        await carts.start_payment(
            SHOP, cart_id, attempt_id="a1", method="online", gateway="stripe", amount=2100
        )
        await carts.report_payment_result(
            SHOP, cart_id, attempt_id="a1", status="pending", amount=2100
        )
        confirm = carts.confirm(SHOP, cart_id, admin="ops", note="paid\x00")
        assert await refused_with(confirm) == "invalid_text"
        assert await refused_with(carts.unlock(SHOP, cart_id, admin="o\x00ps")) == "invalid_text"
        assert TEXT_PATCH not in await patch_markers(handle), "refused updates leave no trace"
        # An admin signal (Temporal's UI) is refused and journaled, its sender escaped.
        await handle.signal("unlock", {"admin": "o\x00ps", "note": "called"})
        # A gateway's results are never refused: recorded, what cannot be kept escaped.
        garbled = {"attempt_id": "a1", "status": "succeeded", "amount": 2100, "gateway": "s\x00"}
        await carts.send_payment_result(SHOP, cart_id, garbled)
        await carts.send_payment_result(SHOP, cart_id, {"attempt_id": "a2", "status": "o\ud800k"})
        view = await carts.await_order(SHOP, cart_id, timeout_seconds=15)
        assert view.state is CartState.ORDERED and view.order_paid
        assert view.order_number is not None, "the number came through the database"

        async def flagged() -> Any:
            cart = await carts.get_cart(SHOP, cart_id)
            return cart if len(cart.open_attention) == 2 else None

        cart = await eventually(flagged)
        refusal = [e for e in cart.journal if e.kind is JournalKind.ADMIN_ACTION_REFUSED]
        assert refusal[-1].actor == "admin:o\\x00ps"
        assert "invalid_text" in (refusal[-1].detail or "")
        details = [item.detail or "" for item in cart.open_attention]
        assert {item.kind for item in cart.open_attention} == {AttentionKind.INVALID_PAYMENT_RESULT}
        assert any("'s\\x00'" in d and "applied without it" in d for d in details)
        assert any('"o\\ud800k"' in d for d in details)
        attempt = cart.attempt("a1")
        assert attempt is not None and attempt.gateway == "stripe"
        markers = await patch_markers(handle)
        assert markers.count(TEXT_PATCH) == 1, "asked for such a message, once"

        # The read model has the cart, and its journal reads back on both databases.
        async def projected() -> Any:
            record = await get_cart_record(database.session_factory, SHOP, cart_id)
            return record if record is not None and record.version >= cart.version else None

        await eventually(projected)
        await journal_readable(database.session_factory, cart_id)

        plain = new_id()
        await carts.update_cart(SHOP, plain, TEA, "EUR")
        plain_handle = dev_env.client.get_workflow_handle(workflow_id(SHOP, plain))
        await plain_handle.signal("unlock", {"admin": "ops", "note": "line 1"})
        await eventually(lambda: _journaled(carts, plain))
        assert TEXT_PATCH not in await patch_markers(plain_handle), "none for plain text"


async def _journaled(carts: CartkeeperClient, cart_id: str) -> bool:
    cart = await carts.get_cart(SHOP, cart_id)
    return any(e.kind is JournalKind.ADMIN_ACTION_REFUSED for e in cart.journal)


async def journal_readable(sessions: SessionFactory, cart_id: str) -> None:
    """The cart's journal and its customer's, as the admin API reads them (PostgreSQL
    once answered these with "unsupported Unicode escape sequence")."""
    journal = await journal_query.cart_journal(sessions, SHOP, cart_id)
    kinds = [item.kind for item in journal.items]
    assert "payment_result_unreadable" in kinds and "admin_action_refused" in kinds
    page = await journal_query.customer_journal(sessions, SHOP, "ann@example.com")
    assert {item.cart_id for item in page.items} == {cart_id}


# --------------------------------------------------------------------------- carts from before


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_cart_from_before_the_rules_is_still_projected(
    tmp_path: Path, backend: str
) -> None:
    """A cart that took such text before the rules (its history replays under
    ``legacy_text``) is written all the same: its e-mail with a lone surrogate once failed
    the projection on every try on both databases (and the order number written with it)."""
    cart = Cart(shop_id=SHOP, cart_id=new_id())
    now = datetime.now(UTC)
    with legacy_text():
        machine.apply(cart, CartUpdated([CartLine("tea", "Te\x00a\ud800", 1, 2100)], "EUR"), now)
        machine.apply(cart, CustomerIdentified(CustomerInfo(email="a\ud800@b.de")), now)
        machine.apply(cart, PaymentResultReported("a1", "succeeded", 2100), now)  # type: ignore[arg-type]
    async with scratch_database(backend, tmp_path) as database:
        activities = CartActivities(database.session_factory)
        request = ProjectCartInput(cart=cart, assign_number=True)
        result = await ActivityEnvironment().run(activities.project_cart, request)
        assert result.number is not None
        record = await get_cart_record(database.session_factory, SHOP, cart.cart_id)
        assert record is not None and record.order is not None
        assert record.order.number == result.number
        assert record.lines[0].name == "Te\x00a\ud800", "the snapshot keeps the exact text"
        async with database.session_factory() as session:
            row = await session.get(CartRecord, (SHOP, cart.cart_id))
        assert row is not None and row.customer_email == "a\\ud800@b.de", "escaped in its column"


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
async def api(
    dev_env: Any, dev_worker: Any, session_factory: SessionFactory, tmp_path: Path
) -> AsyncIterator[Api]:
    async with api_on(session_factory, dev_env, tmp_path) as made:
        yield made


async def test_the_storefront_answers_bad_text_with_422_invalid_text(api: Api) -> None:
    shop, cart = new_id("shop"), new_id()
    key = await api.key(shop)
    headers = auth(key, **{"content-type": "application/json", "Idempotency-Key": new_id("k")})
    base = f"/api/v1/carts/{cart}"
    for name in ("Te\\u0000a", "Te\\ud800a", "Te\\ta", "Te\\u001ba"):
        body = '{"lines": [{"sku": "tea", "name": "%s", "quantity": 1, "unit_price": 450}],'
        body = (body + ' "currency": "EUR"}') % name
        answer = await api.http.put(f"{base}/lines", content=body.encode(), headers=headers)
        error = refused(answer, 422, str(ErrorCode.INVALID_TEXT))
        assert "name of tea" in error["message"]
        headers["Idempotency-Key"] = new_id("k")
    good = {"lines": [{"sku": "tea", "name": "Tea", "quantity": 1, "unit_price": 450}]}
    answer = await api.http.put(f"{base}/lines", json={**good, "currency": "EUR"}, headers=headers)
    assert answer.status_code == 200, answer.text
    customer = b'{"customer": {"email": "ann@example.com", "name": "Ann\\udc80"}}'
    answer = await api.http.post(
        f"{base}/customer",
        content=customer,
        headers=auth(key, **{"content-type": "application/json"}),
    )
    refused(answer, 422, str(ErrorCode.INVALID_TEXT))
