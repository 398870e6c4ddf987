"""``/metrics`` (``starter.web.metrics``): requests by method, route template and status
class in each app's own registry; carts, reminders and flagged payments from the read
model on SQLite and PostgreSQL; the scrape still answers when the database is down."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import text

from activities.db import SessionFactory, make_engine, make_session_factory, write_session
from activities.models import CartRecord, ReminderSend
from activities.read_model import cart_values
from activities.settings import Settings
from starter.web.app import create_app
from tests.conftest_db import ScratchDatabase, scratch_database
from workflows.contract import Cart, CartLine, CartState

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
#: a metric sample: (name, labels as sorted pairs) → value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


def make_app(tmp_path: Path, sessions: SessionFactory) -> FastAPI:
    async def no_temporal() -> Any:
        raise ConnectionRefusedError("no Temporal in the metrics tests")

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        secret_key=SecretStr("m" * 40),
    )
    return create_app(settings, temporal_client_factory=no_temporal, session_factory=sessions)


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        yield client


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def cart(shop: str, cart_id: str, state: CartState, attention: str | None = None) -> CartRecord:
    values = cart_values(
        Cart(
            shop_id=shop,
            cart_id=cart_id,
            state=state,
            version=2,
            currency="EUR",
            lines=[CartLine("tea", "Tea", 1, 450)],
            created_at=T0,
            updated_at=T0,
        ),
        T0,
    )
    if attention is not None:  # as the projection writes an open item's kinds
        values["attention"] = attention
        values["needs_admin"] = True
    return CartRecord(**values)


def send(shop: str, cart_id: str, reminder: str, status: str, reason: str | None = None) -> Any:
    return ReminderSend(
        shop_id=shop,
        cart_id=cart_id,
        lineage="L",
        reminder_id=reminder,
        status=status,
        reason=reason,
        manual=False,
        created_at=T0,
        updated_at=T0,
        sent_at=T0 if status == "sent" else None,
    )


async def test_requests_are_counted_by_route_template_and_status_class(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    app = make_app(tmp_path, db.session_factory)
    async with client_of(app) as client:
        for _ in range(2):
            assert (await client.get("/healthz")).status_code == 200
        link = await client.get("/r/not-a-token-4711")
        missing = await client.get("/no/such/page/4711")
        webhook = await client.post("/api/v1/webhooks/payments/gw-4711", content=b"{}")
        odd = await client.request("BREW", "/healthz")
        samples = await scrape(client)
    assert link.status_code // 100 == 4 and missing.status_code == 404
    assert webhook.status_code == 401 and odd.status_code == 405
    count = "cartkeeper_http_requests_total"
    assert samples[count, labels(method="GET", route="/healthz", status="2xx")] == 2
    assert samples[count, labels(method="GET", route="/r/{token}", status="4xx")] == 1
    assert samples[count, labels(method="GET", route="unmatched", status="4xx")] == 1
    webhook_route = "/api/v1/webhooks/payments/{source}"
    assert samples[count, labels(method="POST", route=webhook_route, status="4xx")] == 1
    assert samples[count, labels(method="OTHER", route="/healthz", status="4xx")] == 1
    histogram = "cartkeeper_http_request_duration_seconds_count"
    assert samples[histogram, labels(method="GET", route="/healthz", status="2xx")] == 2
    buckets = [
        value
        for (name, pairs), value in samples.items()
        if name == "cartkeeper_http_request_duration_seconds_bucket"
        and dict(pairs)["route"] == "/healthz"
        and dict(pairs)["method"] == "GET"
    ]
    assert max(buckets) == 2 and min(buckets) <= 2
    # never a raw path: no label carries the ids of the requests
    assert not [pairs for _name, pairs in samples if any("4711" in v for _k, v in pairs)]
    assert samples["cartkeeper_read_model_up", ()] == 1


async def test_each_app_counts_its_own_requests(db: ScratchDatabase, tmp_path: Path) -> None:
    busy, quiet = make_app(tmp_path, db.session_factory), make_app(tmp_path, db.session_factory)
    async with client_of(busy) as client:
        for _ in range(3):
            await client.get("/healthz")
    async with client_of(quiet) as client:
        samples = await scrape(client)
    healthz = labels(method="GET", route="/healthz", status="2xx")
    assert ("cartkeeper_http_requests_total", healthz) not in samples


async def test_carts_reminders_and_flagged_payments_from_the_read_model(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    async with write_session(db.session_factory) as session:
        session.add_all(
            [
                cart("shop-a", "a1", CartState.ACTIVE),
                cart("shop-a", "a2", CartState.ACTIVE),
                cart("shop-a", "a3", CartState.LOCKED),
                cart("shop-a", "a4", CartState.ORDERED, "possible_double_charge,amount_mismatch"),
                cart("shop-a", "a5", CartState.ORDERED, "amount_mismatch"),
                cart("shop-b", "b1", CartState.PAYMENT_PENDING, "invalid_payment_result"),
                send("shop-a", "a1", "first", "sent"),
                send("shop-a", "a2", "first", "sent"),
                send("shop-a", "a2", "second", "skipped", "unsubscribed"),
                send("shop-a", "a1", "second", "skipped", "unsubscribed"),
                send("shop-a", "a3", "first", "skipped", "quiet_hours"),
                send("shop-a", "a4", "first", "sending"),
                send("shop-b", "b1", "first", "sent"),
            ]
        )
    # a LOCKED cart needs an admin without an attention item
    async with write_session(db.session_factory) as session:
        locked = await session.get(CartRecord, ("shop-a", "a3"))
        assert locked is not None and locked.needs_admin and locked.attention is None

    async with client_of(make_app(tmp_path, db.session_factory)) as client:
        samples = await scrape(client)
    assert samples["cartkeeper_read_model_up", ()] == 1
    carts = "cartkeeper_carts"
    assert samples[carts, labels(shop="shop-a", state="active")] == 2
    assert samples[carts, labels(shop="shop-a", state="locked")] == 1
    assert samples[carts, labels(shop="shop-a", state="ordered")] == 2
    assert samples[carts, labels(shop="shop-a", state="deleted")] == 0  # no gaps
    assert samples[carts, labels(shop="shop-b", state="payment_pending")] == 1
    needing = "cartkeeper_carts_needing_admin"
    assert samples[needing, labels(shop="shop-a")] == 3
    assert samples[needing, labels(shop="shop-b")] == 1
    flagged = "cartkeeper_payments_flagged"
    assert samples[flagged, labels(shop="shop-a", kind="amount_mismatch")] == 2
    assert samples[flagged, labels(shop="shop-a", kind="possible_double_charge")] == 1
    assert samples[flagged, labels(shop="shop-b", kind="invalid_payment_result")] == 1
    assert sum(value for (name, _), value in samples.items() if name == flagged) == 4
    sent = "cartkeeper_reminders_sent_total"
    assert samples[sent, labels(shop="shop-a")] == 2
    assert samples[sent, labels(shop="shop-b")] == 1
    skipped = "cartkeeper_reminders_skipped_total"
    assert samples[skipped, labels(shop="shop-a", reason="unsubscribed")] == 2
    assert samples[skipped, labels(shop="shop-a", reason="quiet_hours")] == 1
    assert (skipped, labels(shop="shop-b", reason="unsubscribed")) not in samples


async def test_the_scrape_answers_when_the_database_is_down(tmp_path: Path) -> None:
    engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        async with client_of(make_app(tmp_path, make_session_factory(engine))) as client:
            await client.get("/healthz")
            samples = await scrape(client)
    finally:
        await engine.dispose()
    assert samples["cartkeeper_read_model_up", ()] == 0
    healthz = labels(method="GET", route="/healthz", status="2xx")
    assert samples["cartkeeper_http_requests_total", healthz] == 1
    assert not [name for name, _ in samples if name.startswith("cartkeeper_carts")]


@pytest.mark.postgres
async def test_the_scrape_answers_when_the_database_is_slow(tmp_path: Path) -> None:
    async with scratch_database("postgresql", tmp_path) as db:
        app = make_app(tmp_path, db.session_factory)
        app.state.context.check_timeout = 0.2
        async with client_of(app) as client, write_session(db.session_factory) as session:
            # the scrape's counts wait behind this transaction's lock (never committed)
            await session.execute(text("LOCK TABLE carts IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            samples = await scrape(client)
            assert time.monotonic() - started < 2
            await session.rollback()
    assert samples["cartkeeper_read_model_up", ()] == 0


async def test_openmetrics_when_asked(db: ScratchDatabase, tmp_path: Path) -> None:
    async with client_of(make_app(tmp_path, db.session_factory)) as client:
        response = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
