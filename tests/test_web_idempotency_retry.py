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
- without ``idempotent_updates`` the client sends random update ids, as before."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from activities.db import SessionFactory
from starter.client import CartkeeperClient, idempotent_updates, update_id
from starter.client_errors import CartkeeperError
from starter.web import idempotency
from tests.conftest import new_id
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_web_admin_carts import locked_cart
from tests.test_web_storefront import BACKENDS, LINES, Api, api_on, auth, refused, view
from workflows.contract import AWAIT_ORDER, RECORD_VISIT, UNLOCK, CartState, ErrorCode


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
