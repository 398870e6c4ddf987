"""The payment-result webhook (``starter.web.webhooks``) through FastAPI on the real dev
server: Standard Webhooks signatures, timestamps and replays; deduplication by webhook id
in ``webhook_deliveries`` on SQLite and PostgreSQL; garbled results and unknown carts kept
for an admin; Temporal or the database down; the secrets' settings and CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.db import make_engine, make_session_factory
from activities.settings import Settings
from activities.web_models import WebhookDelivery
from starter.cli import cli
from starter.client import CartkeeperClient
from starter.errors import EXIT_USAGE, Failure
from starter.web import webhooks
from starter.web.app import create_app
from tests.conftest import TASK_QUEUE, new_id
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_workflow_dev import SHOP, TOTAL, eventually, to_payment
from workflows.contract import (
    PAYMENT_RESULT,
    AttentionKind,
    Cart,
    CartState,
    JournalKind,
    workflow_id,
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
SOURCE = "testpay"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + "QUFB" * 8  # 24 bytes of "A"
URL = f"/api/v1/webhooks/payments/{SOURCE}"


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


def web_settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        task_queue=TASK_QUEUE,
        secret_key=SecretStr("w" * 40),
        policy={"projection_interval_seconds": 0},
        webhook_secrets={SOURCE: SecretStr(SECRET)},
        **values,
    )


def make_app(tmp_path: Path, sessions: Any, client: Client | None) -> FastAPI:
    """The app on ``sessions``; Temporal is ``client`` (``None``: it cannot be reached)."""

    async def temporal() -> Client:
        if client is None:
            raise ConnectionRefusedError("Temporal is down")
        return client

    return create_app(
        web_settings(tmp_path), temporal_client_factory=temporal, session_factory=sessions
    )


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        yield client


def signed(
    body: Any,
    *,
    secret: str = SECRET,
    msg_id: str | None = None,
    at: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    """``body`` (JSON, or bytes as they are) and the headers a gateway signs it with."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg_id = msg_id or f"msg_{new_id()}"
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, data.decode())
    return data, {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def success(cart_id: str, attempt: str = "att-1", **fields: Any) -> dict[str, Any]:
    return {
        "shop_id": SHOP,
        "cart_id": cart_id,
        "attempt_id": attempt,
        "status": "succeeded",
        "amount": TOTAL,
        "currency": "EUR",
        "card_last4": "4242",
        "gateway": "testpay",
        **fields,
    }


async def deliveries(db: ScratchDatabase) -> list[tuple[str, str | None, bool]]:
    async with db.session_factory() as session:
        rows = await session.execute(
            select(
                WebhookDelivery.webhook_id, WebhookDelivery.cart_id, WebhookDelivery.delivered_at
            ).order_by(WebhookDelivery.received_at)
        )
        return [(row[0], row[1], row[2] is not None) for row in rows]


async def payment_signals(client: Client, cart_id: str) -> int:
    handle = client.get_workflow_handle(workflow_id(SHOP, cart_id))
    signals = [
        event
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and event.workflow_execution_signaled_event_attributes.signal_name == PAYMENT_RESULT
    ]
    return len(signals)


async def ordered(carts: CartkeeperClient, cart_id: str) -> Cart:
    async def check() -> Cart | None:
        cart = await carts.get_cart(SHOP, cart_id)
        return cart if cart.state is CartState.ORDERED else None

    found: Cart = await eventually(check)
    return found


def kinds(cart: Cart) -> list[JournalKind]:
    return [entry.kind for entry in cart.journal]


# --------------------------------------------------------------------------- delivered


async def test_a_signed_success_creates_the_order(
    db: ScratchDatabase, dev_env: Any, carts: CartkeeperClient, tmp_path: Path
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    body, headers = signed(success(cart_id))
    async with client_of(make_app(tmp_path, db.session_factory, dev_env.client)) as client:
        response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "delivered"}
    # Acknowledged only once the cart has it: the signal is in its history already.
    assert await payment_signals(dev_env.client, cart_id) == 1
    cart = await ordered(carts, cart_id)
    assert cart.order is not None and cart.order.paid
    attempt = cart.attempt("att-1")
    assert attempt is not None and attempt.card_last4 == "4242"
    assert await deliveries(db) == [(headers["webhook-id"], cart_id, True)]


async def test_a_replay_is_a_duplicate_and_signals_once(
    db: ScratchDatabase, dev_env: Any, carts: CartkeeperClient, tmp_path: Path
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    payload = success(cart_id)
    body, headers = signed(payload)
    async with client_of(make_app(tmp_path, db.session_factory, dev_env.client)) as client:
        first = await client.post(URL, content=body, headers=headers)
        # the same bytes again, and the same id signed anew (a gateway's retry)
        again = await client.post(URL, content=body, headers=headers)
        body2, headers2 = signed(payload, msg_id=headers["webhook-id"])
        resigned = await client.post(URL, content=body2, headers=headers2)
    assert first.json() == {"status": "delivered"}
    assert again.status_code == resigned.status_code == 200
    assert again.json() == resigned.json() == {"status": "duplicate"}
    cart = await ordered(carts, cart_id)
    assert kinds(cart).count(JournalKind.PAYMENT_SUCCEEDED) == 1
    assert await payment_signals(dev_env.client, cart_id) == 1
    assert len(await deliveries(db)) == 1


async def test_parallel_deliveries_of_one_id_signal_the_cart_once(
    db: ScratchDatabase, dev_env: Any, carts: CartkeeperClient, tmp_path: Path
) -> None:
    """A gateway retrying while its first call is still under way: the second call waits
    for the first and is a duplicate; the cart is signalled once, even with a garbled
    result (which the cart itself does not deduplicate)."""
    cart_id = new_id()
    await to_payment(carts, cart_id)
    body, headers = signed(success(cart_id, status="SUCCEEDED", amount="100"))
    async with client_of(make_app(tmp_path, db.session_factory, dev_env.client)) as client:
        answers = await asyncio.gather(
            *(client.post(URL, content=body, headers=headers) for _ in range(3))
        )
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    statuses = sorted(answer.json()["status"] for answer in answers)
    assert statuses == ["delivered", "duplicate", "duplicate"]
    assert await payment_signals(dev_env.client, cart_id) == 1

    async def flagged() -> Cart | None:
        cart = await carts.get_cart(SHOP, cart_id)
        return cart if cart.open_attention else None

    cart = await eventually(flagged)
    assert kinds(cart).count(JournalKind.PAYMENT_RESULT_UNREADABLE) == 1
    assert await deliveries(db) == [(headers["webhook-id"], cart_id, True)]


async def test_a_claim_whose_delivery_died_is_taken_over_once_it_expires(
    db: ScratchDatabase,
    dev_env: Any,
    carts: CartkeeperClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A delivery whose process died after claiming its id holds it ``CLAIM_FOR`` at
    most: the gateway's retry waits for the claim, then delivers."""
    claim_for = timedelta(seconds=2)
    monkeypatch.setattr(webhooks, "CLAIM_FOR", claim_for)
    cart_id = new_id()
    await to_payment(carts, cart_id)
    body, headers = signed(success(cart_id))
    claimed = datetime.now(UTC)
    async with db.session_factory() as session, session.begin():
        session.add(
            WebhookDelivery(
                source=SOURCE,
                webhook_id=headers["webhook-id"],
                shop_id=SHOP,
                cart_id=cart_id,
                received_at=datetime.now(UTC),
                claimed_at=claimed,  # claimed by a delivery that never finished
            )
        )
    async with client_of(make_app(tmp_path, db.session_factory, dev_env.client)) as client:
        retry = await client.post(URL, content=body, headers=headers)
    # it waited for the claim to expire (measured from the claim: however slow the set-up)
    assert datetime.now(UTC) >= claimed + claim_for
    assert retry.status_code == 200, retry.text
    assert retry.json() == {"status": "delivered"}
    assert await payment_signals(dev_env.client, cart_id) == 1
    assert await deliveries(db) == [(headers["webhook-id"], cart_id, True)]


async def test_a_garbled_result_is_acknowledged_and_kept_for_an_admin(
    db: ScratchDatabase, dev_env: Any, carts: CartkeeperClient, tmp_path: Path
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    body, headers = signed(success(cart_id, status="SUCCEEDED", amount="100"))
    async with client_of(make_app(tmp_path, db.session_factory, dev_env.client)) as client:
        response = await client.post(URL, content=body, headers=headers)
        replay = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "delivered"}
    assert replay.json() == {"status": "duplicate"}

    async def flagged() -> Cart | None:
        cart = await carts.get_cart(SHOP, cart_id)
        return cart if cart.open_attention else None

    cart = await eventually(flagged)
    assert [item.kind for item in cart.open_attention] == [AttentionKind.INVALID_PAYMENT_RESULT]
    assert cart.needs_admin and cart.state is CartState.PAYMENT_PENDING
    # recorded once (the replay was not signalled: a garbled result is not deduplicated
    # by the cart itself)
    assert kinds(cart).count(JournalKind.PAYMENT_RESULT_UNREADABLE) == 1
    assert await payment_signals(dev_env.client, cart_id) == 1


async def test_a_success_for_a_cart_that_never_existed_is_kept_for_an_admin(
    db: ScratchDatabase, dev_env: Any, carts: CartkeeperClient, tmp_path: Path
) -> None:
    cart_id = new_id("ghost")
    body, headers = signed(success(cart_id))
    async with client_of(make_app(tmp_path, db.session_factory, dev_env.client)) as client:
        response = await client.post(URL, content=body, headers=headers)
    assert response.json() == {"status": "delivered"}

    async def flagged() -> Cart | None:
        cart = await carts.get_cart(SHOP, cart_id)
        return cart if cart.open_attention else None

    cart = await eventually(flagged)
    assert AttentionKind.PAYMENT_WITHOUT_CART in [item.kind for item in cart.open_attention]
    assert cart.order is None


# --------------------------------------------------------------------------- refused


async def test_unsigned_tampered_stale_and_unknown_calls_are_401_and_change_nothing(
    db: ScratchDatabase, dev_env: Any, carts: CartkeeperClient, tmp_path: Path
) -> None:
    cart_id = new_id()
    view = await to_payment(carts, cart_id)
    payload = success(cart_id)
    body, headers = signed(payload)
    now = datetime.now(UTC)
    tampered = json.dumps({**payload, "amount": 1}).encode()
    calls: dict[str, tuple[str, bytes, dict[str, str]]] = {
        "unsigned": (URL, body, {"content-type": "application/json"}),
        "no signature": (URL, body, {k: v for k, v in headers.items() if k != "webhook-signature"}),
        "no id": (URL, body, {k: v for k, v in headers.items() if k != "webhook-id"}),
        "tampered body": (URL, tampered, headers),
        "another id": (URL, body, {**headers, "webhook-id": "msg_other"}),
        "wrong secret": (URL, *signed(payload, secret=OTHER_SECRET)),
        "stale": (URL, *signed(payload, at=now - timedelta(minutes=6))),
        "future": (URL, *signed(payload, at=now + timedelta(minutes=6))),
        "moved timestamp": (
            URL,
            body,
            {**headers, "webhook-timestamp": str(int(now.timestamp()) + 1)},
        ),
        "timestamp not a number": (URL, body, {**headers, "webhook-timestamp": "soon"}),
        "unknown version": (URL, body, {**headers, "webhook-signature": "v2,AAAA"}),
        "no comma": (URL, body, {**headers, "webhook-signature": "v1"}),
        "not base64": (URL, body, {**headers, "webhook-signature": "v1,%%%"}),
        "unknown source": ("/api/v1/webhooks/payments/other", body, headers),
        "not UTF-8": (URL, b"\xff\xfe", headers),
    }
    async with client_of(make_app(tmp_path, db.session_factory, dev_env.client)) as client:
        for name, (url, content, call_headers) in calls.items():
            response = await client.post(url, content=content, headers=call_headers)
            assert response.status_code == 401, (name, response.text)
            assert response.json()["error"]["code"] == "invalid_signature", name
    cart = await carts.get_cart(SHOP, cart_id)
    assert cart.state is CartState.PAYMENT_PENDING and cart.version == view.version
    assert await payment_signals(dev_env.client, cart_id) == 0
    assert await deliveries(db) == []


async def test_a_verified_body_that_names_no_cart_is_422(
    db: ScratchDatabase, dev_env: Any, tmp_path: Path
) -> None:
    bodies: dict[str, tuple[Any, str]] = {
        "not JSON": (b"shop_id=x", "invalid_input"),
        "an array": ([success("c-1")], "invalid_input"),
        "no cart id": ({"shop_id": SHOP, "status": "succeeded"}, "invalid_id"),
        "bad shop id": (success("c-1", shop_id="a shop"), "invalid_id"),
        "number cart id": ({**success("c-1"), "cart_id": 12}, "invalid_id"),
    }
    async with client_of(make_app(tmp_path, db.session_factory, dev_env.client)) as client:
        for name, (payload, code) in bodies.items():
            body, headers = signed(payload)
            response = await client.post(URL, content=body, headers=headers)
            assert response.status_code == 422, (name, response.text)
            assert response.json()["error"]["code"] == code, name
        body, headers = signed(success("c-1"), msg_id="m" * 256)
        too_long = await client.post(URL, content=body, headers=headers)
        body, headers = signed({**success("c-1"), "padding": "x" * 70_000})
        too_big = await client.post(URL, content=body, headers=headers)
    assert too_long.status_code == too_big.status_code == 422
    assert await deliveries(db) == []


# --------------------------------------------------------------------------- outages


async def test_temporal_down_is_503_and_the_gateways_retry_delivers(
    db: ScratchDatabase, dev_env: Any, carts: CartkeeperClient, tmp_path: Path
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    body, headers = signed(success(cart_id))
    async with client_of(make_app(tmp_path, db.session_factory, None)) as client:
        down = await client.post(URL, content=body, headers=headers)
    assert down.status_code == 503, down.text
    assert down.json()["error"]["code"] == "temporal_unavailable"
    assert down.headers["retry-after"]
    # taken but not delivered: the cart does not have it
    assert await deliveries(db) == [(headers["webhook-id"], cart_id, False)]
    assert await payment_signals(dev_env.client, cart_id) == 0

    # The gateway retries the same id (signed anew) once Temporal is back.
    body, headers = signed(success(cart_id), msg_id=headers["webhook-id"])
    async with client_of(make_app(tmp_path, db.session_factory, dev_env.client)) as client:
        retry = await client.post(URL, content=body, headers=headers)
        replay = await client.post(URL, content=body, headers=headers)
    assert retry.json() == {"status": "delivered"}
    assert replay.json() == {"status": "duplicate"}
    await ordered(carts, cart_id)
    assert await payment_signals(dev_env.client, cart_id) == 1
    assert await deliveries(db) == [(headers["webhook-id"], cart_id, True)]


async def test_the_database_down_is_503_and_nothing_is_signalled(
    dev_env: Any, carts: CartkeeperClient, tmp_path: Path
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        app = make_app(tmp_path, make_session_factory(engine), dev_env.client)
        body, headers = signed(success(cart_id))
        async with client_of(app) as client:
            response = await client.post(URL, content=body, headers=headers)
    finally:
        await engine.dispose()
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "database_unavailable"
    assert await payment_signals(dev_env.client, cart_id) == 0


# --------------------------------------------------------------------------- secrets


def test_webhook_secrets_are_checked_when_the_settings_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = {
        "no prefix": ({SOURCE: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "must start with 'whsec_'"),
        "not base64": ({SOURCE: "whsec_%%%%"}, "must be base64"),
        "too short": ({SOURCE: "whsec_QUFB"}, "24 to 64 bytes, not 3"),
        "bad source": ({"pay pal": SECRET}, "source 'pay pal' must be"),
    }
    for name, (value, message) in cases.items():
        monkeypatch.setenv("CARTKEEPER_WEBHOOK_SECRETS", json.dumps(value))
        with pytest.raises(ValidationError) as refused:
            Settings(data_dir=tmp_path)
        assert message in str(refused.value), name
    monkeypatch.setenv("CARTKEEPER_WEBHOOK_SECRETS", json.dumps({SOURCE: SECRET}))
    assert Settings(data_dir=tmp_path).webhook_secrets[SOURCE].get_secret_value() == SECRET


def test_the_cli_makes_a_secret_that_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(cli, ["webhooks", "secret", "--source", "stripe"])
    assert result.exit_code == 0, result.output
    secret, line = result.output.splitlines()
    assert secret.startswith("whsec_") and secret != SECRET
    variable, quoted = line.split("=", 1)
    assert (
        variable == "CARTKEEPER_WEBHOOK_SECRETS" and quoted == f"'{json.dumps({'stripe': secret})}'"
    )
    monkeypatch.setenv(variable, quoted.strip("'"))
    stored = Settings(data_dir=tmp_path).webhook_secrets["stripe"].get_secret_value()
    body, headers = signed(success("c-1"), secret=stored)
    assert Webhook(stored).verify(body, headers) == success("c-1")
    other = CliRunner().invoke(cli, ["webhooks", "secret"])
    assert other.exit_code == 0 and other.output.strip() not in (secret, "")
    refused = CliRunner().invoke(cli, ["webhooks", "secret", "--source", "a b"])
    assert isinstance(refused.exception, Failure)  # ``main`` prints it as one error line
    assert refused.exception.code == "invalid_id" and refused.exception.exit_code == EXIT_USAGE
