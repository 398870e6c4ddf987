"""A retry under one ``Idempotency-Key`` never applies a cart event twice
(``starter.web.idempotency``, ``starter.client.idempotent_updates``), on the real dev
server and worker:

- the answer failed to be kept (the database failed right after the event was applied):
  the client still gets the answer; a repeat is 409 ``idempotency_key_in_use``, then,
  past ``IN_FLIGHT_LIMIT``, 409 ``idempotency_outcome_unknown``, never run again;
- the event reached the cart but its answer was lost (a 5xx, released: the client
  retries): the retry sends the same Temporal update id and gets the first outcome, for
  a new cart (update-with-start) and a running one (a plain update), over HTTP and for
  an admin's update;
- without ``idempotent_updates`` the client sends random update ids, as before;
- in a later run of the cart (a continue-as-new, a closed cart brought back), where
  Temporal no longer knows the first update id, the cart answers a retry of a keyed update
  it applied with its current view instead of applying it again
  (``workflows.keyed_updates``, patch ``keyed-updates-remembered``);
- an attempt whose update failed for sure (``statuses_unavailable``: nothing applied)
  lets the retry send new update ids, so it succeeds once the statuses can be read; an
  attempt of unknown outcome (``update_pending``) makes the retry send the same ids."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from activities.cart_activities import CartActivities
from activities.db import SessionFactory
from activities.web_models import IdempotencyRecord
from starter.client import CartkeeperClient, KeyedUpdates, idempotent_updates, update_id
from starter.client_errors import CartkeeperError
from starter.web import idempotency
from tests.conftest import FAST, new_id
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_order_workflow import StandIns, paid_order, stand_in_worker
from tests.test_web_admin_carts import locked_cart
from tests.test_web_storefront import BACKENDS, LINES, Api, api_on, auth, refused, view
from tests.test_workflow_dev import SHOP, TOTAL, eventually
from tests.test_workflow_text import patch_markers
from workflows.contract import (
    AWAIT_ORDER,
    RECORD_VISIT,
    UNLOCK,
    CartLine,
    CartPolicy,
    CartState,
    ErrorCode,
    JournalKind,
    workflow_id,
)
from workflows.keyed_updates import KEYED_UPDATES_PATCH
from workflows.order_contract import SET_ORDER_STATUS


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


async def version_of(api: Api, key: str, cart: str) -> int:
    found: int = view(await api.http.get(f"/api/v1/carts/{cart}", headers=auth(key)))["version"]
    return found


async def test_an_answer_not_kept_is_never_run_again(
    db: ScratchDatabase,
    dev_env: Any,
    dev_worker: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [datetime.now(UTC)]
    failures = [1]
    keep = idempotency._complete

    async def failing_once(*args: Any) -> None:
        if failures[0]:
            failures[0] -= 1
            raise OperationalError("UPDATE idempotency_keys", None, OSError("connection lost"))
        await keep(*args)

    monkeypatch.setattr(idempotency, "_complete", failing_once)
    async with api_on(db.session_factory, dev_env, tmp_path, now=lambda: clock[0]) as api:
        shop, cart = new_id("shop"), new_id()
        key = await api.key(shop)
        base = f"/api/v1/carts/{cart}"
        created = view(
            await api.http.put(
                f"{base}/lines", json={"lines": LINES, "currency": "EUR"}, headers=auth(key)
            )
        )
        headers = auth(key, **{"Idempotency-Key": "visit-lost"})
        first = await api.http.post(f"{base}/visits", json={"page": "/"}, headers=headers)
        assert view(first)["version"] == created["version"] + 1, "answered all the same"
        assert failures == [0]

        again = await api.http.post(f"{base}/visits", json={"page": "/"}, headers=headers)
        refused(again, 409, "idempotency_key_in_use")
        for later in (timedelta(minutes=10, seconds=1), timedelta(hours=23)):
            clock[0] += later
            unknown = refused(
                await api.http.post(f"{base}/visits", json={"page": "/"}, headers=headers),
                409,
                "idempotency_outcome_unknown",
            )
            assert unknown["details"]["started_at"]
        assert await version_of(api, key, cart) == created["version"] + 1, "applied once"
        # another request under the key is still refused as such
        refused(
            await api.http.post(f"{base}/visits", json={"page": "/x"}, headers=headers),
            422,
            "idempotency_key_reused",
        )
        # once the record expired (24 h), the key is free again
        clock[0] += timedelta(hours=1)
        fresh = await api.http.post(f"{base}/visits", json={"page": "/"}, headers=headers)
        assert "Idempotent-Replayed" not in fresh.headers
        assert view(fresh)["version"] >= created["version"] + 1


def losing_the_first_answer(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The cart client's next answer of an update is lost after the update applied (as
    when the connection drops): 503 ``temporal_unavailable``. The list counts the
    answers still to lose."""
    lose = [1]
    keep = CartkeeperClient._view

    async def view_or_lose(awaitable: Awaitable[Any]) -> Any:
        answer = await keep(awaitable)
        if lose[0]:
            lose[0] -= 1
            raise CartkeeperError(ErrorCode.TEMPORAL_UNAVAILABLE, "the answer was lost")
        return answer

    monkeypatch.setattr(CartkeeperClient, "_view", staticmethod(view_or_lose))
    return lose


async def test_a_retry_after_a_lost_answer_gets_the_first_outcome(
    dev_env: Any,
    dev_worker: Any,
    session_factory: SessionFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with api_on(session_factory, dev_env, tmp_path) as api:
        shop, cart = new_id("shop"), new_id()
        key = await api.key(shop)
        base = f"/api/v1/carts/{cart}"
        http = api.http

        # a new cart: update-with-start
        lose = losing_the_first_answer(monkeypatch)
        headers = auth(key, **{"Idempotency-Key": "lines-1"})
        body = {"lines": LINES, "currency": "EUR"}
        refused(
            await http.put(f"{base}/lines", json=body, headers=headers), 503, "temporal_unavailable"
        )
        assert lose == [0]
        assert await version_of(api, key, cart) == 1, "the first attempt reached the cart"
        retried = await http.put(f"{base}/lines", json=body, headers=headers)
        assert view(retried)["version"] == 1 and "Idempotent-Replayed" not in retried.headers
        assert await version_of(api, key, cart) == 1, "not applied twice"

        # a running cart: a plain update
        lose[0] = 1
        headers = auth(key, **{"Idempotency-Key": "visit-1"})
        refused(
            await http.post(f"{base}/visits", json={"page": "/"}, headers=headers),
            503,
            "temporal_unavailable",
        )
        assert await version_of(api, key, cart) == 2
        assert (
            view(await http.post(f"{base}/visits", json={"page": "/"}, headers=headers))["version"]
            == 2
        )
        assert await version_of(api, key, cart) == 2, "not applied twice"

        # the same event under another key is another request: applied
        other = auth(key, **{"Idempotency-Key": "visit-2"})
        assert (
            view(await http.post(f"{base}/visits", json={"page": "/"}, headers=other))["version"]
            == 3
        )


async def test_update_ids_within_idempotent_updates(carts: CartkeeperClient) -> None:
    shop, cart = new_id("shop"), new_id()
    await carts.update_cart(shop, cart, [], "EUR")
    with idempotent_updates("request-1"):
        first = await carts.record_visit(shop, cart, "/a")
        again = await carts.record_visit(shop, cart, "/a")
        assert again.version == first.version, "the same update id: the first outcome"
        other = await carts.record_visit(shop, cart, "/b")
        assert other.version == first.version + 1, "another payload: another update"
        # a wait is sent with a random id: it waits again
        waited = await carts.await_order(shop, cart, timeout_seconds=0)
        assert waited.version == other.version
    with idempotent_updates("request-2"):
        assert (await carts.record_visit(shop, cart, "/a")).version == other.version + 1
    # outside: random ids, as before
    assert (await carts.record_visit(shop, cart, "/a")).version == other.version + 2
    assert (await carts.record_visit(shop, cart, "/a")).version == other.version + 3


async def test_an_admins_update_is_deduplicated_too(carts: CartkeeperClient) -> None:
    shop = new_id("shop")
    cart = await locked_cart(carts, shop)
    with idempotent_updates("admin:ann\nunlock-1"):
        unlocked = await carts.unlock(shop, cart, admin="ann")
        assert unlocked.state is CartState.ACTIVE
        # sent again (a retry of the same request): the first outcome, not `not_locked`
        assert await carts.unlock(shop, cart, admin="ann") == unlocked
    with pytest.raises(CartkeeperError) as refusal:
        await carts.unlock(shop, cart, admin="ann")
    assert refusal.value.code is ErrorCode.NOT_LOCKED


def test_update_id() -> None:
    assert update_id("w", RECORD_VISIT, {"page": "/"}) is None  # no base: random
    with idempotent_updates("base-1"):
        made = update_id("w", RECORD_VISIT, {"page": "/"})
        assert made is not None and made.startswith("idem-") and len(made) == 45
        assert made == update_id("w", RECORD_VISIT, {"page": "/"})
        for changed in (
            update_id("w2", RECORD_VISIT, {"page": "/"}),
            update_id("w", UNLOCK, {"page": "/"}),
            update_id("w", RECORD_VISIT, {"page": "/x"}),
        ):
            assert changed != made
        assert update_id("w", AWAIT_ORDER, {"timeout_seconds": 1}) is None
        with idempotent_updates("base-2"):
            assert update_id("w", RECORD_VISIT, {"page": "/"}) != made
        assert update_id("w", RECORD_VISIT, {"page": "/"}) == made
    assert update_id("w", RECORD_VISIT, {"page": "/"}) is None


def test_keyed_updates_note_what_became_of_each_update() -> None:
    updates = KeyedUpdates("base")
    assert not updates.all_failed, "nothing sent: nothing to tell"
    updates.outcomes["idem-a"] = False
    assert updates.all_failed
    updates.outcomes["idem-b"] = True  # applied, or it may have been
    assert not updates.all_failed
    updates.outcomes["idem-b"] = False  # the same id answered again: its last answer counts
    assert updates.all_failed
    # generation 0 is the base the ids always had; each later one another
    digest = "d" * 64
    bases = [idempotency.update_base("key:1", "k", digest, g) for g in range(3)]
    assert bases[0] == idempotency.update_base("key:1", "k", digest)
    assert len(set(bases)) == 3


# --------------------------------------------------------------------------- later runs


def visits_of(journal: list[Any], page: str) -> int:
    return sum(1 for e in journal if e.kind is JournalKind.CUSTOMER_VISITED and e.detail == page)


async def run_id_of(handle: WorkflowHandle[Any, Any]) -> str:
    return (await handle.describe()).run_id


async def markers_of_every_run(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The patch markers of the cart's runs, from the current one back to the first."""
    markers: list[str] = []
    run_id: str | None = await run_id_of(handle)
    while run_id:
        run = handle._client.get_workflow_handle(handle.id, run_id=run_id)
        markers += await patch_markers(run)
        started = await anext(aiter(run.fetch_history_events()))
        run_id = started.workflow_execution_started_event_attributes.continued_execution_run_id
    return markers


async def test_a_keyed_update_is_not_applied_again_after_a_continue_as_new(
    carts_with: Callable[[CartPolicy], CartkeeperClient],
) -> None:
    """The request's first attempt reached the cart (its answer was lost, or it was
    ``update_pending``), the cart continued as new, and the retry sends the same update
    ids to the new run: answered with the cart as it is, nothing applied twice."""
    carts = carts_with(CartPolicy(continue_as_new_after_events=40, projection_interval_seconds=0))
    cart_id = new_id()
    handle = carts.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    await carts.update_cart(SHOP, cart_id, [CartLine("tea", "Tea", 1, TOTAL)], "EUR")
    await carts.start_checkout(SHOP, cart_id)

    async def visit() -> Any:
        with idempotent_updates("visit-request"):
            return await carts.record_visit(SHOP, cart_id, "/keyed")

    async def pay() -> Any:
        with idempotent_updates("payment-request"):
            return await carts.start_payment(
                SHOP, cart_id, attempt_id="att-1", method="online", gateway="s", amount=TOTAL
            )

    await visit()
    paying = await pay()
    assert paying.state is CartState.PAYMENT_PENDING
    # a keyed update refused is not remembered (its retry is checked again)
    with idempotent_updates("refused-request"), pytest.raises(CartkeeperError) as refusal:
        await carts.start_payment(
            SHOP, cart_id, attempt_id="att-1", method="online", gateway="s", amount=TOTAL + 1
        )
    assert refusal.value.code is ErrorCode.DUPLICATE_ATTEMPT
    first_run = await run_id_of(handle)
    before = await carts.get_cart(SHOP, cart_id)
    assert len(before.keyed_updates) == 2
    assert KEYED_UPDATES_PATCH in await markers_of_every_run(handle)

    for n in range(60):  # other events, until the cart continues as new
        await carts.record_visit(SHOP, cart_id, f"/p{n}")
        if await run_id_of(handle) != first_run:
            break
    assert await run_id_of(handle) != first_run, "the cart should have continued as new"
    current = await carts.get_cart(SHOP, cart_id)
    assert current.keyed_updates == before.keyed_updates, "carried to the new run"

    # the retries: the same update ids, to a run that never saw them
    again = await visit()
    assert again.version == current.version, "not applied again"
    paid_again = await pay()
    assert paid_again.state is CartState.PAYMENT_PENDING, "answered, not refused"
    assert paid_again.version == current.version
    after = await carts.get_cart(SHOP, cart_id)
    assert after.version == current.version
    assert visits_of(after.journal, "/keyed") == 1
    assert [p.attempt_id for p in after.payments] == ["att-1"]
    assert after.keyed_updates == before.keyed_updates, "an answered retry changes nothing"
    assert KEYED_UPDATES_PATCH in await patch_markers(handle)
    # another request is applied as ever
    with idempotent_updates("another-request"):
        assert (await carts.record_visit(SHOP, cart_id, "/keyed")).version == after.version + 1


async def test_a_keyed_update_is_not_applied_again_in_a_cart_brought_back(
    carts_with: Callable[[CartPolicy], CartkeeperClient],
) -> None:
    """The cart closed (deleted, retired) and a late event brought it back before the
    retry: the new run restored the closed run's state, the keys it applied included, and
    answers the retry with the cart as it is (deleted), not with a refusal nor a second
    event. (Sent to the closed run itself, Temporal answers the first outcome.)"""
    carts = carts_with(CartPolicy(retire_after_seconds=1, projection_interval_seconds=0))
    cart_id = new_id()
    handle = carts.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    await carts.update_cart(SHOP, cart_id, [CartLine("tea", "Tea", 1, TOTAL)], "EUR")
    with idempotent_updates("visit-request"):
        visited = await carts.record_visit(SHOP, cart_id, "/keyed")
    await carts.delete(SHOP, cart_id, admin="ann")
    await carts.handle(SHOP, cart_id).result()  # retired: the run closed
    closed_run = await run_id_of(handle)
    await carts.report_payment_result(
        SHOP, cart_id, attempt_id="late", status="failed", amount=TOTAL
    )

    async def restored() -> bool:
        cart = await carts.get_cart(SHOP, cart_id)
        return any(e.kind is JournalKind.CART_RESTORED for e in cart.journal)

    await eventually(restored)
    assert await run_id_of(handle) != closed_run
    before = await carts.get_cart(SHOP, cart_id)
    assert before.keyed_updates, "restored with the closed run's state"

    with idempotent_updates("visit-request"):
        again = await carts.record_visit(SHOP, cart_id, "/keyed")
    assert again.state is CartState.DELETED and again.version > visited.version
    cart = await carts.get_cart(SHOP, cart_id)
    assert cart.version == before.version == again.version
    assert visits_of(cart.journal, "/keyed") == 1
    # without the key, the same event is refused (the cart is deleted)
    with pytest.raises(CartkeeperError) as refusal:
        await carts.record_visit(SHOP, cart_id, "/keyed")
    assert refusal.value.code is ErrorCode.CART_DELETED


# --------------------------------------------------------------------------- new ids


async def accepted_update_ids(handle: WorkflowHandle[Any, Any], name: str) -> list[str]:
    """The ids of the updates ``name`` the run accepted, in order."""
    ids = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if request.input.name == name:
                ids.append(request.meta.update_id)
    return ids


async def idempotency_record(db: ScratchDatabase, scope: str, key: str) -> Any:
    async with db.session_factory() as session:
        return (
            await session.execute(
                select(
                    IdempotencyRecord.status_code,
                    IdempotencyRecord.released_at,
                    IdempotencyRecord.update_generation,
                ).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            )
        ).one_or_none()


def answered(view: Any) -> JSONResponse:
    return JSONResponse(asdict(view))


async def test_a_retry_after_an_update_that_failed_sends_new_update_ids(
    db: ScratchDatabase, dev_env: Any, session_factory: SessionFactory
) -> None:
    """``set_order_status`` answered 503 ``statuses_unavailable``: the update completed
    with that failure, nothing applied. Its retry under the same key sends new update ids
    (Temporal would answer the old ones with the stored failure for the rest of the run),
    so it succeeds once the statuses can be read."""
    stand_ins = StandIns()
    queue = f"keys-{uuid.uuid4().hex[:8]}"
    activities = CartActivities(session_factory, dev_env.client).all()
    policy = CartPolicy(projection_interval_seconds=0)
    async with stand_in_worker(dev_env, queue, stand_ins, activities):
        carts = CartkeeperClient(dev_env.client, task_queue=queue, policy_for=lambda _s: policy)
        cart_id = new_id()
        await paid_order(carts, cart_id)
        handle = carts.client.get_workflow_handle(workflow_id(SHOP, cart_id))
        scope, key, clock = "admin:ann", "status-1", [datetime.now(UTC)]
        digest = idempotency.request_digest("POST", f"/orders/{cart_id}/status", {"status": "A"})

        async def attempt() -> Response:
            async def set_status() -> JSONResponse:
                return answered(await carts.set_order_status(SHOP, cart_id, "A", admin="ann"))

            return await idempotency.idempotent(
                db.session_factory, scope, key, digest, lambda: clock[0], set_status
            )

        stand_ins.registry_down = True
        for generation in (1, 2):
            with pytest.raises(CartkeeperError) as failed:
                await attempt()
            assert failed.value.code is ErrorCode.STATUSES_UNAVAILABLE
            assert failed.value.update_failed
            status, released_at, kept = await idempotency_record(db, scope, key)
            assert status is None and released_at is not None, "released: the key is free"
            assert kept == generation
            clock[0] += timedelta(seconds=5)

        stand_ins.registry_down = False
        done = await attempt()
        assert done.status_code == 200 and "Idempotent-Replayed" not in done.headers
        assert json.loads(bytes(done.body))["order_status"] == "A"
        again = await attempt()
        assert again.headers["Idempotent-Replayed"] == "true" and again.body == done.body
        ids = await accepted_update_ids(handle, SET_ORDER_STATUS)
        assert len(ids) == len(set(ids)) == 3, ids
        assert all(uid.startswith("idem-") for uid in ids)
        status, released_at, _ = await idempotency_record(db, scope, key)
        assert status == 200 and released_at is None

        # the same request under another key, or a new request: the generations are its own
        other = idempotency.request_digest("POST", f"/orders/{cart_id}/status", {"status": "R"})
        assert idempotency.update_base(scope, key, other) != idempotency.update_base(
            scope, key, digest
        )


async def test_a_retry_after_update_pending_sends_the_same_update_ids(
    db: ScratchDatabase, dev_env: Any, session_factory: SessionFactory
) -> None:
    """No worker applied the first attempt in time (504 ``update_pending``: it is queued
    and may still apply). Its retry sends the same update id: a worker applied the first
    meanwhile, and the retry gets its outcome, the event applied once."""
    queue = f"pending-{uuid.uuid4().hex[:8]}"
    carts = CartkeeperClient(
        dev_env.client, task_queue=queue, policy_for=lambda _s: FAST, update_timeout=1
    )
    cart_id = new_id()
    scope, key = "key:1", "visit-1"
    digest = idempotency.request_digest("POST", f"/api/v1/carts/{cart_id}/visits", {"page": "/"})

    async def attempt() -> Response:
        async def visit() -> JSONResponse:
            return answered(await carts.record_visit(SHOP, cart_id, "/"))

        return await idempotency.idempotent(
            db.session_factory, scope, key, digest, lambda: datetime.now(UTC), visit
        )

    with pytest.raises(CartkeeperError) as pending:
        await attempt()  # no worker on the queue yet
    assert pending.value.code in (ErrorCode.UPDATE_PENDING, ErrorCode.TEMPORAL_UNAVAILABLE)
    assert not pending.value.update_failed
    assert await idempotency_record(db, scope, key) is None, "released, the same ids next"

    activities = CartActivities(session_factory, dev_env.client).all()
    async with stand_in_worker(dev_env, queue, StandIns(), activities):

        async def applied() -> bool:
            return (await carts.get_cart(SHOP, cart_id)).version == 1

        await eventually(applied)
        retried = await attempt()
        assert retried.status_code == 200, bytes(retried.body)
        assert json.loads(bytes(retried.body))["version"] == 1, "the first outcome"
        cart = await carts.get_cart(SHOP, cart_id)
        assert cart.version == 1 and visits_of(cart.journal, "/") == 1
        handle = carts.client.get_workflow_handle(workflow_id(SHOP, cart_id))
        assert len(await accepted_update_ids(handle, RECORD_VISIT)) == 1
