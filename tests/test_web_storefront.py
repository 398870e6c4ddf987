"""The storefront HTTP API (``/api/v1``, ``starter.web.storefront``) through FastAPI on
the real Temporal dev server and worker: every cart event up to a numbered order,
authentication by API key, the coded refusals (401/404/409/410/422), one shop's key
never reaching another shop's carts, ``Idempotency-Key`` (replay, reuse, in use,
expiry, 5xx not kept; SQLite and PostgreSQL) and coupon validation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from activities.coupons import CouponTerms, issue
from activities.db import SessionFactory, write_session
from activities.read_model import get_cart_record
from activities.settings import Settings
from activities.web_models import IdempotencyRecord
from starter.client import CartkeeperClient
from starter.web.api_keys import create_key, revoke_key
from starter.web.app import create_app
from starter.web.deps import utc_now
from starter.web.idempotency import request_digest
from tests.conftest import TASK_QUEUE, new_id
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_web_links import client_of
from tests.test_workflow_dev import eventually
from workflows.contract import CartState

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
LINES = [
    {"sku": "tea", "name": "Green tea", "quantity": 2, "unit_price": 450},
    {"sku": "cup", "name": "Cup", "quantity": 1, "unit_price": 1200},
]
TOTAL = 2100
ANN = {"email": "Ann@Example.com", "name": "Ann", "locale": "en", "time_zone": "Europe/Paris"}
PAYMENT = {"attempt_id": "pi_1", "method": "online", "gateway": "stripe", "amount": TOTAL}


@dataclass
class Api:
    """An app on the dev server whose database is ``sessions``; ``key(shop)`` makes a key."""

    http: httpx.AsyncClient
    sessions: SessionFactory

    async def key(self, shop: str) -> str:
        _key, plain = await create_key(self.sessions, shop, "storefront", now=utc_now())
        return plain


def auth(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def web_settings(tmp_path: Path) -> Settings:
    """The test worker's task queue (the app's carts are started there), the read model
    written at once."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        task_queue=TASK_QUEUE,
        policy={"projection_interval_seconds": 0},
    )


@asynccontextmanager
async def api_on(
    sessions: SessionFactory,
    dev_env: Any,
    tmp_path: Path,
    *,
    now: Callable[[], datetime] = utc_now,
    temporal: Any = None,
) -> AsyncIterator[Api]:
    async def dev_client() -> Any:
        return dev_env.client

    app = create_app(
        web_settings(tmp_path),
        temporal_client_factory=temporal or dev_client,
        session_factory=sessions,
        now=now,
    )
    async with client_of(app) as http:
        yield Api(http, sessions)


@pytest.fixture
async def api(
    dev_env: Any, dev_worker: Any, session_factory: SessionFactory, tmp_path: Path
) -> AsyncIterator[Api]:
    """The app on the worker's own read model (coupons read its carts)."""
    async with api_on(session_factory, dev_env, tmp_path) as made:
        yield made


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


def view(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


# --------------------------------------------------------------------------- the cart's way


async def test_every_cart_event_up_to_a_numbered_order(api: Api, carts: CartkeeperClient) -> None:
    shop, cart = new_id("shop"), new_id()
    key = await api.key(shop)
    base = f"/api/v1/carts/{cart}"
    http = api.http

    lines = view(
        await http.put(f"{base}/lines", json={"lines": LINES, "currency": "EUR"}, headers=auth(key))
    )
    assert (lines["shop_id"], lines["cart_id"], lines["state"]) == (shop, cart, "active")
    assert (lines["total"], lines["currency"], lines["item_count"], lines["version"]) == (
        TOTAL,
        "EUR",
        3,
        1,
    )
    customer = view(await http.post(f"{base}/customer", json={"customer": ANN}, headers=auth(key)))
    assert customer["version"] == 2
    # X-Api-Key works as well as the bearer token
    visit = view(
        await http.post(f"{base}/visits", json={"page": "/cart"}, headers={"X-Api-Key": key})
    )
    assert visit["version"] == 3
    checkout = view(await http.post(f"{base}/checkout", headers=auth(key)))  # no body at all
    assert checkout["state"] == "checkout"
    payment = view(await http.post(f"{base}/payments", json=PAYMENT, headers=auth(key)))
    assert payment["state"] == "payment_pending"

    whole = await carts.get_cart(shop, cart)
    assert whole.customer is not None and whole.customer.email == "Ann@example.com"
    assert [(line.sku, line.quantity) for line in whole.lines] == [("tea", 2), ("cup", 1)]

    waiting = asyncio.create_task(
        http.post(f"{base}/order", json={"timeout_seconds": 30}, headers=auth(key))
    )
    await asyncio.sleep(0.3)
    assert not waiting.done(), "it waits for the gateway's result"
    await carts.report_payment_result(
        shop, cart, attempt_id="pi_1", status="succeeded", amount=TOTAL
    )
    ordered = view(await waiting)
    assert ordered["state"] == "ordered" and ordered["order_number"] is not None
    assert ordered["order_paid"] is True

    got = view(await http.get(base, headers=auth(key)))
    assert got["order_number"] == ordered["order_number"] and got["state"] == "ordered"
    assert got["version"] >= ordered["version"]
    # an ordered cart refuses storefront changes
    refused(
        await http.put(
            f"{base}/lines", json={"lines": LINES, "currency": "EUR"}, headers=auth(key)
        ),
        409,
        "already_ordered",
    )


async def test_await_order_answers_at_its_timeout_and_for_a_failed_payment(
    api: Api, carts: CartkeeperClient
) -> None:
    shop, cart = new_id("shop"), new_id()
    key = await api.key(shop)
    base = f"/api/v1/carts/{cart}"
    await api.http.put(f"{base}/lines", json={"lines": LINES, "currency": "EUR"}, headers=auth(key))
    await api.http.post(f"{base}/checkout", json={}, headers=auth(key))
    view(await api.http.post(f"{base}/payments", json=PAYMENT, headers=auth(key)))
    started = asyncio.get_running_loop().time()
    still = view(
        await api.http.post(f"{base}/order", json={"timeout_seconds": 0.5}, headers=auth(key))
    )
    assert still["state"] == "payment_pending" and still["order_number"] is None
    assert asyncio.get_running_loop().time() - started < 10
    await carts.report_payment_result(shop, cart, attempt_id="pi_1", status="failed", amount=TOTAL)
    failed = view(await api.http.post(f"{base}/order", headers=auth(key)))  # default timeout
    assert failed["order_number"] is None and failed["state"] != "payment_pending"


# --------------------------------------------------------------------------- authentication


async def test_missing_unknown_and_revoked_keys_are_401(api: Api) -> None:
    shop, cart = new_id("shop"), new_id()
    key = await api.key(shop)
    revoked_key = await api.key(shop)
    await revoke_key(api.sessions, revoked_key, now=utc_now())
    _mark, prefix, secret = key.split("_", 2)
    forged = f"ck_{prefix}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    base = f"/api/v1/carts/{cart}"
    body = {"lines": LINES, "currency": "EUR"}

    for headers in (
        {},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {key}"},
        {"Authorization": key},
        auth("ck_nope"),
        auth(forged),
        auth(revoked_key),
        {"X-Api-Key": revoked_key},
        {"X-Api-Key": "not-a-key"},
    ):
        for request in (
            api.http.put(f"{base}/lines", json=body, headers=headers),
            api.http.get(base, headers=headers),
            api.http.post(f"{base}/visits", json=[1], headers=headers),  # bad body: 401 first
            api.http.post("/api/v1/coupons/validate", json={"code": "X"}, headers=headers),
        ):
            response = await request
            refused(response, 401, "unauthenticated")
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), headers
    # nothing reached the cart
    refused(await api.http.get(base, headers=auth(key)), 404, "cart_not_found")
    view(await api.http.put(f"{base}/lines", json=body, headers=auth(key)))


async def test_a_key_reaches_only_its_own_shops_carts(api: Api) -> None:
    shop_a, shop_b, cart = new_id("shop-a"), new_id("shop-b"), new_id()
    key_a, key_b = await api.key(shop_a), await api.key(shop_b)
    base = f"/api/v1/carts/{cart}"
    b_cart = view(
        await api.http.put(
            f"{base}/lines", json={"lines": LINES, "currency": "EUR"}, headers=auth(key_b)
        )
    )
    assert b_cart["shop_id"] == shop_b

    refused(await api.http.get(base, headers=auth(key_a)), 404, "cart_not_found")
    refused(await api.http.post(f"{base}/order", headers=auth(key_a)), 404, "cart_not_found")
    mine = view(
        await api.http.put(
            f"{base}/lines",
            json={"lines": LINES[:1], "currency": "USD"},
            headers=auth(key_a),
        )
    )
    assert (mine["shop_id"], mine["currency"], mine["version"]) == (shop_a, "USD", 1)
    view(await api.http.post(f"{base}/checkout", headers=auth(key_a)))

    theirs = view(await api.http.get(base, headers=auth(key_b)))
    assert theirs == b_cart, "shop B's cart is unchanged"


# --------------------------------------------------------------------------- refusals


async def test_coded_refusals_change_nothing(api: Api, carts: CartkeeperClient) -> None:
    shop, cart = new_id("shop"), new_id()
    key = await api.key(shop)
    base = f"/api/v1/carts/{cart}"
    http = api.http

    async def put(body: Any) -> httpx.Response:
        return await http.put(f"{base}/lines", json=body, headers=auth(key))

    def line(**changes: Any) -> dict[str, Any]:
        return {"lines": [{**LINES[0], **changes}], "currency": "EUR"}

    refused(await put(line(quantity=2.7)), 422, "invalid_quantity")
    refused(await put(line(quantity=2.0)), 422, "invalid_quantity")  # never coerced
    refused(await put(line(quantity=True)), 422, "invalid_quantity")
    refused(await put(line(quantity="2")), 422, "invalid_quantity")
    refused(await put(line(quantity=0)), 422, "invalid_quantity")
    refused(await put(line(unit_price="450")), 422, "invalid_price")
    refused(await put(line(colour="red")), 422, "invalid_input")
    refused(await put({**line(), "coupon": "X"}), 422, "invalid_input")
    refused(await put({"lines": LINES, "currency": "eur"}), 422, "invalid_currency")
    refused(await put({"lines": "tea", "currency": "EUR"}), 422, "invalid_line")
    refused(await put({"lines": [LINES[0], LINES[0]], "currency": "EUR"}), 422, "duplicate_sku")
    refused(await put([LINES]), 422, "invalid_input")
    refused(await put(None), 422, "invalid_input")
    not_json = await http.put(
        f"{base}/lines",
        content=b"{lines:",
        headers=auth(key, **{"Content-Type": "application/json"}),
    )
    refused(not_json, 422, "invalid_input")
    refused(
        await http.put(f"/api/v1/carts/{'x' * 65}/lines", json=line(), headers=auth(key)),
        422,
        "invalid_id",
    )
    refused(
        await http.post(
            f"{base}/customer", json={"customer": {"email": "not an address"}}, headers=auth(key)
        ),
        422,
        "invalid_email",
    )
    refused(
        await http.post(
            f"{base}/customer",
            json={"customer": {**ANN, "time_zone": "Mars/Base"}},
            headers=auth(key),
        ),
        422,
        "invalid_customer",
    )
    refused(
        await http.post(f"{base}/customer", json=ANN, headers=auth(key)), 422, "invalid_customer"
    )
    refused(
        await http.post(f"{base}/visits", json={"page": 5}, headers=auth(key)), 422, "invalid_input"
    )
    refused(
        await http.post(f"{base}/checkout", json={"now": True}, headers=auth(key)),
        422,
        "invalid_input",
    )
    cases: list[tuple[Any, str]] = [
        ({**PAYMENT, "amount": 21.0}, "invalid_amount"),
        ({**PAYMENT, "amount": "2100"}, "invalid_amount"),
        ({**PAYMENT, "method": "cheque"}, "invalid_payment"),
        ({**PAYMENT, "attempt_id": 7}, "invalid_payment"),
        ({k: v for k, v in PAYMENT.items() if k != "gateway"}, "invalid_payment"),
    ]
    for body, code in cases:
        refused(await http.post(f"{base}/payments", json=body, headers=auth(key)), 422, code)
    bodies: list[Any] = [
        {"timeout_seconds": 301},
        {"timeout_seconds": -1},
        {"timeout_seconds": True},
        {"timeout_seconds": "10"},
        {"wait": 1},
    ]
    for body in bodies:
        refused(
            await http.post(f"{base}/order", json=body, headers=auth(key)), 422, "invalid_input"
        )
    # none of it made the cart
    refused(await http.get(base, headers=auth(key)), 404, "cart_not_found")
    refused(
        await http.post(f"{base}/order", json={"timeout_seconds": 0}, headers=auth(key)),
        404,
        "cart_not_found",
    )

    # the cart's state refuses: 409
    created = view(await put({"lines": [], "currency": "EUR"}))
    refused(await http.post(f"{base}/checkout", headers=auth(key)), 409, "cart_empty")
    view(await put(line()))
    refused(await put({"lines": LINES, "currency": "USD"}), 409, "currency_mismatch")
    refused(
        await http.post(
            f"{base}/payments", json={**PAYMENT, "method": "manual"}, headers=auth(key)
        ),
        422,
        "invalid_payment",
    )
    after = view(await http.get(base, headers=auth(key)))
    assert after["version"] == created["version"] + 1, "only the valid update counted"

    # a deleted cart is gone: 410
    await carts.delete(shop, cart, admin="ann", note="test")
    refused(await http.post(f"{base}/visits", json={}, headers=auth(key)), 410, "cart_deleted")
    refused(await put(line()), 410, "cart_deleted")


# --------------------------------------------------------------------------- idempotency


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


async def records(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(
            (
                await session.execute(select(func.count()).select_from(IdempotencyRecord))
            ).scalar_one()
        )


async def test_idempotency_key_replays_the_first_answer(
    db: ScratchDatabase, dev_env: Any, dev_worker: Any, tmp_path: Path
) -> None:
    async with api_on(db.session_factory, dev_env, tmp_path) as api:
        shop, cart = new_id("shop"), new_id()
        key, other_key = await api.key(shop), await api.key(shop)
        base = f"/api/v1/carts/{cart}"
        http = api.http
        view(
            await http.put(
                f"{base}/lines", json={"lines": LINES, "currency": "EUR"}, headers=auth(key)
            )
        )

        visit = {"page": "/cart"}
        first = await http.post(
            f"{base}/visits", json=visit, headers=auth(key, **{"Idempotency-Key": "visit-1"})
        )
        assert "Idempotent-Replayed" not in first.headers
        again = await http.post(
            f"{base}/visits",
            content=b'{ "page" : "/cart" }',  # the same JSON, written another way
            headers=auth(key, **{"Idempotency-Key": "visit-1", "Content-Type": "application/json"}),
        )
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == view(first)
        now = view(await http.get(base, headers=auth(key)))
        assert now["version"] == first.json()["version"] == 2, "the cart changed once"

        # another body, path or method under the same key: refused, nothing applied
        refused(
            await http.post(
                f"{base}/visits",
                json={"page": "/other"},
                headers=auth(key, **{"Idempotency-Key": "visit-1"}),
            ),
            422,
            "idempotency_key_reused",
        )
        refused(
            await http.post(
                f"{base}/checkout", headers=auth(key, **{"Idempotency-Key": "visit-1"})
            ),
            422,
            "idempotency_key_reused",
        )
        assert view(await http.get(base, headers=auth(key)))["version"] == 2
        # another API key has its own keys; no key at all: applied every time
        mine = await http.post(
            f"{base}/visits", json=visit, headers=auth(other_key, **{"Idempotency-Key": "visit-1"})
        )
        assert view(mine)["version"] == 3 and "Idempotent-Replayed" not in mine.headers
        assert (
            view(await http.post(f"{base}/visits", json=visit, headers=auth(key)))["version"] == 4
        )

        # a refusal (4xx) is an answer too: kept and replayed
        empty = new_id()
        view(
            await http.put(
                f"/api/v1/carts/{empty}/lines",
                json={"lines": [], "currency": "EUR"},
                headers=auth(key),
            )
        )
        headers = auth(key, **{"Idempotency-Key": "checkout-1"})
        refused(
            await http.post(f"/api/v1/carts/{empty}/checkout", headers=headers), 409, "cart_empty"
        )
        replayed = await http.post(f"/api/v1/carts/{empty}/checkout", headers=headers)
        refused(replayed, 409, "cart_empty")
        assert replayed.headers["Idempotent-Replayed"] == "true"

        # PUT honours it as well; coupon checks too
        lines_headers = auth(key, **{"Idempotency-Key": "lines-1"})
        body = {"lines": LINES[:1], "currency": "EUR"}
        one = view(await http.put(f"{base}/lines", json=body, headers=lines_headers))
        two = await http.put(f"{base}/lines", json=body, headers=lines_headers)
        assert two.headers["Idempotent-Replayed"] == "true" and two.json() == one
        coupon_headers = auth(key, **{"Idempotency-Key": "coupon-1"})
        query = {"code": "ZZZZ-ZZZZ", "total": 100, "currency": "EUR"}
        checked = await http.post("/api/v1/coupons/validate", json=query, headers=coupon_headers)
        assert checked.status_code == 200 and checked.json()["applies"] is False
        again = await http.post("/api/v1/coupons/validate", json=query, headers=coupon_headers)
        assert again.headers["Idempotent-Replayed"] == "true" and again.json() == checked.json()

        # a GET keeps nothing
        before = await records(db.session_factory)
        await http.get(base, headers=auth(key, **{"Idempotency-Key": "get-1"}))
        assert await records(db.session_factory) == before


async def test_invalid_idempotency_keys_are_refused(
    db: ScratchDatabase, dev_env: Any, dev_worker: Any, tmp_path: Path
) -> None:
    async with api_on(db.session_factory, dev_env, tmp_path) as api:
        shop, cart = new_id("shop"), new_id()
        key = await api.key(shop)
        for bad in (b"", b"k" * 256, "caf\xe9".encode("latin-1"), b"tab\there", b"del\x7f"):
            response = await api.http.post(
                f"/api/v1/carts/{cart}/visits",
                json={},
                headers=[(b"Authorization", f"Bearer {key}".encode()), (b"Idempotency-Key", bad)],
            )
            refused(response, 422, "invalid_input")
        longest = await api.http.post(
            f"/api/v1/carts/{cart}/visits",
            json={},
            headers=auth(key, **{"Idempotency-Key": "k" * 255}),
        )
        assert view(longest)["version"] == 1, "only the valid key's request ran"


async def test_concurrent_requests_with_one_key_apply_once(
    db: ScratchDatabase, dev_env: Any, dev_worker: Any, tmp_path: Path
) -> None:
    async with api_on(db.session_factory, dev_env, tmp_path) as api:
        shop, cart = new_id("shop"), new_id()
        key = await api.key(shop)
        base = f"/api/v1/carts/{cart}"
        first = view(
            await api.http.put(
                f"{base}/lines", json={"lines": LINES, "currency": "EUR"}, headers=auth(key)
            )
        )
        headers = auth(key, **{"Idempotency-Key": "same"})
        answers = await asyncio.gather(
            *(
                api.http.post(f"{base}/visits", json={"page": "/"}, headers=headers)
                for _ in range(6)
            )
        )
        ran = [
            a for a in answers if a.status_code == 200 and "Idempotent-Replayed" not in a.headers
        ]
        assert len(ran) == 1, [(a.status_code, a.text) for a in answers]
        for answer in answers:
            if answer is ran[0]:
                continue
            if answer.status_code == 200:
                assert answer.headers["Idempotent-Replayed"] == "true"
                assert answer.json() == ran[0].json()
            else:
                refused(answer, 409, "idempotency_key_in_use")
        assert view(await api.http.get(base, headers=auth(key)))["version"] == first["version"] + 1


async def test_a_5xx_is_not_kept_and_old_records_are_replaced(
    db: ScratchDatabase, dev_env: Any, dev_worker: Any, tmp_path: Path
) -> None:
    async def no_temporal() -> Any:
        raise RuntimeError("Temporal is down")

    clock = [datetime.now(UTC)]
    shop, cart = new_id("shop"), new_id()
    base = f"/api/v1/carts/{cart}"
    async with api_on(db.session_factory, dev_env, tmp_path, temporal=no_temporal) as down:
        key = await down.key(shop)
        headers = auth(key, **{"Idempotency-Key": "retry-me"})
        refused(
            await down.http.post(f"{base}/visits", json={}, headers=headers),
            503,
            "temporal_unavailable",
        )
    assert await records(db.session_factory) == 0, "a 5xx answer is not kept"

    async with api_on(db.session_factory, dev_env, tmp_path, now=lambda: clock[0]) as api:
        retried = await api.http.post(f"{base}/visits", json={}, headers=headers)
        assert view(retried)["version"] == 1 and "Idempotent-Replayed" not in retried.headers

        # a day later the key is free again, for any request
        clock[0] += timedelta(hours=24, seconds=1)
        later = await api.http.post(f"{base}/visits", json={"page": "/later"}, headers=headers)
        assert view(later)["version"] == 2 and "Idempotent-Replayed" not in later.headers
        replay = await api.http.post(f"{base}/visits", json={"page": "/later"}, headers=headers)
        assert replay.headers["Idempotent-Replayed"] == "true"

        # a claim whose request is still running: 409; one whose answer was never kept
        # (its process died): 409 outcome unknown, never run again
        scope = f"key:{await key_id(api, key)}"
        async with write_session(db.session_factory) as session:
            for name, age in (("running", 1), ("abandoned", 11)):
                claimed = clock[0] - timedelta(minutes=age)
                session.add(
                    IdempotencyRecord(
                        scope=scope,
                        key=name,
                        request_digest=request_digest("POST", f"{base}/visits", {}),
                        created_at=claimed,
                    )
                )
        refused(
            await api.http.post(
                f"{base}/visits", json={}, headers=auth(key, **{"Idempotency-Key": "running"})
            ),
            409,
            "idempotency_key_in_use",
        )
        unknown = refused(
            await api.http.post(
                f"{base}/visits", json={}, headers=auth(key, **{"Idempotency-Key": "abandoned"})
            ),
            409,
            "idempotency_outcome_unknown",
        )
        assert "Read the cart" in unknown["message"]
        assert view(await api.http.get(base, headers=auth(key)))["version"] == 2

        # records past their day are deleted (now and then)
        clock[0] += timedelta(days=2)
        view(
            await api.http.post(
                f"{base}/visits", json={}, headers=auth(key, **{"Idempotency-Key": "new"})
            )
        )
        assert await records(db.session_factory) == 1


async def key_id(api: Api, plain: str) -> int:
    from starter.web.api_keys import verify_key

    found = await verify_key(api.sessions, plain, now=utc_now())
    assert found is not None
    return found.id


# --------------------------------------------------------------------------- coupons


async def test_coupon_validation(api: Api, session_factory: SessionFactory) -> None:
    shop, cart = new_id("shop"), new_id()
    key = await api.key(shop)
    other_shop_key = await api.key(new_id("shop"))
    now = datetime.now(UTC)
    percent = await issue(
        session_factory, shop, "c-0", "first", CouponTerms("percent", 10, None, 7), now
    )
    five_eur = await issue(
        session_factory, shop, "c-0", "second", CouponTerms("fixed", 500, "EUR", 7), now
    )
    expired = await issue(
        session_factory,
        shop,
        "c-0",
        "third",
        CouponTerms("fixed", 500, "EUR", 1),
        now - timedelta(days=2),
    )

    async def validate(body: Any, with_key: str = key) -> httpx.Response:
        return await api.http.post("/api/v1/coupons/validate", json=body, headers=auth(with_key))

    typed = percent.code.lower().replace("-", " ")
    answer = view(await validate({"code": typed, "total": 3050, "currency": "EUR"}))
    assert answer["applies"] is True and answer["refusal"] is None
    assert (answer["code"], answer["kind"], answer["amount"]) == (percent.code, "percent", 10)
    assert (answer["total"], answer["discount"], answer["to_pay"]) == (3050, 305, 2745)
    assert datetime.fromisoformat(answer["expires_at"]) == percent.expires_at
    small = view(await validate({"code": five_eur.code, "total": 300, "currency": "EUR"}))
    assert (small["discount"], small["to_pay"]) == (300, 0)

    cases: list[tuple[Any, str]] = [
        ({"code": five_eur.code, "total": 3050, "currency": "USD"}, "coupon_currency_mismatch"),
        ({"code": expired.code, "total": 3050, "currency": "EUR"}, "coupon_expired"),
        ({"code": "ZZZZ-ZZZZ", "total": 3050, "currency": "EUR"}, "coupon_not_found"),
    ]
    for body, code in cases:
        no = view(await validate(body))
        assert no["applies"] is False and no["refusal"]["code"] == code, no
        assert (no["discount"], no["to_pay"]) == (0, 3050)
    elsewhere = view(
        await validate({"code": percent.code, "total": 100, "currency": "EUR"}, other_shop_key)
    )
    assert elsewhere["refusal"]["code"] == "coupon_not_found", "another shop's coupon"

    invalid: list[tuple[Any, str]] = [
        ({"code": percent.code, "total": 30.5, "currency": "EUR"}, "invalid_amount"),
        ({"code": percent.code, "total": "3050", "currency": "EUR"}, "invalid_amount"),
        ({"code": percent.code, "total": -1, "currency": "EUR"}, "invalid_amount"),
        ({"code": percent.code, "total": 3050}, "invalid_currency"),
        ({"code": percent.code, "total": 3050, "currency": "eur"}, "invalid_currency"),
        ({"code": percent.code, "cart_id": cart, "total": 3050}, "invalid_input"),
        ({"code": 7, "total": 3050, "currency": "EUR"}, "invalid_input"),
        ({"total": 3050, "currency": "EUR"}, "invalid_input"),
        ({"code": "x" * 65, "total": 3050, "currency": "EUR"}, "invalid_input"),
        ({"code": percent.code, "total": 3050, "currency": "EUR", "x": 1}, "invalid_input"),
        ({"code": percent.code, "cart_id": "bad id"}, "invalid_id"),
        ([], "invalid_input"),
    ]
    for body, code in invalid:
        refused(await validate(body), 422, code)

    # against a cart: its total and currency as projected
    refused(await validate({"code": percent.code, "cart_id": cart}), 404, "cart_not_found")
    view(
        await api.http.put(
            f"/api/v1/carts/{cart}/lines",
            json={"lines": LINES, "currency": "EUR"},
            headers=auth(key),
        )
    )

    async def projected() -> bool:
        record = await get_cart_record(session_factory, shop, cart)
        return record is not None and record.total == TOTAL

    await eventually(projected)
    on_cart = view(await validate({"code": typed, "cart_id": cart}))
    assert (on_cart["applies"], on_cart["total"], on_cart["currency"], on_cart["discount"]) == (
        True,
        TOTAL,
        "EUR",
        210,
    )
    mismatch = view(await validate({"code": expired.code, "cart_id": cart}))
    assert mismatch["refusal"]["code"] == "coupon_expired" and mismatch["to_pay"] == TOTAL
    refused(
        await validate({"code": percent.code, "cart_id": cart}, other_shop_key),
        404,
        "cart_not_found",
    )
    empty = new_id()  # a customer, no lines: no currency to discount
    view(
        await api.http.post(
            f"/api/v1/carts/{empty}/customer", json={"customer": ANN}, headers=auth(key)
        )
    )
    await eventually(lambda: get_cart_record(session_factory, shop, empty))
    refused(await validate({"code": percent.code, "cart_id": empty}), 409, "cart_empty")


# --------------------------------------------------------------------------- the document


def storefront_operations(document: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """The OpenAPI document's storefront operations by (METHOD, path)."""
    return {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if "storefront" in operation.get("tags", ())
    }


async def test_openapi_documents_every_endpoint(api: Api) -> None:
    document = (await api.http.get("/openapi.json")).json()
    operations = storefront_operations(document)
    assert set(operations) == {
        ("GET", "/api/v1/carts/{cart_id}"),
        ("PUT", "/api/v1/carts/{cart_id}/lines"),
        ("POST", "/api/v1/carts/{cart_id}/customer"),
        ("POST", "/api/v1/carts/{cart_id}/visits"),
        ("POST", "/api/v1/carts/{cart_id}/checkout"),
        ("POST", "/api/v1/carts/{cart_id}/payments"),
        ("POST", "/api/v1/carts/{cart_id}/order"),
        ("POST", "/api/v1/coupons/validate"),
    }
    schemes = document["components"]["securitySchemes"]
    assert {schemes[name]["type"] for name in schemes} >= {"http", "apiKey"}
    for (method, path), operation in operations.items():
        assert operation["summary"] and len(operation["description"]) > 40, path
        assert operation["security"], path
        assert {"401", "404", "409", "410", "422"} <= set(operation["responses"]), path
        headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        assert ("Idempotency-Key" in headers) == (method != "GET"), (method, path)
    lines = operations[("PUT", "/api/v1/carts/{cart_id}/lines")]
    schema = lines["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["lines", "currency"] and schema["additionalProperties"] is False
    assert schema["properties"]["lines"]["items"]["properties"]["quantity"]["type"] == "integer"
    assert CartState.LOCKED.value in str(document["components"]["schemas"]["CartState"])
